"""The local load balancer's runtime API: HAProxy's admin socket on the LB host.

The LB host (roles/haproxy_lb) names each backend server after the model host's inventory
name, which is the local instance id (the container name). The controller reaches the socket
with `docker exec <lb> socat ...`, so nothing but Docker is needed here. Before the LB host is
configured (no HAProxy, no socket yet) every call raises AdminUnavailable, and callers fall
back to probing the hosts themselves.
"""

from dataclasses import dataclass

from mlops_vm.localcloud.docker_cli import DockerError, run

ADMIN_SOCKET = "/run/haproxy/admin.sock"
BACKEND = "model_service"  # haproxy_lb_backend_name

# srv_admin_state bits of `show servers state` (HAProxy's SRV_ADMF_*).
ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20  # forced, inherited, config, resolution maintenance
ADMIN_DRAIN = 0x08 | 0x10  # forced or inherited drain


class AdminUnavailable(Exception):
    """The LB host does not run HAProxy with its admin socket (yet)."""


@dataclass(frozen=True)
class ServerState:
    """One backend server as HAProxy sees it."""

    name: str  # the model host's instance id
    status: str  # UP, DOWN, DRAIN, MAINT, NOLB, "UP 1/2" (going down), "DOWN 1/2" (going up)
    admin_state: int  # SRV_ADMF_* bits: 0 when the server is registered and ready
    current_sessions: int  # requests in flight (scur)
    total_sessions: int  # requests sent to it since HAProxy started (stot)
    check_status: str  # last health check: L7OK, L7STS (bad status), L4CON, L4TOUT, ...
    check_code: str  # the HTTP status of the last L7 check, if any

    @property
    def maintenance(self) -> bool:
        return bool(self.admin_state & ADMIN_MAINT)

    @property
    def draining(self) -> bool:
        return bool(self.admin_state & ADMIN_DRAIN)

    @property
    def registered(self) -> bool:
        """Takes new requests when healthy: neither drained nor in maintenance."""
        return not (self.maintenance or self.draining)

    @property
    def healthy(self) -> bool:
        return self.registered and self.status.startswith("UP")

    @property
    def reason(self) -> str:
        if self.maintenance:
            return "deregistered (maintenance)"
        if self.draining:
            return "drained" if self.current_sessions == 0 else "draining"
        check = " ".join(part for part in (self.check_status, self.check_code) if part)
        return f"{self.status} ({check})" if check else self.status


def http_status(check_code: str) -> str:
    """While a check is in progress HAProxy reports code 0: no HTTP status to show."""
    return "" if check_code in ("", "0") else check_code


def command(container: str, line: str) -> str:
    """Send one runtime API command to the LB host's HAProxy; returns its answer."""
    try:
        answer = run(
            [
                "docker",
                "exec",
                "-i",
                container,
                "socat",
                "-t",
                "5",
                "stdio",
                f"UNIX-CONNECT:{ADMIN_SOCKET}",
            ],
            input_bytes=f"{line}\n".encode(),
        )
    except DockerError as error:
        raise AdminUnavailable(str(error)) from None
    if answer.startswith(("Unknown command", "Permission denied")):
        raise AdminUnavailable(answer.splitlines()[0])
    return answer


def parse_table(text: str, separator: str | None) -> list[dict[str, str]]:
    """Rows of a `# col col ...` table as dicts (show stat: CSV; show servers state: spaces)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header_at = next((i for i, line in enumerate(lines) if line.startswith("#")), None)
    if header_at is None:
        return []
    header = lines[header_at].lstrip("# ").split(separator)
    return [
        dict(zip(header, line.split(separator), strict=False)) for line in lines[header_at + 1 :]
    ]


def split_answers(text: str) -> tuple[str, str]:
    """The answers of `show stat; show servers state`, sent as one line: the second table
    starts at its format version line, the line before its `# be_id ...` header."""
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("#")]
    if len(headers) < 2:
        raise AdminUnavailable(f"unexpected answer to show stat; show servers state: {text[:200]}")
    second = (
        headers[1] - 1 if headers[1] > 0 and lines[headers[1] - 1].strip().isdigit() else headers[1]
    )
    return "\n".join(lines[:second]), "\n".join(lines[second:])


def servers(container: str, backend: str = BACKEND) -> dict[str, ServerState]:
    """The backend's servers by name (one round trip to the LB host: a release polls this)."""
    stat, state = split_answers(command(container, f"show stat; show servers state {backend}"))
    stats = {
        row["svname"]: row
        for row in parse_table(stat, ",")
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND")
    }
    admin = {
        row["srv_name"]: int(row.get("srv_admin_state") or 0) for row in parse_table(state, None)
    }
    return {
        name: ServerState(
            name=name,
            status=row.get("status", ""),
            admin_state=admin.get(name, 0),
            current_sessions=int(row.get("scur") or 0),
            total_sessions=int(row.get("stot") or 0),
            check_status=row.get("check_status", "").removeprefix("* "),
            check_code=http_status(row.get("check_code", "")),
        )
        for name, row in stats.items()
    }


def set_state(container: str, server: str, state: str, backend: str = BACKEND) -> None:
    """state: ready, drain or maint."""
    answer = command(container, f"set server {backend}/{server} state {state}")
    if answer:  # HAProxy answers nothing on success
        raise AdminUnavailable(f"set server {backend}/{server} state {state}: {answer}")
