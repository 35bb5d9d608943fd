#!/usr/bin/python
"""Ansible module: write HAProxy's configuration and make the running HAProxy serve it,
changing servers through the runtime API instead of a reload when only they changed."""

DOCUMENTATION = r"""
module: mlops_vm_haproxy_config
short_description: Write HAProxy's configuration; apply a change of servers without a reload
description:
  - Checks I(content) with I(validate_command) and writes it to I(dest) (root, 0644) when it
    differs; a configuration that fails the check fails the module and never replaces the
    working one.
  - Then makes the running HAProxy serve I(content). I(applied) keeps a copy of the
    configuration the running HAProxy last loaded.
  - When I(content) differs from that copy only in the C(server) lines of I(backend), the
    servers are changed through the runtime API (I(socket)), with no reload. New servers are
    added with the backend's C(default-server) options (dynamic servers inherit none), their
    health checks on, ready. A server that goes is drained first (no new request; those in
    flight get up to I(drain_timeout) seconds), put in maintenance, then deleted. Servers are
    added before any goes, so capacity never drops.
  - Anything else runs I(reload_command). A reload makes the old process close its idle
    keep-alive connections from clients (HAProxy 2.6 has no C(idle-close-on-response)),
    and a client that sends a request at that very moment sees the connection closed with
    no answer; changing servers at run time avoids that for scaling in and out.
  - Changed when it wrote I(dest), changed a server or reloaded; in check mode it says what it
    would do (C(actions)) and changes nothing.
options:
  dest:
    description: HAProxy's configuration file.
    type: path
    required: true
  content:
    description: What I(dest) must contain.
    type: str
    required: true
  applied:
    description: Where the copy of the configuration the running HAProxy loaded is kept.
    type: path
    required: true
  socket:
    description: HAProxy's runtime API socket (C(level admin)).
    type: path
    required: true
  backend:
    description: The backend whose servers may change at run time.
    type: str
    required: true
  validate_command:
    description: Command that checks a configuration file; C(%s) is the file.
    type: str
    default: haproxy -c -f %s
  reload_command:
    description: Command that makes HAProxy load I(dest) (reloads it, or starts it if stopped).
    type: str
    required: true
  drain_timeout:
    description: Seconds a server that goes gets to finish its requests in flight.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Write the HAProxy configuration and apply it
  mlops_vm_haproxy_config:
    dest: /etc/haproxy/haproxy.cfg
    content: "{{ lookup('ansible.builtin.template', 'haproxy.cfg.j2') }}"
    applied: /etc/haproxy/haproxy.cfg.applied
    socket: /run/haproxy/admin.sock
    backend: model_service
    reload_command: systemctl reload-or-restart haproxy
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, would be), in order.
  type: list
  elements: str
  returned: always
  sample: ["write /etc/haproxy/haproxy.cfg", "add server model_service/model-3"]
reloaded:
  description: Whether HAProxy was (or would be) reloaded.
  type: bool
  returned: always
"""

import os
import socket
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

# srv_admin_state bits of `show servers state` (HAProxy's SRV_ADMF_*).
ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20
RETRY_DELETE_S = 10.0  # idle connections to a server in maintenance are purged within ~5 s


def split_servers(config, backend):
    """(the configuration without the `server` lines of BACKEND, those servers by name as
    (address, options), the backend's default-server options)."""
    rest, servers, defaults = [], {}, []
    inside = False
    for line in config.splitlines():
        words = line.split()
        if line and not line[0].isspace():
            inside = words[:2] == ["backend", backend]
        if inside and words[:1] == ["server"] and len(words) >= 3:
            servers[words[1]] = (words[2], words[3:])
            continue
        if inside and words[:1] == ["default-server"]:
            defaults = words[1:]
        rest.append(line)
    return "\n".join(rest), servers, defaults


def plan(applied, content, backend, live):
    """What makes a HAProxy that loaded APPLIED, and runs the servers LIVE (name -> address),
    serve CONTENT: ("none", []), ("reload", []) or ("servers", steps), each step (verb, name,
    address, options) with verb add or delete. Only servers the configuration lists are
    touched: those added at run time by others (an autoscaler) stay."""
    if applied == content:
        return "none", []
    if applied is None:
        return "reload", []
    old_rest, before, _ = split_servers(applied, backend)
    new_rest, wanted, defaults = split_servers(content, backend)
    if old_rest != new_rest:
        return "reload", []
    changed = {name for name, server in wanted.items() if before.get(name) != server}
    gone = [name for name in before if name not in wanted or name in changed]
    deletes = [("delete", name, live[name], []) for name in gone if name in live]
    deleted = {name for _, name, *_ in deletes}
    adds = [
        ("add", name, wanted[name][0], defaults + wanted[name][1])
        for name in wanted
        if name in changed and (name not in live or name in deleted)
    ]
    # Capacity first; a server whose address or options changed goes, then comes back.
    steps = [step for step in adds if step[1] not in deleted] + deletes
    steps += [step for step in adds if step[1] in deleted]
    return ("servers" if steps else "none"), steps


class RuntimeApi:
    def __init__(self, path):
        self.path = path

    def command(self, line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(10)
            conn.connect(self.path)
            conn.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace").strip()

    def table(self, line, separator=None):
        lines = [row for row in self.command(line).splitlines() if row.strip()]
        header_at = next((i for i, row in enumerate(lines) if row.startswith("#")), None)
        if header_at is None:
            return []
        header = lines[header_at].lstrip("# ").split(separator)
        return [
            dict(zip(header, row.split(separator), strict=False)) for row in lines[header_at + 1 :]
        ]

    def servers(self, backend):
        """name -> (address:port, admin state bits)."""
        return {
            row["srv_name"]: (
                f"{row['srv_addr']}:{row['srv_port']}",
                int(row.get("srv_admin_state") or 0),
            )
            for row in self.table(f"show servers state {backend}")
            if row.get("srv_name")
        }

    def sessions(self, backend, name):
        for row in self.table("show stat", ","):
            if row.get("pxname") == backend and row.get("svname") == name:
                return int(row.get("scur") or 0)
        return 0


class Failed(Exception):
    pass


def expect_silence(api, line):
    answer = api.command(line)
    if answer:  # HAProxy answers nothing when these commands succeed
        raise Failed(f"{line}: {answer}")


def add_server(api, backend, name, address, options):
    target = f"{backend}/{name}"
    answer = api.command(f"add server {target} {address} {' '.join(options)}".rstrip())
    if "New server registered" not in answer:
        raise Failed(f"add server {target}: {answer}")
    if "check" in options:
        expect_silence(api, f"enable health {target}")
    expect_silence(api, f"set server {target} state ready")


def delete_server(api, backend, name, admin_state, drain_timeout):
    target = f"{backend}/{name}"
    if not admin_state & ADMIN_MAINT:
        expect_silence(api, f"set server {target} state drain")
        deadline = time.monotonic() + drain_timeout
        while api.sessions(backend, name) and time.monotonic() < deadline:
            time.sleep(0.2)
        expect_silence(api, f"set server {target} state maint")
    # Refused while the server still holds idle connections, which HAProxy purges shortly.
    deadline = time.monotonic() + RETRY_DELETE_S
    while True:
        answer = api.command(f"del server {target}")
        if "Server deleted" in answer:
            return None
        if time.monotonic() > deadline:
            return f"{target} stays in maintenance until the next reload ({answer})"
        time.sleep(0.5)


def read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write(module, path, content, mode=0o644):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".mlops-vm-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(tmp, mode)
    module.atomic_move(tmp, path)


def validate(module, content, command):
    fd, tmp = tempfile.mkstemp(prefix=".mlops-vm-haproxy-", suffix=".cfg")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        rc, out, err = module.run_command(command.replace("%s", tmp), use_unsafe_shell=False)
    finally:
        os.unlink(tmp)
    if rc != 0:
        module.fail_json(msg=f"the configuration fails `{command}`: {(err + out).strip()}")


def main():
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True},
            # Kept out of the run's logs and events: extra settings may hold anything.
            "content": {"type": "str", "required": True, "no_log": True},
            "applied": {"type": "path", "required": True},
            "socket": {"type": "path", "required": True},
            "backend": {"type": "str", "required": True},
            "validate_command": {"type": "str", "default": "haproxy -c -f %s"},
            "reload_command": {"type": "str", "required": True},
            "drain_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    content, backend = params["content"], params["backend"]
    if not content.endswith("\n"):
        content += "\n"
    actions = []

    if read(params["dest"]) != content:
        if not module.check_mode:  # its certificates may not exist yet in check mode
            validate(module, content, params["validate_command"])
            write(module, params["dest"], content)
        actions.append(f"write {params['dest']}")

    api = RuntimeApi(params["socket"])
    try:
        live = api.servers(backend)
    except OSError:
        live = None  # no HAProxy answers (not started, or it has another configuration)
    applied = read(params["applied"]) if live is not None else None
    how, steps = plan(applied, content, backend, {n: a for n, (a, _) in (live or {}).items()})
    if how == "reload":
        actions.append("reload")
    actions += [f"{verb} server {backend}/{name}" for verb, name, *_ in steps]

    warnings = []
    if not module.check_mode and how != "none":
        try:
            if how == "reload":
                rc, out, err = module.run_command(params["reload_command"])
                if rc != 0:
                    raise Failed(f"`{params['reload_command']}`: {(err or out).strip()}")
            for verb, name, address, options in steps:
                if verb == "add":
                    add_server(api, backend, name, address, options)
                else:
                    warning = delete_server(
                        api, backend, name, live[name][1], params["drain_timeout"]
                    )
                    if warning:
                        warnings.append(warning)
        except (Failed, OSError) as error:
            module.fail_json(msg=str(error), actions=actions, reloaded=how == "reload")
    if not module.check_mode and read(params["applied"]) != content:
        write(module, params["applied"], content)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=bool(actions), actions=actions, reloaded=how == "reload")


if __name__ == "__main__":
    main()
