"""The built Ansible collection as a user installs and uses it: `ansible-galaxy collection
install` into a scratch collections path, a playbook in a scratch folder outside the
repository (no repository ansible.cfg) that launches one local VM with
mlops_vm.deploy.mlops_vm_fleet, reads it back through the mlops_vm.deploy.mlops_vm inventory
plugin, and serves the model over HTTPS on it with the collection's roles and filters."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_vm import paths
from tests.e2e.test_ansible_playbook import recap
from tests.environments import PACKAGED_HOSTS, labelled, nothing_labelled

pytestmark = pytest.mark.slow

ENV = "collection-e2e"
BIN = Path(sys.executable).parent
IMAGE = "registry.mlops-vm.test:5443/mlops-vm/model-service:1.0"

# The first play of both playbooks: the environment's VM through the collection's module.
FLEET_PLAY = """\
---
- name: Converge the environment's VM with the local provider (state STATE)
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Converge the fleet
      mlops_vm.deploy.mlops_vm_fleet:
        config: "{{ mlops_vm }}"
        inventory_dir: "{{ playbook_dir }}/inventory"
        state: STATE
"""

SITE = (
    FLEET_PLAY.replace("STATE", "present")
    + """\
    - name: Read the VM into the inventory (mlops_vm.deploy.mlops_vm)
      ansible.builtin.meta: refresh_inventory

- name: Serve the model over HTTPS on the VM
  hosts: model
  vars:
    demo_image: "{{ mlops_vm.model.image | mlops_vm.deploy.mlops_vm_split_image }}"
    demo_registry: "{{ mlops_vm.model.image | mlops_vm.deploy.mlops_vm_image_registry }}"
    docker_engine_registry_ca_certs:
      - registry: "{{ demo_registry }}"
        content: "{{ lookup('ansible.builtin.file', demo_registry_ca_file) }}"
    model_service_image: "{{ demo_image.name }}"
    model_service_image_tag: "{{ demo_image.tag }}"
    model_service_registry: "{{ demo_registry }}"
    model_service_registry_username: "{{ demo_registry_username }}"
    model_service_registry_password: "{{ demo_registry_password }}"
    model_service_replicas: 1
    model_service_memory: 512m
    nginx_proxy_ca_dir: "{{ playbook_dir }}/pki"
    nginx_proxy_tls_extra_sans: ["IP:127.0.0.1"]
  roles:
    - mlops_vm.deploy.docker_engine
    - mlops_vm.deploy.model_service
    - mlops_vm.deploy.nginx_proxy
"""
)

DESTROY = FLEET_PLAY.replace("STATE", "absent")

# Run on the VM: a prediction over HTTPS, the certificate verified against the CA on stdin.
PREDICT = """\
import json, ssl, sys, tempfile, urllib.request
with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as ca:
    ca.write(sys.stdin.read())
context = ssl.create_default_context(cafile=ca.name)
request = urllib.request.Request(
    "https://127.0.0.1/predict", data=sys.argv[1].encode(),
    headers={"Content-Type": "application/json"},
)
print(urllib.request.urlopen(request, context=context, timeout=30).read().decode())
"""


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )


@pytest.fixture(scope="module")
def scratch(platform, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder outside the repository holding the installed collection, an inventory of
    one local VM, the playbooks, and the environment ansible-playbook runs with there."""
    folder = tmp_path_factory.mktemp("collection-user")
    assert not folder.resolve().is_relative_to(paths.PROJECT_DIR.resolve())
    # No ANSIBLE_* setting of the caller (ANSIBLE_CONFIG would bring the repository's back).
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env |= {"ANSIBLE_COLLECTIONS_PATH": str(folder / "collections"), "ANSIBLE_NOCOLOR": "1"}

    built = run(
        sys.executable,
        str(paths.PROJECT_DIR / "scripts" / "build-collection"),
        str(folder),
        cwd=folder,
        env=env,
    )
    assert built.returncode == 0, built.stderr
    installed = run(
        str(BIN / "ansible-galaxy"),
        "collection",
        "install",
        "-p",
        str(folder / "collections"),
        built.stdout.strip(),
        cwd=folder,
        env=env,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    inventory = folder / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "mlops_vm.yml").write_text("---\nplugin: mlops_vm.deploy.mlops_vm\n")
    settings = {
        "env": ENV,
        "provider": {"name": "local"},
        # Its subject is the collection, not installation: the host starts with its packages.
        "fleet": {"count": 1, **PACKAGED_HOSTS["fleet"]},
        "model": {"image": IMAGE, "replicas": 1, "memory": "512m"},
        "load_balancer": {"publish_port": 18445},
    }
    (inventory / "group_vars" / "all" / "mlops_vm.yml").write_text(
        yaml.safe_dump({"mlops_vm": settings})
    )
    (folder / "site.yml").write_text(SITE)
    (folder / "destroy.yml").write_text(DESTROY)
    (folder / "secrets.json").write_text(
        json.dumps(
            {
                "demo_registry_username": platform.username,
                "demo_registry_password": platform.password,
                "demo_registry_ca_file": str(paths.PKI_DIR / "ca.crt"),
            }
        )
    )
    yield folder, env
    run(str(BIN / "ansible-playbook"), "-i", "inventory", "destroy.yml", cwd=folder, env=env)


def playbook(scratch: tuple[Path, dict[str, str]], name: str) -> subprocess.CompletedProcess:
    folder, env = scratch
    return run(
        str(BIN / "ansible-playbook"),
        "-i",
        "inventory",
        "-e",
        "@secrets.json",
        name,
        cwd=folder,
        env=env,
    )


def test_a_playbook_outside_the_repository_serves_the_model_from_the_collection(
    scratch, reference_model
):
    from sklearn.datasets import load_iris

    folder, _ = scratch
    done = playbook(scratch, "site.yml")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # The VM came through the inventory plugin and the roles ran on it.
    assert recap(done.stdout)[f"mlops-vm-{ENV}-model-1"][1:] == (0, 0), done.stdout[-4000:]

    (vm,) = labelled(ENV)["containers"]
    rows = load_iris().data[::17]
    answer = subprocess.run(
        [
            "docker",
            "exec",
            "-i",
            vm,
            "python3",
            "-c",
            PREDICT,
            json.dumps({"instances": rows.tolist()}),
        ],
        input=(folder / "pki" / "ca.crt").read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["predictions"] == reference_model.predict(rows).tolist()

    gone = playbook(scratch, "destroy.yml")
    assert gone.returncode == 0, gone.stdout[-3000:]
    assert nothing_labelled(ENV)
