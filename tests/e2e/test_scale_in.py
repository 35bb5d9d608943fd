"""Scaling a local fleet in under a steady request loop: the VM that goes leaves the load
balancer and drains before it is removed, the run converges and a second one changes
nothing (issue 26: the removed VM was contacted by the play and cut a request off).

Runs the real thing: 3 local VMs x 1 replica behind the local load balancer, the release
made by `deploy --image`, then fleet.count 3 -> 2.
"""

from pathlib import Path

import pytest
import yaml

from mlops_vm.localcloud import images, registry
from mlops_vm.localcloud.docker_cli import docker
from tests.environments import cli_json, fresh_environment
from tests.load import RequestLoop

pytestmark = pytest.mark.slow

ENV = "scalein"
PORT = 18493
IMAGE_11 = f"{registry.ADDRESS}/{images.MODEL_REPOSITORY}:1.1"
HOSTS = [f"mlops-vm-{ENV}-model-{index}" for index in (1, 2, 3)]


@pytest.fixture(scope="module")
def environment(platform, tmp_path_factory):
    overrides = {
        "fleet": {"count": 3},
        "load_balancer": {"publish_port": PORT},
        "release": {"ready_timeout_s": 60},
    }
    with fresh_environment(tmp_path_factory.mktemp("inventories"), ENV, overrides) as directory:
        code, summary = cli_json("provision", str(directory))
        assert code == 0, summary.get("failures") or summary
        yield directory


def set_fleet_count(environment: Path, count: int) -> None:
    path = environment / "group_vars" / "all" / "mlops_vm.yml"
    data = yaml.safe_load(path.read_text())
    data["mlops_vm"]["fleet"]["count"] = count
    path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False))


def model_rows(environment: Path) -> dict[str, dict]:
    code, status = cli_json("status", str(environment))
    assert code == 0, status
    return {row["name"]: row for row in status["instances"] if row["role"] == "model"}


def test_scale_in_drains_the_removed_vm_and_converges(environment):
    code, summary = cli_json("deploy", str(environment), "--image", IMAGE_11)
    assert code == 0, summary.get("failures") or summary
    set_fleet_count(environment, 2)

    ca_file = str(Path.home() / ".mlops-vm" / "envs" / ENV / "pki" / "ca.crt")
    with RequestLoop(f"https://127.0.0.1:{PORT}", ca_file, threads=1, interval_s=0.1) as loop:
        code, summary = cli_json("provision", str(environment))
    assert code == 0, summary.get("failures") or summary
    assert loop.outcomes, "the request loop sent nothing"
    assert not loop.failures(), loop.summary()
    print("requests:", len(loop.outcomes), "none failed")

    # The VM that went left the load balancer first (its drain is part of the run).
    removed = HOSTS[2]
    changes = summary["changes"]
    drained = f"update lb_target {removed} (drain and deregister)"
    assert drained in changes, changes
    assert changes.index(drained) < changes.index(f"delete instance {removed}"), changes
    assert not docker("ps", "-aq", "--filter", f"name=^{removed}$")

    rows = model_rows(environment)
    assert sorted(rows) == HOSTS[:2]
    assert all(row["healthy"] is True for row in rows.values()), rows
    assert {row["running_image"] for row in rows.values()} == {IMAGE_11}  # the deployed one

    code, again = cli_json("provision", str(environment))
    assert code == 0, again.get("failures") or again
    assert again["changed"] == 0, again.get("changed_by_host")
