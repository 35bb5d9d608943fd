"""The real configure step of a release image, on a local VM: the roles applied over SSH
(ansible-playbook playbooks/image-builder.yml, as mlops_vm.environment.release_image runs it
against a cloud's builder), the model pulled and served through Nginx, and nothing secret
left behind. Then the VM restarts, as an instance booting from the image would: it serves
again with no Ansible run at boot.

The cloud providers' tests inject the configure step (nobody can SSH into moto or the fakes);
this is where the one they get in real use is run for real.
"""

import ssl
import subprocess
import time

import httpx
import pytest

from mlops_vm import paths
from mlops_vm.environment.config import validate_config
from mlops_vm.environment.release_image import environment_ca_dir, release_image
from mlops_vm.localcloud import registry
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.localcloud.vm import container_ip, remove_vm, run_vm, wait_booted
from mlops_vm.paths import known_hosts_file
from mlops_vm.provision.model import Instance, InstanceStatus
from tests.e2e.test_static_ssh import prepare_host

pytestmark = pytest.mark.slow

ENV = "bake-e2e"
BUILDER = "mlops-vm-test-image-builder"


@pytest.fixture(scope="module")
def builder(platform, tmp_path_factory):
    keys = tmp_path_factory.mktemp("ssh")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "id")], check=True
    )
    remove_vm(BUILDER)
    run_vm(BUILDER, network=registry.NETWORK, labels={"org.mlops-vm.test": ENV})
    prepare_host(BUILDER, (keys / "id.pub").read_text().strip())
    known_hosts_file(ENV).unlink(missing_ok=True)
    yield keys / "id", container_ip(BUILDER, registry.NETWORK)
    remove_vm(BUILDER)


def healthz(address: str, ca_file: str) -> int:
    trust = ssl.create_default_context(cafile=ca_file)
    return httpx.get(f"https://{address}/healthz", verify=trust, timeout=10).status_code


def wait_serving(address: str, ca_file: str, timeout_s: float = 180) -> int:
    """The status of /healthz once it answers (its last failure's status after TIMEOUT_S)."""
    deadline = time.monotonic() + timeout_s
    status = 0
    while time.monotonic() < deadline:
        try:
            status = healthz(address, ca_file)
        except httpx.HTTPError:
            status = 0
        if status == 200:
            return status
        time.sleep(1)
    return status


def test_the_roles_bake_a_serving_host_that_keeps_no_credential(
    builder, platform, tmp_path_factory
):
    key, address = builder
    directory = tmp_path_factory.mktemp("inventory")
    settings = {
        "env": ENV,
        "provider": {"name": "local"},
        "fleet": {"mode": "scaling_group", "count": 1, "ssh_private_key_file": str(key)},
        "model": {
            "image": "registry.mlops-vm.test:5443/mlops-vm/model-service:1.0",
            "replicas": 1,
            "workers": 1,
            "memory": "512m",
            "registry": {"ca_file": str(paths.PKI_DIR / "ca.crt")},
        },
        "load_balancer": {"publish_port": 18499},  # the local provider's; nothing listens
    }
    config = validate_config(settings, source=directory / "group_vars")
    image = release_image(
        config,
        directory,
        registry_username=platform.username,
        registry_password=platform.password,
    )
    assert image.configure is not None
    instance = Instance(
        id=BUILDER,
        name=BUILDER,
        status=InstanceStatus.RUNNING,
        private_ip=address,
        ssh_user="admin",
    )
    image.configure(instance)

    ca_file = str(environment_ca_dir(ENV) / "ca.crt")
    assert wait_serving(address, ca_file) == 200
    # The registry login did not stay on the host (nor would it in the image).
    docker("exec", BUILDER, "test", "!", "-e", "/root/.docker/config.json")
    found = subprocess.run(
        ["docker", "exec", BUILDER, "grep", "-rlF", platform.password, "/etc", "/root", "/opt"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.stdout == "", found.stdout

    # Booting again, as an instance from the image does: serving, and no Ansible at boot.
    docker("restart", BUILDER)
    wait_booted(BUILDER)
    assert wait_serving(address, ca_file) == 200
    ansible = docker("exec", BUILDER, "sh", "-c", "command -v ansible-playbook || true")
    assert ansible.strip() == ""
