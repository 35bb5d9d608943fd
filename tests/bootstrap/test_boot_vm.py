"""Acceptance: rendered user-data boots a fresh VM into an HTTPS model server by itself.

A VM container of the local cloud (mlops-vm/vm:debian12, cloud-init installed) gets the
user-data through cloud-init's NoCloud seed directory, exactly as a scaling-group
instance gets it from the metadata service. Nothing logs in to it: cloud-init installs
Ansible (wheels from a mirror container on the platform network, since the VM has no
route to the package index), applies the roles locally, and the model answers through
Nginx with a certificate from the CA the nginx_proxy role generated on the VM.
"""

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from sklearn.datasets import load_iris

from mlops_vm import paths
from mlops_vm.bootstrap import BootConfig, render_user_data
from mlops_vm.bootstrap.payload import DONE_MARKER
from mlops_vm.localcloud import pki, registry
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.localcloud.images import VM_IMAGE
from mlops_vm.localcloud.vm import container_ip, remove_vm, run_vm

pytestmark = pytest.mark.slow

NETWORK = registry.NETWORK
LABEL = {"org.mlops-vm.test": "bootstrap"}
BOOT_TIMEOUT_S = 1500
NGINX_CA = "/etc/mlops-vm/nginx-ca/ca.crt"


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """Wheels of the controller's Ansible for the VM's Python (3.11, manylinux x86_64),
    made on this machine once, the way the model image's wheels are."""
    boot = BootConfig()
    target = (
        paths.CACHE_DIR / "ansible-wheels" / (f"{boot.ansible_core_version}-{boot.ansible_version}")
    )
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--platform",
                "manylinux2014_x86_64",
                "--platform",
                "manylinux_2_17_x86_64",
                "--platform",
                "manylinux_2_28_x86_64",
                "--dest",
                str(target),
                f"ansible-core=={boot.ansible_core_version}",
                f"ansible=={boot.ansible_version}",
            ],
            check=True,
        )
        (target / ".complete").touch()
    return target


@pytest.fixture(scope="module")
def wheel_mirror(platform, wheelhouse: Path):
    """A plain HTTP directory of the wheels on the platform network (pip --find-links)."""
    name = f"mlops-vm-test-wheels-{uuid.uuid4().hex[:6]}"
    docker(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        NETWORK,
        "--label",
        "org.mlops-vm.test=bootstrap",
        "--volume",
        f"{wheelhouse}:/srv/wheels:ro",
        "--entrypoint",
        "python3",
        VM_IMAGE,
        "-m",
        "http.server",
        "8000",
        "--directory",
        "/srv/wheels",
    )
    yield f"http://{name}:8000/"
    docker("rm", "-f", name, check=False)


def write_seed(directory: Path, user_data: str, name: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "user-data").write_text(user_data)
    (directory / "meta-data").write_text(f"instance-id: iid-{name}\nlocal-hostname: {name}\n")
    directory.chmod(0o755)
    return directory


def cloud_init_status(name: str) -> str:
    return docker("exec", name, "cloud-init", "status", "--long", check=False)


def wait_for_cloud_init(name: str, timeout_s: float) -> str:
    """`cloud-init status --wait`, bounded: the final status text."""
    proc = subprocess.run(
        ["docker", "exec", name, "cloud-init", "status", "--wait"],
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    return proc.stdout.decode(errors="replace") + cloud_init_status(name)


def vm_has_file(name: str, path: str) -> bool:
    return subprocess.run(["docker", "exec", name, "test", "-e", path], check=False).returncode == 0


def boot_log(name: str) -> str:
    return docker("exec", name, "tail", "-n", "60", "/var/log/cloud-init-output.log", check=False)


@pytest.fixture(scope="module")
def booted_vm(platform, wheel_mirror, tmp_path_factory):
    creds = registry.ensure_credentials()
    boot = BootConfig.for_model(
        registry.model_image_ref("1.0"),
        registry_username=creds.username,
        registry_password=creds.password,
        registry_ca_cert=pki.ca_pair().cert.read_text(),
        replicas=2,
        pip_find_links=wheel_mirror,
    )
    user_data = render_user_data(boot)
    name = f"mlops-vm-test-boot-{uuid.uuid4().hex[:6]}"
    seed = write_seed(tmp_path_factory.mktemp("seed") / "nocloud", user_data, name)
    run_vm(
        name,
        network=NETWORK,
        labels=LABEL,
        extra_args=("--volume", f"{seed}:/var/lib/cloud/seed/nocloud:ro"),
    )
    try:
        # No wait_booted first: systemd's boot includes cloud-final, i.e. the whole run.
        status = wait_for_cloud_init(name, BOOT_TIMEOUT_S)
        yield name, status, creds
    finally:
        remove_vm(name)


def test_user_data_configures_the_vm_to_serve_https(booted_vm, reference_model, tmp_path):
    name, status, _ = booted_vm
    assert "status: done" in status, f"cloud-init: {status}\n{boot_log(name)}"
    assert vm_has_file(name, DONE_MARKER)
    ca = tmp_path / "nginx-ca.crt"
    ca.write_text(docker("exec", name, "cat", NGINX_CA))
    address = container_ip(name, NETWORK)
    rows = load_iris().data[::7]
    deadline = time.monotonic() + 60
    while True:
        try:
            response = requests.post(
                f"https://{address}/predict",
                json={"instances": rows.tolist()},
                verify=str(ca),  # the CA the role generated on the VM, nothing else
                timeout=10,
            )
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == reference_model.predict(rows).tolist()
    health = requests.get(f"https://{address}/healthz", verify=str(ca), timeout=10)
    assert health.status_code == 200
    redirect = requests.get(f"http://{address}/predict", allow_redirects=False, timeout=10)
    assert redirect.status_code in (301, 308)


def test_the_secret_is_gone_and_never_logged(booted_vm):
    name, _, creds = booted_vm
    assert vm_has_file(name, "/opt/mlops-vm/boot/vars.yml")
    assert not vm_has_file(name, "/opt/mlops-vm/boot/secrets.yml")
    leaked = docker(
        "exec",
        name,
        "grep",
        "-rlF",
        creds.password,
        "/var/log",
        "/opt/mlops-vm/boot",
        check=False,
    )
    assert leaked == ""
