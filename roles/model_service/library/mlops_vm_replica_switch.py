#!/usr/bin/python
"""Ansible module: the swap of a model replica on its host, in one round trip."""

DOCUMENTATION = r"""
module: mlops_vm_replica_switch
short_description: Switch a host's proxy to a model replica's successor and retire the old one
description:
  - Runs on the model host what the model_service role's swap does after a successor is
    ready, in one call instead of one task each, in this order (each step only when given).
  - Asks I(ready_url) once; anything but HTTP 200 fails the module before anything changed
    (the old replica keeps serving, the upstream file is left as it was).
  - Writes I(upstream_content) to I(upstream_file) (root, 0644) when it differs; only then
    runs I(switch_command) and waits, up to I(drain_timeout) seconds, until every Nginx
    worker from before the command has exited or is shutting down (a reload only signals
    the master, and until it has read the new upstream its old workers still send new
    requests to the previous replicas). An old worker that is not shutting down at
    I(drain_timeout) means the proxy never took the new upstream, so the module fails,
    with what it changed, before any replica is retired.
  - Renames the running replica I(retire) to C(<retire>-old) and I(successor) to I(retire),
    then, in the background and in its own session (its stop does not hold up the
    release), waits until the proxy's old workers have exited (they finish their requests
    in flight on it; I(drain_timeout) at most), stops C(<retire>-old) (SIGTERM,
    I(stop_timeout)) and removes it.
  - Writes I(record_content) to I(record_file) (root, 0644) when it differs.
  - Then asks I(proxy_url), the host's own proxy (what the load balancer's health check
    asks), until it answers HTTP 200 or I(proxy_timeout) seconds have passed; anything
    else fails the module, with what it changed (a release then puts the host back).
  - Changed only when it wrote a file or renamed a replica; in check mode it says whether it
    would and changes nothing (without asking the readiness, since no successor is started then).
options:
  ready_url:
    description: A URL of the successor that must answer HTTP 200 before anything changes.
    type: str
  ready_timeout:
    description: Seconds to wait for the answer of I(ready_url).
    type: int
    default: 5
  upstream_file:
    description: The proxy's upstream file (the replicas that take traffic).
    type: path
  upstream_content:
    description: What I(upstream_file) must contain.
    type: str
  switch_command:
    description: Shell command that makes the proxy read I(upstream_file) (e.g. an Nginx reload).
    type: str
    default: ""
  drain_timeout:
    description:
      - Seconds the proxy's previous workers get to shut down after the switch (else the
        module fails), then to finish their requests in flight before the retired replica stops.
    type: int
    default: 30
  retire:
    description: The replica's container to retire; it gives its name to I(successor).
    type: str
  successor:
    description: The container that takes the name of I(retire) (required with I(retire)).
    type: str
  stop_timeout:
    description: Seconds the retired replica gets to stop after SIGTERM before it is killed.
    type: int
    default: 30
  record_file:
    description: The host's release record.
    type: path
  record_content:
    description: What I(record_file) must contain.
    type: str
  proxy_url:
    description:
      - The host's proxy health check (HTTPS to the host itself; its answer is checked, not
        its certificate, which the load balancer checks), asked after everything else.
    type: str
  proxy_timeout:
    description: Seconds I(proxy_url) gets to answer HTTP 200.
    type: int
    default: 10
  proxy_pid_file:
    description: The pid file of the proxy's master, whose workers the switch waits on.
    type: path
    default: /run/nginx.pid
  docker_socket:
    description: The Docker Engine's UNIX socket (the renames of I(retire) and I(successor)).
    type: path
    default: /var/run/docker.sock
"""

EXAMPLES = r"""
- name: Switch to the staged successor of model-0 and record the release
  mlops_vm_replica_switch:
    ready_url: http://127.0.0.1:9081/ready
    upstream_file: /etc/mlops-vm/model/upstream.conf
    upstream_content: "server 127.0.0.1:9081;\n"
    switch_command: systemctl reload nginx
    retire: model-0
    successor: model-0-next
    record_file: /etc/mlops-vm/model/release.json
    record_content: '{"current": {"image": "model:1.1"}}'
    proxy_url: https://127.0.0.1:443/healthz
"""

RETURN = r"""
changes:
  description: What was (or, in check mode, would be) changed, in order.
  type: list
  elements: str
  returned: always
  sample: [upstream /etc/mlops-vm/model/upstream.conf, retire model-0 for model-0-next]
seconds:
  description: The seconds each step took (ready, switch, retire, record, proxy).
  type: dict
  returned: unless in check mode
"""

import functools
import os
import re
import shlex
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode

from ansible.module_utils.basic import AnsibleModule

try:  # the role's module_utils (the checkout, Molecule, the boot payload)
    from ansible.module_utils import mlops_vm_engine_api as engine_api
except ImportError:  # from the built collection
    from ansible_collections.mlops_vm.deploy.plugins.module_utils import (
        mlops_vm_engine_api as engine_api,
    )

# The proxy's workers (anchored: the command line the worker set for itself starts so, not
# one that only carries the pattern in its arguments), and those of them that finish the
# requests they had when the proxy was told to read its configuration again.
WORKER = "^nginx: worker process"
SHUTTING_DOWN = "^nginx: worker process is shutting down"
# The switch and the proxy's check poll finely: a release waits on them, host after host
# (a read of /proc or one local GET per poll). The background wait before an old replica
# stops waits on nobody, so it polls coarsely.
SWITCH_POLL_S = 0.05
DRAIN_POLL_S = 0.2


def differs(path: str, content: str) -> bool:
    try:
        with open(path, "rb") as current:
            return current.read() != content.encode()
    except FileNotFoundError:
        return True


def write(module: AnsibleModule, path: str, content: str) -> None:
    """Replace PATH atomically (a reader sees the old or the new file), root 0644."""
    descriptor, staged = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".mlops-vm-")
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content.encode())
    module.atomic_move(staged, path)
    module.set_owner_if_different(path, "root", False)
    module.set_group_if_different(path, "root", False)
    module.set_mode_if_different(path, "0644", False)


@functools.cache
def unverified_opener() -> urllib.request.OpenerDirector:
    """An opener for the host's own addresses: no HTTP proxy (a local address), HTTPS
    unverified (the host's own proxy at 127.0.0.1; the load balancer checks its certificate).
    A bare context, made once: create_default_context() reads the system's CA store on each
    call (20 ms idle on a VM, a swap asks twice), for certificates nobody verifies here."""
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=unverified)
    )


def answer(url: str, timeout: float) -> tuple[int | None, object]:
    """One GET (the standard library's: this module is sent to the host on each call, and
    Ansible's urls helpers would ride along with their own dependencies): status, reason."""
    try:
        with unverified_opener().open(url, timeout=timeout) as response:
            return response.status, response.reason
    except urllib.error.HTTPError as error:
        return error.code, error.reason
    except (urllib.error.URLError, OSError) as error:
        return None, getattr(error, "reason", error)


def check_ready(module: AnsibleModule, url: str) -> None:
    status, why = answer(url, module.params["ready_timeout"])
    if status != 200:
        module.fail_json(
            msg=f"The successor does not answer ready at {url} (status {status}: {why}); "
            "nothing was switched, the running replica keeps serving.",
            changed=False,
            changes=[],
        )


def check_proxy(module: AnsibleModule, changes: list[str]) -> None:
    """The host's proxy answers its health check through the replicas it now lists (what the
    load balancer's next check sees), polled until PROXY_TIMEOUT: the gate of an in-place
    release before its next batch."""
    url = module.params["proxy_url"]
    deadline = time.monotonic() + module.params["proxy_timeout"]
    while True:
        status, why = answer(url, max(1.0, deadline - time.monotonic()))
        if status == 200:
            return
        if time.monotonic() >= deadline:
            module.fail_json(
                msg=f"The host's proxy does not answer its health check at {url} after the "
                f"switch (status {status}: {why}).",
                changed=bool(changes),
                changes=changes,
            )
        time.sleep(SWITCH_POLL_S)


def run(module: AnsibleModule, args, **kwargs) -> str:
    rc, out, err = module.run_command(args, **kwargs)
    if rc != 0:
        module.fail_json(
            msg=f"{args} failed (rc {rc}): {err or out}", rc=rc, stdout=out, stderr=err
        )
    return out


def proxy_workers(module: AnsibleModule) -> dict[str, str]:
    """The command lines of the proxy's workers, by process id: the children of the master
    named in proxy_pid_file whose command line matches WORKER (none when no proxy runs).
    Read from /proc, as `pgrep -P <master> -f` reads it, without a process per poll."""
    try:
        with open(module.params["proxy_pid_file"]) as pid_file:
            master = pid_file.read().strip()
    except OSError:
        return {}
    if not master.isdigit():
        return {}
    workers = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat_file:
                stat = stat_file.read()
            # "pid (comm) state ppid ...": the name may hold spaces and parentheses.
            if stat[stat.rindex(b")") + 2 :].split()[1].decode() != master:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline_file:
                cmdline = cmdline_file.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
        if re.search(WORKER, cmdline):
            workers[pid] = cmdline
    return workers


def shutting_down(workers: dict[str, str]) -> set[str]:
    return {pid for pid, cmdline in workers.items() if re.search(SHUTTING_DOWN, cmdline)}


def switch_proxy(module: AnsibleModule, changes: list[str]) -> set[str]:
    """The switch, then a fine poll (a release waits on it) that ends as soon as every
    worker the proxy had before the switch has exited or is shutting down; returns those
    still shutting down (they finish their requests in flight, on the old replicas).

    A reload only signals the proxy's master (`systemctl reload nginx` and `nginx -s reload`
    return at once): until the master has read the new upstream, its old workers still take
    new requests for the old replicas and do not say "shutting down" yet. So the wait is on
    the workers from before the command, not on those shutting down when it returns. Not on
    their exit either: a worker shutting down sends no new request anywhere, but it may
    linger for many seconds on a client connection (Nginx's lingering close), and the
    release need not wait for that (retire waits for it before the old replica stops).
    One that does not shut down within drain_timeout means the proxy never read the new
    upstream, and the old replica must not stop: the switch fails."""
    before = set(proxy_workers(module))
    if module.params["switch_command"]:
        run(module, module.params["switch_command"], use_unsafe_shell=True)
    deadline = time.monotonic() + module.params["drain_timeout"]
    while True:
        workers = proxy_workers(module)
        left = before & set(workers)
        serving = left - shutting_down(workers)
        if not serving:
            return left
        if time.monotonic() >= deadline:
            module.fail_json(
                msg="The proxy did not take the new upstream: its workers from before the "
                f"switch still take requests after {module.params['drain_timeout']}s "
                f"({module.params['switch_command']!r}; see the proxy's error log). The "
                "running replica keeps serving.",
                changed=bool(changes),
                changes=changes,
            )
        time.sleep(SWITCH_POLL_S)


def rename(module: AnsibleModule, name: str, new_name: str) -> None:
    """The container NAME renamed NEW_NAME, through the Engine API (no docker process: a
    release waits for it, host after host)."""
    engine = engine_api.Engine(module.params["docker_socket"], 60)
    query = urlencode({"name": new_name})
    try:
        status, body = engine.request("POST", f"/containers/{quote(name, safe='')}/rename?{query}")
    except OSError as error:
        module.fail_json(msg=f"Cannot talk to the Docker engine to rename {name}: {error}")
    if status != 204:
        module.fail_json(msg=f"Cannot rename {name} to {new_name}: {engine_api.message_of(body)}")


def retire(module: AnsibleModule, name: str, successor: str, draining: set[str]) -> None:
    """Set the replica aside first (so the watchdog never starts it again while it stops),
    give the successor its name, then, in the background, wait until the proxy's workers
    DRAINING have exited (their requests in flight on it are done; drain_timeout at most),
    stop it and remove it: the proxy sends it no new request any more (the switch waited
    for that). A later swap removes what an interrupted stop left."""
    old = f"{name}-old"
    rename(module, name, old)
    rename(module, successor, name)
    polls = int(module.params["drain_timeout"] / DRAIN_POLL_S)
    wait = (
        f"for _ in $(seq {polls}); do alive=; for pid in {' '.join(sorted(draining))}; do "
        'kill -0 "$pid" 2>/dev/null && alive=1; done; [ -n "$alive" ] || break; '
        f"sleep {DRAIN_POLL_S}; done; "
        if draining
        else ""
    )
    stop = (
        f"{wait}docker stop --time {module.params['stop_timeout']} {shlex.quote(old)}; "
        f"docker rm --force {shlex.quote(old)}"
    )
    # Its own session (setsid) and no descriptor of this module's: the stop outlives the
    # module and does not hold its connection open.
    subprocess.Popen(
        ["sh", "-c", stop],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "ready_url": {"type": "str"},
            "ready_timeout": {"type": "int", "default": 5},
            "upstream_file": {"type": "path"},
            "upstream_content": {"type": "str"},
            "switch_command": {"type": "str", "default": ""},
            "drain_timeout": {"type": "int", "default": 30},
            "retire": {"type": "str"},
            "successor": {"type": "str"},
            "stop_timeout": {"type": "int", "default": 30},
            "record_file": {"type": "path"},
            "record_content": {"type": "str"},
            "proxy_url": {"type": "str"},
            "proxy_timeout": {"type": "int", "default": 10},
            "proxy_pid_file": {"type": "path", "default": "/run/nginx.pid"},
            "docker_socket": {"type": "path", "default": "/var/run/docker.sock"},
        },
        required_together=[
            ("upstream_file", "upstream_content"),
            ("retire", "successor"),
            ("record_file", "record_content"),
        ],
        supports_check_mode=True,
    )
    params = module.params
    upstream = params["upstream_file"] is not None and differs(
        params["upstream_file"], params["upstream_content"]
    )
    record = params["record_file"] is not None and differs(
        params["record_file"], params["record_content"]
    )
    changes = (
        ([f"upstream {params['upstream_file']}"] if upstream else [])
        + ([f"retire {params['retire']} for {params['successor']}"] if params["retire"] else [])
        + ([f"record {params['record_file']}"] if record else [])
    )
    if module.check_mode:
        module.exit_json(changed=bool(changes), changes=changes)
    # Where a swap's time goes (the drain waits on the clients' requests in flight).
    seconds = {}
    started = time.monotonic()

    def lap(step: str) -> None:
        nonlocal started
        seconds[step] = round(time.monotonic() - started, 3)
        started = time.monotonic()

    if params["ready_url"]:
        check_ready(module, params["ready_url"])
        lap("ready")
    draining: set[str] = set()
    if upstream:
        write(module, params["upstream_file"], params["upstream_content"])
        draining = switch_proxy(module, changes)
        lap("switch")
    if params["retire"]:
        retire(module, params["retire"], params["successor"], draining)
        lap("retire")
    if record:
        write(module, params["record_file"], params["record_content"])
        lap("record")
    if params["proxy_url"]:
        check_proxy(module, changes)
        lap("proxy")
    module.exit_json(changed=bool(changes), changes=changes, seconds=seconds)


if __name__ == "__main__":
    main()
