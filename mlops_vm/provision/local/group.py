"""The local scaling group: its settings, its recorded state, and its instances' life.

Two files under the environment's state directory, each with one writer:
- group.json (the provider: `provision`, `rollback`): size limits, policy, the image the
  group launches now and the one it replaced (what `rollback` returns to);
- state.json (the autoscaler): the desired count, each instance's lifecycle and the last
  scaling activities, which `status` reads.

An instance is a VM container started from the release image with a fixed address (its
index, as a fleet VM's). It joins the HAProxy backend once its own /healthz answers; it
leaves drained (no new request, requests in flight finish), then goes.
"""

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from mlops_vm.localcloud.docker_cli import DockerError, docker
from mlops_vm.localcloud.vm import remove_vm, run_vm, wait_booted
from mlops_vm.provision.local import addresses, lb_admin, resize, secrets
from mlops_vm.provision.local import resources as res
from mlops_vm.provision.model import ROLE_LB, ROLE_MODEL

IMAGE_LABEL = "mlops-vm/image"
RELEASE_LABEL = "mlops-vm/release"
GROUP_LABEL = "mlops-vm/group"
MAX_ACTIVITIES = 50
LB_CONFIG = "/etc/haproxy/haproxy.cfg"


@dataclass(frozen=True)
class GroupConfig:
    """What the provider asks of the group (group.json)."""

    env: str
    image: str  # the release image instances are launched from
    release: str  # the model release that image carries
    min_size: int = 1
    max_size: int = 3
    desired: int = 1  # the size at creation; the autoscaler owns it afterwards
    previous_image: str | None = None
    previous_release: str | None = None
    machine_type: str = "local"
    target_requests_per_instance: float | None = None
    target_cpu_percent: float | None = None
    # The autoscaler's pace (provider option `autoscaler`): seconds.
    window_s: float = 60.0
    scale_out_cooldown_s: float = 60.0
    scale_in_cooldown_s: float = 120.0
    interval_s: float = 5.0
    drain_s: float = 30.0
    health_timeout_s: float = 180.0


@dataclass
class GroupState:
    """What the autoscaler did (state.json)."""

    desired: int = 0
    lifecycle: dict[str, str] = field(default_factory=dict)  # instance -> lifecycle
    activities: list[dict[str, str]] = field(default_factory=list)  # newest first
    last_scale_out: float = 0.0  # epoch seconds; 0: never
    last_scale_in: float = 0.0

    def record(self, description: str, cause: str, status: str = "Successful") -> None:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        entry = {"at": at, "description": description, "cause": cause, "status": status}
        self.activities = [entry, *self.activities][:MAX_ACTIVITIES]


def config_path(env: str) -> Path:
    return secrets.directory(env) / "group.json"


def state_path(env: str) -> Path:
    return secrets.directory(env) / "state.json"


def write_json(path: Path, data: dict) -> None:
    """Readers never see half a file: a new file, renamed over the old one."""
    partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True))
    partial.replace(path)


def read_config(env: str) -> GroupConfig | None:
    path = config_path(env)
    return GroupConfig(**json.loads(path.read_text())) if path.exists() else None


def write_config(config: GroupConfig) -> None:
    write_json(config_path(config.env), asdict(config))


def read_state(env: str) -> GroupState:
    path = state_path(env)
    return GroupState(**json.loads(path.read_text())) if path.exists() else GroupState()


def write_state(env: str, state: GroupState) -> None:
    write_json(state_path(env), asdict(state))


def forget(env: str) -> None:
    for path in (config_path(env), state_path(env)):
        path.unlink(missing_ok=True)


def instances(env: str) -> list[res.Container]:
    """The group's instances, by index."""
    return [c for c in res.find_containers(env, ROLE_MODEL) if c.labels.get(GROUP_LABEL)]


def free_indexes(env: str, count: int) -> list[int]:
    """The COUNT lowest indexes no model VM of ENV holds (each is a fixed address)."""
    taken = {c.index for c in res.find_containers(env, ROLE_MODEL)}
    free = [i for i in range(1, addresses.MAX_MODEL_INDEX + 1) if i not in taken]
    return free[:count]


def lb_host(env: str) -> str | None:
    hosts = [c for c in res.find_containers(env, ROLE_LB) if c.running]
    return hosts[0].name if hosts else None


# -- one instance ---------------------------------------------------------------------------


def launch(config: GroupConfig, index: int, *, member: bool = True) -> str:
    """Start instance INDEX from the group's image; it serves once booted (not yet joined).
    MEMBER false: an instance the autoscaler leaves alone (a measurement's)."""
    name = res.vm_name(config.env, ROLE_MODEL, index)
    run_vm(
        name,
        network=res.network_name(config.env),
        labels=res.labels(
            config.env,
            ROLE_MODEL,
            **{
                res.INDEX_LABEL: str(index),
                GROUP_LABEL: "1" if member else "",
                IMAGE_LABEL: config.image,
                RELEASE_LABEL: config.release,
            },
        ),
        image=config.image,
        address=res.fixed_address(config.env, ROLE_MODEL, index),
        extra_args=resize.run_args(config.machine_type),
    )
    wait_booted(name, timeout_s=config.health_timeout_s)
    hand_secrets(config.env, name)
    wait_serving(name, config.health_timeout_s)
    return name


def hand_secrets(env: str, name: str) -> None:
    """The instance's secrets, from the store stand-in, before it takes any request."""
    keys = secrets.api_keys_file(env)
    if keys is None:
        return
    docker(
        "exec",
        "-i",
        name,
        "sh",
        "-c",
        "umask 077 && cat > /etc/nginx/api-keys.conf && systemctl reload-or-restart nginx",
        input_bytes=keys.encode(),
    )


HEALTH_PROBE = (
    "import ssl, urllib.request; urllib.request.urlopen(urllib.request.Request("
    "'https://127.0.0.1/healthz', headers={'Host': 'localhost'}), timeout=3, "
    "context=ssl._create_unverified_context())"
)


def wait_serving(name: str, timeout_s: float) -> None:
    """Until the instance's own Nginx answers /healthz (its replicas are ready)."""
    deadline = time.monotonic() + timeout_s
    while not answers_health(name):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: /healthz did not answer within {timeout_s:.0f}s")
        time.sleep(0.5)


def answers_health(name: str) -> bool:
    try:
        docker("exec", name, "python3", "-c", HEALTH_PROBE)
    except DockerError:
        return False
    return True


def server_args(lb: str) -> str:
    """The backend's default-server options (check, TLS, CA): dynamic servers inherit none."""
    config = docker("exec", lb, "cat", LB_CONFIG)
    for line in config.splitlines():
        words = line.split()
        if words[:1] == ["default-server"]:
            return " ".join(words[1:])
    return "check"


def join(lb: str, name: str, address: str, timeout_s: float, *, args: str | None = None) -> None:
    """Into the backend (added at run time, with ARGS or the configuration's default-server
    options, when the configuration does not list it), ready, and healthy in HAProxy's
    own checks."""
    current = lb_admin.servers(lb).get(name)
    backend = f"{lb_admin.BACKEND}/{name}"
    if current is None:
        options = args or server_args(lb)
        answer = lb_admin.command(lb, f"add server {backend} {address}:443 {options}")
        if "New server registered" not in answer:
            raise lb_admin.AdminUnavailable(f"add server {backend}: {answer}")
        lb_admin.command(lb, f"enable health {backend}")
    lb_admin.set_state(lb, name, "ready")
    deadline = time.monotonic() + timeout_s
    while not (state := lb_admin.servers(lb).get(name)) or not state.healthy:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} not healthy in the load balancer after {timeout_s:.0f}s")
        time.sleep(0.25)


def drain(lb: str, name: str, drain_s: float) -> None:
    """No new request; wait until none is in flight (or DRAIN_S), then out (maintenance)."""
    if name not in lb_admin.servers(lb):
        return
    lb_admin.set_state(lb, name, "drain")
    deadline = time.monotonic() + drain_s
    while time.monotonic() < deadline:
        state = lb_admin.servers(lb).get(name)
        if state is None or state.current_sessions == 0:
            break
        time.sleep(0.2)
    lb_admin.set_state(lb, name, "maint")


def terminate(name: str) -> None:
    remove_vm(name)


def with_image(config: GroupConfig, image: str, release: str) -> GroupConfig:
    """CONFIG launching IMAGE from now on, remembering what it replaces (for rollback)."""
    if image == config.image:
        return config
    return replace(
        config,
        image=image,
        release=release,
        previous_image=config.image,
        previous_release=config.release,
    )
