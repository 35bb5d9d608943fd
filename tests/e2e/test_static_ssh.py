"""The `static` provider: two hosts you already have, configured over real SSH.

The hosts are local VMs running sshd; the environment names their addresses, the SSH user
and the key. This proves the path cloud VMs take: key auth, a non-root user with sudo
(become), pipelining, and host keys trusted on first contact per environment.
"""

import subprocess
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris

from mlops_vm.localcloud import registry
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.localcloud.vm import container_ip, remove_vm, run_vm, wait_booted
from mlops_vm.paths import known_hosts_file
from tests.environments import cli_json, make_environment

pytestmark = pytest.mark.slow

ENV = "static-e2e"
HOSTS = ("mlops-vm-test-static-1", "mlops-vm-test-static-2")


def prepare_host(name: str, public_key: str) -> None:
    """What the user's own machine already has: a sudo user reachable with their key."""
    wait_booted(name)
    script = (
        "useradd --create-home --shell /bin/bash admin"
        " && echo 'admin ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/admin"
        " && install -d -m 700 -o admin -g admin /home/admin/.ssh"
        f" && echo '{public_key}' > /home/admin/.ssh/authorized_keys"
        " && chown admin:admin /home/admin/.ssh/authorized_keys"
        " && chmod 600 /home/admin/.ssh/authorized_keys"
    )
    docker("exec", name, "bash", "-c", script)


@pytest.fixture(scope="module")
def static_hosts(platform, tmp_path_factory):
    keys = tmp_path_factory.mktemp("ssh")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "id")], check=True
    )
    public_key = (keys / "id.pub").read_text().strip()
    for name in HOSTS:
        remove_vm(name)
        run_vm(name, network=registry.NETWORK, labels={"org.mlops-vm.test": ENV})
    for name in HOSTS:
        prepare_host(name, public_key)
    known_hosts_file(ENV).unlink(missing_ok=True)
    yield keys / "id", [container_ip(name, registry.NETWORK) for name in HOSTS]
    for name in HOSTS:
        remove_vm(name)


@pytest.fixture(scope="module")
def provisioned(static_hosts, tmp_path_factory):
    key, addresses = static_hosts
    directory = make_environment(
        tmp_path_factory.mktemp("inventories"),
        ENV,
        {
            "provider": {"name": "static"},
            "fleet": {
                "ssh_user": "admin",
                "ssh_private_key_file": str(key),
                "hosts": [
                    {"name": f"static-{i}", "address": a} for i, a in enumerate(addresses, 1)
                ],
            },
        },
    )
    code, summary = cli_json("provision", str(directory))
    assert code == 0, summary
    return summary, addresses, directory


def test_every_host_serves_predictions_through_its_nginx(provisioned, reference_model):
    summary, addresses, _ = provisioned
    rows = load_iris().data[::11]
    for address in addresses:
        answer = httpx.post(
            f"https://{address}/predict",
            json={"instances": rows.tolist()},
            verify=summary["ca_file"],
            timeout=30,
        )
        assert answer.status_code == 200, address
        assert answer.json()["predictions"] == reference_model.predict(rows).tolist()


def test_hosts_were_reached_over_ssh_as_the_configured_user(provisioned):
    summary, addresses, _ = provisioned
    assert sorted(summary["hosts"]) == ["static-1", "static-2"]
    for address in addresses:  # entries may be hashed (HashKnownHosts): ask ssh-keygen
        found = subprocess.run(
            ["ssh-keygen", "-F", address, "-f", str(known_hosts_file(ENV))],
            capture_output=True,
            check=False,
        )
        assert found.returncode == 0, address
    for name in HOSTS:
        log = docker("exec", name, "journalctl", "-u", "ssh", "--no-pager")
        assert "Accepted publickey for admin" in log


def test_a_host_whose_key_changed_is_refused(provisioned, tmp_path):
    """accept-new trusts a first key only: a different key at a known address stops the run."""
    _, addresses, directory = provisioned
    known_hosts = known_hosts_file(ENV)
    recorded = known_hosts.read_text()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True
    )
    other_key = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    subprocess.run(["ssh-keygen", "-R", addresses[0], "-f", str(known_hosts)], check=True)
    known_hosts.write_text(known_hosts.read_text() + f"{addresses[0]} {other_key}\n")
    # The provision's SSH master connections (ControlPersist) would skip the key exchange.
    for socket in (Path.home() / ".ansible" / "cp").glob("*"):
        socket.unlink()
    try:
        code, summary = cli_json("provision", str(directory), "--check")
    finally:
        known_hosts.write_text(recorded)
    assert code == 1, summary
    assert "static-1" in {failure["host"] for failure in summary["failures"]}, summary
    assert "HOST IDENTIFICATION HAS CHANGED" in str(summary["failures"]), summary
