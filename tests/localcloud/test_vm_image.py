"""The VM image boots systemd cleanly, and Docker inside it works with overlay2.

The same VM also proves the registry's TLS: a pull fails until the VM trusts the project
CA, then a login, a pull and a push succeed.
"""

import json

import pytest

from mlops_vm.localcloud import pki, registry
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.localcloud.vm import remove_vm, run_vm, wait_booted

pytestmark = pytest.mark.slow


def vm_exec(name: str, script: str, check: bool = True) -> str:
    return docker("exec", name, "bash", "-c", script, check=check)


@pytest.fixture(scope="module")
def vm(platform):
    name = "mlops-vm-test-vmimage"
    remove_vm(name)
    run_vm(name, network=registry.NETWORK, labels={"org.mlops-vm.test": "vm-image"})
    yield name
    remove_vm(name)


@pytest.fixture(scope="module")
def vm_with_docker(vm):
    wait_booted(vm)
    vm_exec(vm, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null")
    vm_exec(vm, "systemctl is-active docker || systemctl start docker")
    return vm


def test_systemd_boots_with_no_failed_units(vm):
    assert wait_booted(vm) in ("running", "degraded")
    failed = vm_exec(vm, "systemctl list-units --state=failed --no-legend --plain")
    assert failed == ""
    assert vm_exec(vm, "systemctl is-active ssh") == "active"
    assert vm_exec(vm, "python3 -c 'print(1+1)'") == "2"


def test_nested_docker_uses_overlay2(vm_with_docker):
    driver = vm_exec(vm_with_docker, "docker info --format '{{.Driver}}'")
    assert driver == "overlay2"


def test_pull_fails_without_the_ca_then_pull_push_and_run_succeed(vm_with_docker, platform):
    vm = vm_with_docker
    creds = platform
    image = registry.model_image_ref("1.0")
    certs_dir = f"/etc/docker/certs.d/{registry.ADDRESS}"
    vm_exec(vm, f"rm -rf {certs_dir}")

    denied = vm_exec(vm, f"docker pull {image} 2>&1; echo exit=$?")
    assert not denied.endswith("exit=0"), denied
    assert "x509" in denied or "certificate" in denied, denied

    ca = pki.ca_pair().cert.read_text()
    vm_exec(vm, f"mkdir -p {certs_dir} && cat > {certs_dir}/ca.crt <<'PEM'\n{ca}PEM")
    docker(
        "exec",
        "-i",
        vm,
        "docker",
        "login",
        "--username",
        creds.username,
        "--password-stdin",
        registry.ADDRESS,
        input_bytes=creds.password.encode(),
    )
    vm_exec(vm, f"docker pull -q {image}")
    version = vm_exec(vm, f"docker run --rm --entrypoint printenv {image} MODEL_VERSION")
    assert version == "1.0"

    pushed = f"{registry.ADDRESS}/mlops-vm/push-check:from-vm"
    vm_exec(vm, f"docker tag {image} {pushed} && docker push -q {pushed}")
    manifest = registry.registry_get(
        creds,
        "/v2/mlops-vm/push-check/manifests/from-vm",
        headers={"Accept": registry.MANIFEST_TYPES},
        timeout=10,
    )
    assert manifest.status_code == 200
    local_id = vm_exec(vm, f"docker image inspect --format '{{{{.Id}}}}' {image}")
    assert json.loads(manifest.text)["config"]["digest"] == local_id
