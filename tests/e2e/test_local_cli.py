"""`mlops-vm provision` on the local cloud, from nothing to predictions and back to nothing.

One environment is shared by the tests of this module, in order: plan, provision, second
run, status, a failure in the middle and its repair, a release then a scale-in and a
scale-out under a request loop, destroy.
"""

import secrets
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from sklearn.datasets import load_iris

from mlops_vm.localcloud import images, registry
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.localcloud.vm import container_ip
from mlops_vm.provision.local import lb_admin
from mlops_vm.provision.local import resources as res
from tests.environments import cli, cli_json, fresh_environment, labelled, nothing_labelled
from tests.load import RequestLoop

pytestmark = pytest.mark.slow

ENV = "e2e"
PORT = 18443
IMAGE_11 = f"{registry.ADDRESS}/{images.MODEL_REPOSITORY}:1.1"
# The environment's API key: a secret variable (a vault file in real use) that the settings
# refer to; every request but the health check must carry it.
API_KEY = secrets.token_urlsafe(32)
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Added by the model hosts' Nginx only; the LB tier (HAProxy) passes them through.
SECURITY_HEADERS = (
    "Strict-Transport-Security",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Content-Security-Policy",
    "Referrer-Policy",
    "Cross-Origin-Resource-Policy",
)


@pytest.fixture(scope="module")
def environment(platform, tmp_path_factory):
    overrides = {
        "load_balancer": {"publish_port": PORT},
        "auth": {"api_keys": ["{{ e2e_api_key }}"]},
    }
    with fresh_environment(tmp_path_factory.mktemp("inventories"), ENV, overrides) as directory:
        (directory / "group_vars" / "all" / "secrets.yml").write_text(f"e2e_api_key: {API_KEY}\n")
        yield directory


@pytest.fixture(scope="module")
def provisioned(environment):
    code, summary = cli_json("provision", str(environment))
    assert code == 0, summary
    return summary


def predict(summary: dict, rows) -> httpx.Response:
    return httpx.post(
        f"{summary['endpoint']}/predict",
        json={"instances": rows.tolist()},
        headers=AUTH,
        verify=summary["ca_file"],
        timeout=30,
    )


def test_check_on_an_empty_environment_plans_and_creates_nothing(environment):
    code, plan = cli_json("provision", str(environment), "--check")
    assert code == 0, plan
    planned = "\n".join(plan["planned"])
    assert "create network mlops-vm-e2e" in planned
    assert "create instance mlops-vm-e2e-model-1" in planned
    assert "create instance mlops-vm-e2e-model-2" in planned
    assert "create lb_host mlops-vm-e2e-lb" in planned
    assert nothing_labelled(ENV)


def test_provision_serves_correct_predictions_over_verified_tls(provisioned, reference_model):
    assert provisioned["endpoint"] == f"https://127.0.0.1:{PORT}"
    assert provisioned["changed"] > 0
    rows = load_iris().data[::5]
    answer = predict(provisioned, rows)
    assert answer.status_code == 200
    assert answer.json()["predictions"] == reference_model.predict(rows).tolist()
    with pytest.raises(httpx.ConnectError):  # the certificate is the generated CA's, only
        httpx.get(f"{provisioned['endpoint']}/healthz", timeout=5)
    assert len(labelled(ENV)["containers"]) == 3  # two model VMs and the LB host


def test_each_security_header_is_sent_once(provisioned):
    """Twice would mean both tiers add it (browsers then may ignore or merge the values)."""
    answer = predict(provisioned, load_iris().data[:1])
    assert answer.status_code == 200
    counts = {name: len(answer.headers.get_list(name)) for name in SECURITY_HEADERS}
    assert counts == dict.fromkeys(SECURITY_HEADERS, 1)


def test_without_the_api_key_only_the_health_path_answers(provisioned):
    endpoint, ca = provisioned["endpoint"], provisioned["ca_file"]
    refused = httpx.post(f"{endpoint}/predict", json={"instances": [[1, 2, 3, 4]]}, verify=ca)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="mlops-vm"'
    wrong = httpx.post(
        f"{endpoint}/predict",
        json={"instances": [[1, 2, 3, 4]]},
        headers={"X-API-Key": API_KEY[:-1]},
        verify=ca,
    )
    assert wrong.status_code == 401
    assert httpx.get(f"{endpoint}/healthz", verify=ca).status_code == 200


def test_the_rate_limit_is_counted_once_at_the_edge(provisioned):
    """The default (100/s and a burst of 200 per client address) is counted by the LB host,
    over 10 s; the model hosts behind it do not count again."""

    def config(vm: str, path: str) -> str:
        return subprocess.run(
            ["docker", "exec", vm, "cat", path],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert "sc_http_req_rate(0) gt 1200" in config(
        res.vm_name(ENV, "lb"), "/etc/haproxy/haproxy.cfg"
    )
    model_nginx = config(res.vm_name(ENV, "model", 1), "/etc/nginx/nginx.conf")
    assert "limit_req " not in model_nginx
    assert "set_real_ip_from 10.213." in model_nginx  # only the environment's own network


def test_plain_http_is_redirected_to_https_on_the_published_port(provisioned):
    """Port 80 of the LB host is reached at its address on the environment's network (the
    host publishes only HTTPS); the redirect keeps the host, path and query and names the
    port HTTPS is published on, not the LB host's own 443 nor the port asked on."""
    lb_address = container_ip(res.vm_name(ENV, "lb"), res.network_name(ENV))
    assert lb_address
    plain = httpx.get(f"http://{lb_address}/predict?probe=1", timeout=10)
    assert plain.status_code == 301
    assert plain.headers["location"] == f"https://{lb_address}:{PORT}/predict?probe=1"
    # A Host header with a port of its own: the port is replaced, the host kept.
    named = httpx.get(
        f"http://{lb_address}/healthz", headers={"Host": "localhost:8080"}, timeout=10
    )
    assert named.status_code == 301
    assert named.headers["location"] == f"https://localhost:{PORT}/healthz"


def test_the_run_folder_never_holds_the_registry_password_or_the_api_key(provisioned, platform):
    run_dir = Path(provisioned["run_dir"])
    files = [path for path in run_dir.rglob("*") if path.is_file()]
    assert any(path.name == "stdout" for path in files)  # the log is really there
    leaks = [
        path
        for path in files
        for secret in (platform.password, API_KEY)
        if secret in path.read_text(errors="replace")
    ]
    assert leaks == []


def test_second_provision_changes_nothing(provisioned, environment):
    code, summary = cli_json("provision", str(environment))
    assert code == 0, summary
    assert summary["changed"] == 0, summary["changed_by_host"]
    assert summary["changes"] == []
    assert {t["instance_id"] for t in summary["targets"] if t["healthy"]} == {
        "mlops-vm-e2e-model-1",
        "mlops-vm-e2e-model-2",
    }


def test_status_lists_the_vms_and_their_health(provisioned, environment):
    code, status = cli_json("status", str(environment))
    assert code == 0, status
    by_name = {row["name"]: row for row in status["instances"]}
    assert set(by_name) == {"mlops-vm-e2e-model-1", "mlops-vm-e2e-model-2", "mlops-vm-e2e-lb"}
    assert by_name["mlops-vm-e2e-model-1"]["healthy"] is True
    assert by_name["mlops-vm-e2e-model-2"]["healthy"] is True
    assert all(row["status"] == "running" for row in status["instances"])


def test_exec_prefixes_each_host_and_exits_with_the_worst_code(provisioned, environment):
    # Read-only commands: the hosts are left as the next tests expect them.
    proc = cli("exec", str(environment), "--", "hostname")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = dict(line.split(" | ", 1) for line in proc.stdout.splitlines())
    assert set(names) == {"mlops-vm-e2e-model-1", "mlops-vm-e2e-model-2"}
    assert all(names.values()) and len(set(names.values())) == 2

    first = names["mlops-vm-e2e-model-1"]
    fails_on_one = f'if [ "$(hostname)" = {first} ]; then echo failing; exit 3; fi; echo fine'
    proc = cli("exec", str(environment), "--all", "--", fails_on_one)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert sorted(proc.stdout.splitlines()) == [
        "mlops-vm-e2e-model-1 | failing",
        "mlops-vm-e2e-model-2 | fine",
    ]
    proc = cli("exec", str(environment), "--host", "mlops-vm-e2e-model-2", "--", "id", "-u")
    assert (proc.returncode, proc.stdout) == (0, "mlops-vm-e2e-model-2 | 0\n")


def test_a_failing_host_is_named_and_a_rerun_after_the_fix_converges(
    provisioned, environment, reference_model
):
    settings = environment / "group_vars" / "all" / "mlops_vm.yml"
    good = settings.read_text()
    settings.write_text(good.replace("model-service:1.0", "model-service:9.9-missing"))
    try:
        code, summary = cli_json("provision", str(environment))
    finally:
        settings.write_text(good)
    assert code == 1, summary
    failures = summary["failures"]
    assert {f["host"] for f in failures} >= {"mlops-vm-e2e-model-1"}
    assert any("pull" in f["task"].lower() for f in failures), failures
    assert any("9.9-missing" in f["message"] for f in failures), failures

    code, summary = cli_json("provision", str(environment))
    assert code == 0, summary
    rows = load_iris().data[::9]
    assert predict(summary, rows).json()["predictions"] == reference_model.predict(rows).tolist()


def set_fleet_count(environment: Path, count: int) -> None:
    path = environment / "group_vars" / "all" / "mlops_vm.yml"
    data = yaml.safe_load(path.read_text())
    data["mlops_vm"]["fleet"]["count"] = count
    path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False))


def provision_count_under_a_request_loop(provisioned, environment: Path, count: int) -> dict:
    """fleet.count set to COUNT, then `provision` while a keep-alive client sends a request
    every 0.1 s through the endpoint: the run succeeds and no request fails."""
    set_fleet_count(environment, count)
    endpoint, ca_file = provisioned["endpoint"], provisioned["ca_file"]
    with RequestLoop(endpoint, ca_file, threads=1, interval_s=0.1, headers=AUTH) as loop:
        code, summary = cli_json("provision", str(environment))
    assert code == 0, summary.get("failures") or summary
    assert loop.outcomes, "the request loop sent nothing"
    assert not loop.failures(), loop.summary()
    print("requests:", len(loop.outcomes), "none failed")
    return summary


def assert_the_fleet_serves_and_converged(environment: Path, names: list[str]) -> None:
    """The model VMs are NAMES, healthy, on the deployed release; a second run changes nothing."""
    code, status = cli_json("status", str(environment))
    assert code == 0, status
    rows = {row["name"]: row for row in status["instances"] if row["role"] == "model"}
    assert sorted(rows) == names
    assert all(row["healthy"] is True for row in rows.values()), rows
    assert {row["running_image"] for row in rows.values()} == {IMAGE_11}  # the deployed one

    code, again = cli_json("provision", str(environment))
    assert code == 0, again.get("failures") or again
    assert again["changed"] == 0, again.get("changed_by_host")


def test_scale_in_drains_the_removed_vm_and_converges(provisioned, environment):
    """Issue 26: with a release made by `deploy --image`, fleet.count 2 -> 1 crashed the run
    and the removed VM cut a request off. The VM that goes must leave the load balancer and
    drain before it is removed, the play must not contact it, and the run must converge."""
    code, summary = cli_json("deploy", str(environment), "--image", IMAGE_11)
    assert code == 0, summary.get("failures") or summary
    summary = provision_count_under_a_request_loop(provisioned, environment, 1)

    removed = "mlops-vm-e2e-model-2"
    changes = summary["changes"]
    drained = f"update lb_target {removed} (drain and deregister)"
    assert drained in changes, changes
    assert changes.index(drained) < changes.index(f"delete instance {removed}"), changes
    assert not docker("ps", "-aq", "--filter", f"name=^{removed}$")
    assert_the_fleet_serves_and_converged(environment, ["mlops-vm-e2e-model-1"])


def test_scale_out_adds_a_vm_on_the_running_release_with_no_failed_request(
    provisioned, environment
):
    """After the scale-in above (fleet.count 1, release 1.1 from `deploy --image`): back to 2.
    The new VM runs the release the fleet runs, and joins the load balancer at run time:
    HAProxy is not reloaded (a reload closes the clients' idle keep-alive connections, and a
    request sent at that moment gets no answer)."""
    lb = res.vm_name(ENV, "lb")
    worker = haproxy_pid(lb)
    provision_count_under_a_request_loop(provisioned, environment, 2)
    assert haproxy_pid(lb) == worker, "HAProxy was reloaded"
    assert_the_fleet_serves_and_converged(
        environment, ["mlops-vm-e2e-model-1", "mlops-vm-e2e-model-2"]
    )


def haproxy_pid(lb: str) -> str:
    """The process id of the HAProxy worker answering the runtime API (a reload changes it)."""
    info = lb_admin.command(lb, "show info")
    return next(line for line in info.splitlines() if line.startswith("Pid:"))


def test_destroy_leaves_nothing_labelled_and_twice_is_a_no_op(provisioned, environment):
    code, summary = cli_json("destroy", str(environment), "--yes")
    assert code == 0, summary
    assert any("delete network mlops-vm-e2e" in c for c in summary["changes"])
    assert labelled(ENV) == {"containers": [], "networks": [], "volumes": []}
    code, again = cli_json("destroy", str(environment), "--yes")
    assert code == 0, again
    assert again["changes"] == []
