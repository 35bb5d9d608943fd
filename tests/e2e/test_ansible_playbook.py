"""The same playbooks without the CLI: `ansible-playbook -i <env> playbooks/provision.yml`."""

import re
from pathlib import Path

import httpx
import pytest

from mlops_vm import paths
from tests import ansible_cli
from tests.environments import make_environment, nothing_labelled

pytestmark = pytest.mark.slow

ENV = "playbook-e2e"
PORT = 18444
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def ansible_playbook(directory: Path, playbook: str) -> tuple[int, str]:
    proc = ansible_cli.ansible_playbook("-i", str(directory), f"playbooks/{playbook}", timeout=1500)
    return proc.returncode, proc.stdout + proc.stderr


def recap(output: str) -> dict[str, tuple[int, int, int]]:
    """host -> (changed, unreachable, failed) from the PLAY RECAP."""
    return {m[0]: (int(m[2]), int(m[3]), int(m[4])) for m in RECAP.findall(output)}


@pytest.fixture(scope="module")
def environment(platform, tmp_path_factory):
    # Its subject is the playbooks without the CLI, not installation: the host starts with
    # its packages (test_local_cli installs them from nothing).
    directory = make_environment(
        tmp_path_factory.mktemp("inventories"),
        ENV,
        {
            "fleet": {"count": 1},
            "load_balancer": {"publish_port": PORT},
        },
        packaged_hosts=True,
    )
    yield directory
    ansible_playbook(directory, "destroy.yml")


def test_provision_then_no_change_then_destroy(environment, reference_model):
    from sklearn.datasets import load_iris

    code, output = ansible_playbook(environment, "provision.yml")
    assert code == 0, output[-3000:]
    ca = paths.STATE_DIR / "envs" / ENV / "pki" / "ca.crt"
    rows = load_iris().data[::13]
    answer = httpx.post(
        f"https://127.0.0.1:{PORT}/predict",
        json={"instances": rows.tolist()},
        verify=str(ca),
        timeout=30,
    )
    assert answer.json()["predictions"] == reference_model.predict(rows).tolist()

    code, output = ansible_playbook(environment, "provision.yml")
    assert code == 0, output[-3000:]
    hosts = recap(output)
    assert set(hosts) == {"localhost", f"mlops-vm-{ENV}-model-1", f"mlops-vm-{ENV}-lb"}
    assert all(counts == (0, 0, 0) for counts in hosts.values()), hosts

    code, output = ansible_playbook(environment, "destroy.yml")
    assert code == 0, output[-3000:]
    assert nothing_labelled(ENV)
