"""The import contracts of pyproject.toml ([tool.importlinter]) hold, and they bite: a copy
of the package with one import put back where the layers forbid it fails `lint-imports`,
naming the contract it breaks."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_vm import paths

PYPROJECT = paths.PROJECT_DIR / "pyproject.toml"
PACKAGE = paths.PROJECT_DIR / "mlops_vm"
LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports_command; "
    "sys.exit(lint_imports_command())"
)


def lint_copy(tmp_path: Path, inject: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """lint-imports against a copy of mlops_vm with each INJECT line appended to its file."""
    shutil.copytree(PACKAGE, tmp_path / "mlops_vm", ignore=shutil.ignore_patterns("__pycache__"))
    for relative, line in inject.items():
        with (tmp_path / "mlops_vm" / relative).open("a") as module:
            module.write(f"\n{line}\n")
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--config", str(PYPROJECT)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": pythonpath, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_package_keeps_every_contract(tmp_path: Path) -> None:
    done = lint_copy(tmp_path, {})
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 broken" in done.stdout
    assert "BROKEN" not in done.stdout


@pytest.mark.parametrize(
    ("inject", "contract", "import_shown"),
    [
        # The back-arrows this layering removed: release/ and services/ reading the schema.
        (
            {"release/hosts.py": "from mlops_vm.environment.inventory import host_vars"},
            "Layers, cli down to plan and paths",
            "mlops_vm.release.hosts -> mlops_vm.environment.inventory",
        ),
        (
            {"services/base.py": "from mlops_vm.environment.config import EnvironmentConfig"},
            "Layers, cli down to plan and paths",
            "mlops_vm.services.base -> mlops_vm.environment.config",
        ),
        (
            {"provision/local/ssh_access.py": "import mlops_vm.environment.inventory"},
            "Layers, cli down to plan and paths",
            "mlops_vm.provision.local.ssh_access -> mlops_vm.environment.inventory",
        ),
        # The config <-> sizing circle (sizing imports config).
        (
            {"environment/config.py": "from mlops_vm.environment import sizing"},
            "No import cycles between sibling modules",
            "No cycles are allowed in mlops_vm.environment.",
        ),
        # One cloud's provider reaching into another's.
        (
            {"provision/gcp/__init__.py": "import mlops_vm.provision.aws.errors"},
            "Providers independent of each other",
            "mlops_vm.provision.gcp -> mlops_vm.provision.aws.errors",
        ),
        (
            {"services/cloud_run/__init__.py": "import mlops_vm.services.ecs"},
            "Managed targets independent of each other",
            "mlops_vm.services.cloud_run -> mlops_vm.services.ecs",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, inject: dict[str, str], contract: str, import_shown: str
) -> None:
    done = lint_copy(tmp_path, inject)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{contract} BROKEN" in done.stdout, done.stdout
    assert import_shown in done.stdout, done.stdout
