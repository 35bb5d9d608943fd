"""Build throwaway environments (inventory folders) for end-to-end tests."""

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from mlops_vm import paths
from mlops_vm.localcloud import images
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.provision.model import TAG_ENV

LOCAL_ENV = paths.PROJECT_DIR / "inventories" / "local" / "group_vars" / "all" / "mlops_vm.yml"
ECS_ENV = paths.PROJECT_DIR / "inventories" / "ecs-example" / "group_vars" / "all" / "mlops_vm.yml"
LAMBDA_ENV = (
    paths.PROJECT_DIR / "inventories" / "lambda-example" / "group_vars" / "all" / "mlops_vm.yml"
)
CLI = str(Path(sys.executable).parent / "mlops-vm")
# The local environment of 2 model VMs that end-to-end modules share (tests/e2e/conftest.py).
LOCAL_PAIR_ENV = "pair"
LOCAL_PAIR_PORT = 18463
# Model hosts started from the VM image that has their packages installed (images/
# vm-packaged, as a team's golden image would): a provision then installs nothing (2 VMs on
# a quiet machine: 54 s instead of 91 s). For the modules whose subject is not installation;
# Molecule, test_local_cli, test_static_ssh (through sudo as another user), test_boot_vm and
# test_image_builder keep the plain image, whose hosts install every package for real.
PACKAGED_HOSTS = {"fleet": {"image": images.PACKAGED_VM_IMAGE}}


def deep_merge(base: dict, overrides: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def make_environment(
    root: Path,
    name: str,
    overrides: dict[str, Any] | None = None,
    *,
    like: Path = LOCAL_ENV,
    packaged_hosts: bool = False,
) -> Path:
    """An inventory folder like inventories/local (or the environment file LIKE), for
    environment NAME, with OVERRIDES merged into its `mlops_vm` settings (and with
    PACKAGED_HOSTS: the model hosts' packages already installed)."""
    base = yaml.safe_load(like.read_text())
    if packaged_hosts:
        overrides = deep_merge(PACKAGED_HOSTS, overrides or {})
    base["mlops_vm"] = deep_merge(base["mlops_vm"], {"env": name, **(overrides or {})})
    directory = root / name
    (directory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (directory / "mlops_vm.yml").write_text("---\nplugin: mlops_vm\n")
    (directory / "group_vars" / "all" / "mlops_vm.yml").write_text(
        "---\n" + yaml.safe_dump(base, sort_keys=False)
    )
    # The example's secrets file with it: the settings refer to its variables.
    vault = like.parent / "vault.yml"
    if vault.is_file():
        (directory / "group_vars" / "all" / "vault.yml").write_text(vault.read_text())
    return directory


def cli(*args: str, timeout_s: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def cli_json(*args: str) -> tuple[int, dict]:
    proc = cli(*args, "--json")
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"no JSON from {args}: {proc.stdout}\n{proc.stderr}") from None


def labelled(env: str) -> dict[str, list[str]]:
    """Containers, networks and volumes that carry the environment's label."""
    label = f"label={TAG_ENV}={env}"
    return {
        "containers": docker("ps", "-aq", "--filter", label).split(),
        "networks": docker("network", "ls", "-q", "--filter", label).split(),
        "volumes": docker("volume", "ls", "-q", "--filter", label).split(),
    }


def nothing_labelled(env: str) -> bool:
    return not any(labelled(env).values())


@contextmanager
def fresh_environment(
    root: Path, name: str, overrides: dict[str, Any] | None = None, *, packaged_hosts: bool = False
) -> Iterator[Path]:
    """An environment folder (make_environment) with nothing of it running on entry (the
    leftovers of an interrupted run are destroyed) and nothing of it left on exit."""
    directory = make_environment(root, name, overrides, packaged_hosts=packaged_hosts)
    cli_json("destroy", str(directory), "--yes")
    try:
        yield directory
    finally:
        cli_json("destroy", str(directory), "--yes")


@contextmanager
def provisioned_environment(
    root: Path, name: str, overrides: dict[str, Any] | None = None, *, packaged_hosts: bool = False
) -> Iterator[tuple[Path, dict]]:
    """A fresh_environment that `provision` made: its folder and provision's --json summary."""
    with fresh_environment(root, name, overrides, packaged_hosts=packaged_hosts) as directory:
        code, summary = cli_json("provision", str(directory))
        assert code == 0, summary
        yield directory, summary
