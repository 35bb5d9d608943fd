"""The VM container settings are written once, in mlops_vm/localcloud/vm_settings.yml.

The local provider's `docker run` arguments are made from that file. Molecule reads its own
YAML and cannot import them, so every Molecule platform block carries a copy, and these tests
fail as soon as a copy drifts from the file.
"""

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_vm.localcloud.vm import run_args, vm_settings

# Settings a platform block must repeat exactly (the Molecule Docker driver's keys).
SAME_KEYS = ("command", "cgroupns_mode", "tmpfs", "capabilities", "security_opts")
ROOT = Path(__file__).resolve().parents[2]  # this checkout's Molecule files
MOLECULE_FILES = [
    ROOT / ".config" / "molecule" / "config.yml",
    *sorted((ROOT / "molecule").glob("*/molecule.yml")),
]


def molecule_platforms() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in MOLECULE_FILES:
        for platform in yaml.safe_load(path.read_text()).get("platforms") or []:
            found.append((f"{path.relative_to(ROOT)}:{platform['name']}", platform))
    return found


PLATFORMS = molecule_platforms()


def test_every_molecule_vm_is_checked():
    # The shared block, and the two VMs that molecule/stack repeats it for.
    assert len(PLATFORMS) >= 3, [where for where, _ in PLATFORMS]


@pytest.mark.parametrize(("where", "platform"), PLATFORMS, ids=[w for w, _ in PLATFORMS])
def test_molecule_platform_has_the_vm_settings(where: str, platform: dict[str, Any]):
    settings = vm_settings()
    for key in SAME_KEYS:
        assert platform.get(key) == settings[key], f"{where}: {key}"
    # The shared volumes, then the VM's own volume for its inner Docker engine.
    *shared, storage = platform["volumes"]
    assert shared == settings["volumes"], where
    assert storage.endswith(f":{settings['docker_storage']}"), where


def test_docker_run_arguments_carry_every_setting():
    settings = vm_settings()
    args = run_args(settings)
    pairs = set(itertools.pairwise(args))
    assert f"--cgroupns={settings['cgroupns_mode']}" in args
    assert {("--tmpfs", path) for path in settings["tmpfs"]} <= pairs
    assert {("--volume", volume) for volume in settings["volumes"]} <= pairs
    assert {("--cap-add", cap) for cap in settings["capabilities"]} <= pairs
    assert {("--security-opt", opt) for opt in settings["security_opts"]} <= pairs
    # The capability nested `docker exec` needs, which only Molecule had before.
    assert ("--cap-add", "SYS_PTRACE") in pairs
    assert "--privileged" not in args  # fails here ("unable to apply caps")
