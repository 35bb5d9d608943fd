"""The Python package as a wheel (`pip wheel --no-deps .`): it carries the Ansible project
the CLI runs (mlops_vm/_project/, setup.py), finds it there when no checkout is around it
(mlops_vm/paths.py), offers an extra per cloud, and has the version of mlops_vm/__init__.py."""

import email
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import mlops_vm
from mlops_vm import paths

pytestmark = pytest.mark.slow  # builds a wheel (about 15 s)

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: an in-tree build would leave build/ in the checkout.
    source = tmp_path_factory.mktemp("source") / "mlops-vm"
    shutil.copytree(
        paths.PROJECT_DIR,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".state", "build", "dist", "__pycache__", ".*_cache"
        ),
    )
    output = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(output), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = output.glob("*.whl")
    return found


def test_the_wheel_has_the_package_version_and_an_extra_per_cloud(wheel: Path):
    assert wheel.name == f"mlops_vm-{mlops_vm.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        fields = email.message_from_bytes(archive.read(metadata))
    assert fields["Version"] == mlops_vm.__version__
    assert {"aws", "gcp", "azure"} <= set(fields.get_all("Provides-Extra"))


def test_the_installed_package_runs_the_playbooks_it_carries(wheel: Path, tmp_path: Path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MLOPS_VM_P"))}
    env["PYTHONPATH"] = str(site)  # the wheel's mlops_vm, not the checkout's
    located = subprocess.run(
        [sys.executable, "-c", "from mlops_vm import paths; print(paths.PROJECT_DIR)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    project = Path(located.stdout.strip())
    assert project == site / "mlops_vm" / "_project"
    for needed in ("ansible.cfg", "inventories/local/group_vars/all/mlops_vm.yml"):
        assert (project / needed).is_file(), needed
    # Every role, module and plugin the playbooks name resolves from the packaged copy.
    for playbook in ("provision.yml", "destroy.yml", "release.yml", "resize.yml"):
        checked = subprocess.run(
            [
                str(BIN / "ansible-playbook"),
                "--syntax-check",
                "-i",
                str(project / "inventories" / "local"),
                str(project / "playbooks" / playbook),
            ],
            cwd=tmp_path,
            env={**env, "ANSIBLE_CONFIG": str(project / "ansible.cfg")},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
