"""Model releases on the local cloud, felt the way a user feels them: a steady request loop
plus a concurrent load generator through the endpoint while releases, a bad release and
its automatic rollback run, counting every failed request.

Runs the real thing: 2 local VMs x 1 replica behind the local load balancer, images from
the TLS registry. One environment is shared by the tests of this module, in order (and with
test_local_lb_failover, which leaves both hosts serving).
"""

import json
import re
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from mlops_vm import paths
from mlops_vm.environment.load import load_environment
from mlops_vm.environment.specs import fleet_spec, provider_settings
from mlops_vm.localcloud import images, registry
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.provision import get_provider
from mlops_vm.provision.local import lb_admin
from tests import ansible_cli
from tests.environments import LOCAL_PAIR_ENV, LOCAL_PAIR_PORT, cli, cli_json
from tests.load import RequestLoop

pytestmark = pytest.mark.slow

ENV = LOCAL_PAIR_ENV
PORT = LOCAL_PAIR_PORT
REPOSITORY = f"{registry.ADDRESS}/{images.MODEL_REPOSITORY}"
IMAGE_10 = f"{REPOSITORY}:1.0"
IMAGE_11 = f"{REPOSITORY}:1.1"
BROKEN = f"{REPOSITORY}:{images.BROKEN_MODEL_VERSION}"
HOSTS = [f"mlops-vm-{ENV}-model-1", f"mlops-vm-{ENV}-model-2"]
# The rejoin of release-roll.yml (playbooks/release/rejoin.yml).
REJOIN = "Register the host with the load balancer and wait until it is healthy"


@pytest.fixture(scope="module")
def environment(local_pair):
    """The shared 2-host environment (tests/e2e/conftest.py), releases to be made on it."""
    return local_pair.directory


@pytest.fixture
def load(environment):
    """The steady loop (10 requests/s) plus a concurrent generator (2 clients, ~6 requests/s),
    under the proxies' default rate limit of 20 requests/s per client address."""
    ca_file = str(Path.home() / ".mlops-vm" / "envs" / ENV / "pki" / "ca.crt")
    endpoint = f"https://127.0.0.1:{PORT}"
    steady = RequestLoop(endpoint, ca_file, threads=1, interval_s=0.1)
    generator = RequestLoop(endpoint, ca_file, threads=2, interval_s=0.3)
    with steady, generator:
        # Answers from the running release before the change (one per client).
        steady.wait_requests(steady.threads)
        generator.wait_requests(generator.threads)
        yield steady, generator
    for loop in (steady, generator):
        assert loop.outcomes, "the load loop sent nothing"


def assert_no_failed_request(load) -> None:
    for loop in load:
        assert not loop.failures(), loop.summary()
    print("requests:", " + ".join(str(len(loop.outcomes)) for loop in load), "none failed")


def status(environment) -> tuple[int, dict]:
    return cli_json("status", str(environment))


def running(environment) -> dict[str, dict]:
    _, answer = status(environment)
    return {row["name"]: row for row in answer["instances"] if row["role"] == "model"}


def releases(hosts: dict[str, dict]) -> dict[str, tuple]:
    """What a release changes on each host (health text varies with HAProxy's check timing)."""
    fields = ("running_image", "previous_image", "deployed_by", "deployed_at", "replicas_ready")
    return {name: tuple(row[field] for field in fields) for name, row in hosts.items()}


def set_inventory(environment: Path, **model) -> None:
    path = environment / "group_vars" / "all" / "mlops_vm.yml"
    data = yaml.safe_load(path.read_text())
    data["mlops_vm"]["model"].update(model)
    path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False))


def created_at(host: str, container: str) -> float:
    """When CONTAINER was created on HOST, in this machine's time.monotonic()."""
    created = replica(host, "inspect", "--format", "{{.Created}}", container).strip()
    # RFC 3339 with nanoseconds: datetime takes microseconds.
    wall = datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", created).replace("Z", "+00:00"))
    return time.monotonic() - (time.time() - wall.timestamp())


def first_answer(loop: RequestLoop, version: str) -> float:
    """When the first request answered by VERSION started (time.monotonic())."""
    return min(o.started for o in loop.outcomes if o.ok and o.version == version)


def swap_events(task: str) -> dict[str, dict]:
    """The result events of TASK (res, start, end), by host, in the swap play of the latest
    run that had one (the CLI keeps each run's runner events; a later `status` is a run too)."""
    for run_dir in sorted((paths.STATE_DIR / "runs" / ENV).iterdir(), reverse=True):
        events = [
            json.loads(path.read_text()).get("event_data", {})
            for path in run_dir.rglob("job_events/*.json")
        ]
        swap = [data for data in events if data.get("play", "").startswith("Roll the release")]
        if swap:
            return {d["host"]: d for d in swap if d.get("task") == task and "res" in d}
    raise AssertionError(f"no run of {ENV} rolled a release")


def swap_results(task: str) -> dict[str, dict]:
    """The results of TASK, by host, in the latest run's swap play (swap_events)."""
    return {host: event["res"] for host, event in swap_events(task).items()}


def ssh_logins(vm: str) -> int:
    """How many SSH logins the VM's sshd accepted so far."""
    return docker("exec", vm, "journalctl", "-u", "ssh", "--no-pager").count("Accepted publickey")


def latest_masters_folder() -> Path:
    """The folder of the SSH masters of the latest run of ENV, from the variables its run
    record says Ansible was given (mlops_vm/ssh_connections.py)."""
    run_dir = max((paths.STATE_DIR / "runs" / ENV).iterdir())
    extra = json.loads((run_dir / "env" / "envvars").read_text())["ANSIBLE_SSH_EXTRA_ARGS"]
    return Path(re.search(r"ControlPath=(\S+)/%C", extra).group(1))


def processes_naming(text: str) -> list[str]:
    """Command lines of this machine's processes that contain TEXT."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if text in line:
            found.append(line)
    return found


def test_deploy_rolls_host_by_host_without_a_failed_request(environment, load):
    lb = f"mlops-vm-{ENV}-lb"
    logins_before = {vm: ssh_logins(vm) for vm in [lb, *HOSTS]}
    with LoadBalancerWatch(lb) as watch:
        code, summary = cli_json("deploy", str(environment), "--image", IMAGE_11)
    assert code == 0, summary
    # The lock, taken and released on the LB host at either end of the run, logged in once:
    # its release went over the command's master (mlops_vm/ssh_connections.py).
    logins = {vm: ssh_logins(vm) - before for vm, before in logins_before.items()}
    assert logins[lb] == 1, logins
    # ... and closed every master as it ended: none outlives the command.
    masters = latest_masters_folder()
    assert not masters.exists(), sorted(masters.iterdir())
    # `ssh -O exit` returns once a master has agreed to go, a moment before it has gone; a
    # master left open would stay 60 s (ControlPersist).
    deadline = time.monotonic() + 10
    while processes_naming(str(masters)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_naming(str(masters)) == []
    # In place (release.leave_load_balancer false): no host ever left the load balancer.
    assert watch.out == [], watch.out
    assert summary["release"]["image"] == IMAGE_11
    assert sorted(summary["release"]["hosts_changed"]) == HOSTS
    assert_no_failed_request(load)
    # From 1.0 to 1.1 through a time when one host answered 1.1 and the other 1.0.
    versions = load[0].versions()
    assert (versions[0], versions[-1], set(versions)) == ("1.0", "1.1", {"1.0", "1.1"}), versions
    hosts = running(environment)
    assert {h["running_image"] for h in hosts.values()} == {IMAGE_11}
    assert {h["previous_image"] for h in hosts.values()} == {IMAGE_10}
    # Host by host: one host's swap ended before the next one's began (the records'
    # deployed_at, to the second, may be the same second now).
    moments = sorted(h["deployed_at"] for h in hosts.values())
    assert moments[0] <= moments[1], moments
    swaps = swap_events("Switch to the staged successor and record the release")
    first, second = sorted(swaps.values(), key=lambda event: event["start"])
    assert first["end"] <= second["start"], (first["end"], second["start"])
    # The second host's new replica was started (staged in the pre-flight) before the first
    # host switched: the slow part of the swap overlapped, not host after host.
    assert created_at(HOSTS[1], "model-0") < first_answer(load[0], "1.1")
    # Each host's swap was the one task that switches to its staged successor (not the
    # general replicas.yml), and it recorded the release.
    switched = swap_results("Switch to the staged successor and record the release")
    assert sorted(switched) == HOSTS, switched
    for result in switched.values():
        assert result["changed"] and "record" in result["seconds"], result
        # In place, the batch's gate: the host's own Nginx answered the health check after
        # the switch (in the same round trip), and the host, never out of the load
        # balancer, was not registered again.
        assert "proxy" in result["seconds"], result
    # Its readiness was not asked again in the roll (the switch asks it in its own round trip).
    assert swap_results("Start the successor and wait until it is ready, replica model-0") == {}
    assert swap_results(REJOIN) == {}


def test_status_shows_running_and_previous_and_exits_0(environment):
    code, answer = status(environment)
    assert code == 0, answer
    assert answer["release"] == IMAGE_11
    assert answer["inventory_image"] == IMAGE_10
    for row in answer["instances"]:
        if row["role"] == "model":
            assert row["healthy"] is True
            assert row["replicas_ready"] == row["replicas"] == 1
            assert row["deployed_by"] == "deploy"


def test_provision_keeps_the_deployed_release_and_says_so(environment):
    code, summary = cli_json("provision", str(environment))
    assert code == 0, summary
    assert summary["release"]["hosts_changed"] == []
    assert "keeping the running release" in " ".join(summary["release"]["notes"])
    assert {h["running_image"] for h in running(environment).values()} == {IMAGE_11}


def test_rollback_returns_to_the_previous_release(environment, load):
    # A host out of the load balancer before the release (as an interrupted run may leave
    # one): the release, in place, registers it again and waits until it is healthy; the
    # host the load balancer reported healthy is not registered again.
    lb_admin.set_state(f"mlops-vm-{ENV}-lb", HOSTS[1], "maint")
    code, summary = cli_json("rollback", str(environment))
    assert code == 0, summary
    assert sorted(swap_results(REJOIN)) == [HOSTS[1]]
    assert_every_host_serves_behind_the_load_balancer()
    assert_no_failed_request(load)
    versions = load[0].versions()
    assert (versions[0], versions[-1], set(versions)) == ("1.1", "1.0", {"1.0", "1.1"}), versions
    hosts = running(environment)
    assert {h["running_image"] for h in hosts.values()} == {IMAGE_10}
    assert {h["previous_image"] for h in hosts.values()} == {IMAGE_11}
    assert {h["deployed_by"] for h in hosts.values()} == {"rollback"}


def test_deploy_of_the_running_release_changes_nothing(environment, load):
    code, summary = cli_json("deploy", str(environment), "--image", IMAGE_10)
    assert code == 0, summary
    assert summary["release"]["hosts_changed"] == []
    assert summary["changed"] == 0, summary["changed_by_host"]
    assert_no_failed_request(load)


def test_deploy_check_plans_the_release_and_changes_nothing(environment, load):
    before = running(environment)
    code, summary = cli_json("deploy", str(environment), "--image", IMAGE_11, "--check")
    assert code == 0, summary
    assert sorted(summary["release"]["hosts_changed"]) == HOSTS  # the plan
    assert_no_failed_request(load)
    assert load[0].versions() == ["1.0"]
    assert releases(running(environment)) == releases(before)


def assert_every_host_serves_behind_the_load_balancer() -> None:
    """Every model host registered with the local load balancer and healthy there."""
    servers = lb_admin.servers(f"mlops-vm-{ENV}-lb")
    assert {name: server.healthy for name, server in servers.items() if name in HOSTS} == {
        host: True for host in HOSTS
    }, {name: server.reason for name, server in servers.items()}


def test_a_release_that_never_gets_ready_stops_before_any_host_switched(environment, load):
    before = running(environment)
    with LoadBalancerWatch(f"mlops-vm-{ENV}-lb") as watch:
        code, summary = cli_json("deploy", str(environment), "--image", BROKEN)
    assert code == 1, summary
    failure = summary["release"]["failure"]
    assert failure["image"] == BROKEN
    assert failure["host"] == HOSTS[0]
    # Found in the pre-flight, where every host staged its successor beside its replica.
    assert failure["task"] == "Stage the successor of the first replica beside it"
    assert "keeps restarting" in failure["reason"] or "exited" in failure["reason"]
    assert "/nonexistent/model.joblib" in failure["reason"]  # the container's own log
    # Nothing switched, so nothing is said to have changed or been rolled back.
    assert summary["release"]["hosts_changed"] == []
    assert any("before any host switched to it" in f["message"] for f in summary["failures"])
    assert_no_failed_request(load)
    assert load[0].versions() == ["1.0"]
    # No host switched or left the load balancer, and no successor is left behind.
    assert releases(running(environment)) == releases(before)
    assert watch.out == [], watch.out
    for host in HOSTS:
        assert replica(host, "ps", "--all", "--format", "{{.Names}}").split() == ["model-0"]
    assert_every_host_serves_behind_the_load_balancer()


def test_a_memory_limit_the_model_cannot_live_in_stops_provision_before_any_host_switched(
    environment, load
):
    before = running(environment)
    set_inventory(environment, memory="40m")
    try:
        code, summary = cli_json("provision", str(environment))
    finally:
        set_inventory(environment, memory="512m")
    assert code == 1, summary
    assert "out of memory" in summary["release"]["failure"]["reason"]
    assert_no_failed_request(load)
    # Stopped in the pre-flight: every host still runs what it ran, as it recorded it.
    assert releases(running(environment)) == releases(before)


def test_a_missing_tag_is_refused_before_any_host_leaves_the_load_balancer(environment, load):
    before = running(environment)
    code, summary = cli_json("deploy", str(environment), "--image", f"{REPOSITORY}:9.9")
    assert code == 1, summary
    pull = "Pull the model image and read the release this host runs"
    assert {f["task"] for f in summary["failures"]} == {pull}
    assert_no_failed_request(load)
    assert releases(running(environment)) == releases(before)


def test_provision_with_an_edited_inventory_releases_safely(environment, load):
    set_inventory(environment, image=IMAGE_11, memory="600m")
    code, summary = cli_json("provision", str(environment))
    assert code == 0, summary
    assert sorted(summary["release"]["hosts_changed"]) == HOSTS
    assert_no_failed_request(load)
    hosts = running(environment)
    assert {h["running_image"] for h in hosts.values()} == {IMAGE_11}
    assert {h["deployed_by"] for h in hosts.values()} == {"provision"}


def test_ansible_playbook_releases_safely(environment, load):
    proc = ansible_playbook(environment, "-e", f"mlops_vm_release_image={IMAGE_10}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert_no_failed_request(load)
    assert {h["running_image"] for h in running(environment).values()} == {IMAGE_10}


def ansible_playbook(environment: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return ansible_cli.ansible_playbook(
        "-i",
        str(environment),
        str(paths.PROJECT_DIR / "playbooks" / "release.yml"),
        *args,
        timeout=1200,
    )


def test_logs_show_every_host_and_container(environment):
    proc = cli("logs", str(environment), "--tail", "20")
    assert proc.returncode == 0, proc.stderr
    for host in HOSTS:
        assert f"{host} | model-0 | " in proc.stdout, proc.stdout[-2000:]
    assert "Application startup complete" in proc.stdout
    one = cli("logs", str(environment), "--host", HOSTS[1], "--tail", "5")
    assert HOSTS[0] not in one.stdout and HOSTS[1] in one.stdout


def replica(host: str, *args: str) -> str:
    return docker("exec", host, "docker", *args)


def test_status_exits_1_while_a_replica_is_down_and_the_watchdog_revives_it(environment):
    host = HOSTS[1]
    docker("exec", host, "systemctl", "stop", "mlops-vm-replicas.timer")
    replica(host, "kill", "model-0")
    code, answer = status(environment)
    assert code == 1, answer
    assert any(host in problem and "replicas ready" in problem for problem in answer["problems"])
    docker("exec", host, "systemctl", "start", "mlops-vm-replicas.timer")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = json.loads(replica(host, "inspect", "model-0"))[0]["State"]
        if state["Running"] and status(environment)[0] == 0:
            break
        time.sleep(2)
    else:
        pytest.fail(f"model-0 on {host} did not come back after docker kill: {state}")


class LoadBalancerWatch(threading.Thread):
    """Which servers are out of the local load balancer, read every 0.1 s (the distinct
    sets seen, in order)."""

    def __init__(self, lb_host: str) -> None:
        super().__init__(daemon=True)
        self.lb_host = lb_host
        self.out: list[set[str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            servers = lb_admin.servers(self.lb_host)
            out = {name for name, server in servers.items() if not server.registered}
            if out and (not self.out or self.out[-1] != out):
                self.out.append(out)

    def __enter__(self) -> "LoadBalancerWatch":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join(timeout=10)


def vm_limits(host: str) -> tuple[int, int]:
    config = json.loads(docker("inspect", "--format", "{{json .HostConfig}}", host))
    return config["NanoCpus"], config["Memory"]


def test_a_resize_under_load_goes_host_by_host_without_a_failed_request(environment, load):
    path = environment / "group_vars" / "all" / "mlops_vm.yml"
    data = yaml.safe_load(path.read_text())
    data["mlops_vm"]["fleet"]["machine_type"] = "local-medium"  # 2 CPUs, 4 GiB
    path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False))
    code, plan = cli_json("provision", str(environment), "--check")
    assert code == 0, plan
    resizes = [c for c in plan["planned"] if c.startswith("update instance")]
    assert resizes == [
        f"update instance {h} (resize to local-medium (2 CPUs, 4 GiB))" for h in HOSTS
    ]
    assert {vm_limits(host) for host in HOSTS} == {(0, 0)}  # the plan changed nothing

    with LoadBalancerWatch(f"mlops-vm-{ENV}-lb") as watch:
        code, summary = cli_json("provision", str(environment))
    assert code == 0, summary
    assert [c for c in summary["changes"] if c.startswith("update instance")] == resizes
    assert_no_failed_request(load)
    assert {vm_limits(host) for host in HOSTS} == {(2 * 10**9, 4 * 2**30)}
    # Host by host: each left the load balancer, and never both at once.
    assert set().union(*watch.out) == set(HOSTS), watch.out
    assert max(len(out) for out in watch.out) == 1, watch.out

    # A second run would resize nothing (its plan; a whole run costs a minute here).
    loaded = load_environment(environment)
    provider = get_provider(provider_settings(loaded.config))
    assert provider.plan_resizes(fleet_spec(loaded.config, loaded.inventory_dir)) == {}


def test_a_release_that_leaves_the_load_balancer_drains_host_by_host(environment, load):
    path = environment / "group_vars" / "all" / "mlops_vm.yml"
    data = yaml.safe_load(path.read_text())
    data["mlops_vm"].setdefault("release", {})["leave_load_balancer"] = True
    path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False))
    try:
        with LoadBalancerWatch(f"mlops-vm-{ENV}-lb") as watch:
            code, summary = cli_json("deploy", str(environment), "--image", IMAGE_11)
    finally:
        data["mlops_vm"]["release"].pop("leave_load_balancer")
        path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False))
    assert code == 0, summary
    assert_no_failed_request(load)
    assert {h["running_image"] for h in running(environment).values()} == {IMAGE_11}
    # Each host left the load balancer for its swap, never both at once, and came back.
    assert set().union(*watch.out) == set(HOSTS), watch.out
    assert max(len(out) for out in watch.out) == 1, watch.out
    assert_every_host_serves_behind_the_load_balancer()
