"""The Ansible collection built from the repository (galaxy.yml, scripts/build-collection):
the tarball holds the collection only, and its version is the Python package's."""

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

import mlops_vm
from mlops_vm import paths

BUILD = paths.PROJECT_DIR / "scripts" / "build-collection"


def build(source: Path, output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(source / "scripts" / "build-collection"), str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tarball_holds_the_collection_and_the_package_version(tmp_path: Path):
    built = build(paths.PROJECT_DIR, tmp_path)
    assert built.returncode == 0, built.stderr
    tarball = Path(built.stdout.strip())
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    assert {name.split("/")[0] for name in names} == {
        "MANIFEST.json",
        "FILES.json",
        "CHANGELOG.md",
        "docs",
        "meta",
        "plugins",
        "roles",
    }
    assert {n for n in names if n.startswith("docs/")} == {"docs/collection.md"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert manifest["collection_info"]["version"] == mlops_vm.__version__
    modules = {Path(n).stem for n in names if n.startswith("plugins/modules/")}
    assert {
        "mlops_vm_fleet",
        "mlops_vm_load_balancer",
        "mlops_vm_resize",
        "mlops_vm_service",
        "mlops_vm_target",
        "mlops_vm_target_health",
    } <= modules
    assert "plugins/module_utils/mlops_vm_common.py" in names
    assert "plugins/doc_fragments/environment.py" in names
    assert {Path(n).parts[1] for n in names if n.startswith("roles/") and "/" in n} == {
        role.name for role in (paths.PROJECT_DIR / "roles").iterdir() if role.is_dir()
    }


def test_a_galaxy_version_other_than_the_package_one_is_refused(tmp_path: Path):
    # A copy of the files the build reads, with galaxy.yml one version ahead.
    source = tmp_path / "source"
    (source / "scripts").mkdir(parents=True)
    (source / "mlops_vm").mkdir()
    (source / "scripts" / "build-collection").write_text(BUILD.read_text())
    (source / "mlops_vm" / "__init__.py").write_text('__version__ = "1.2.3"\n')
    galaxy = yaml.safe_load((paths.PROJECT_DIR / "galaxy.yml").read_text())
    (source / "galaxy.yml").write_text(yaml.safe_dump({**galaxy, "version": "1.2.4"}))
    refused = build(source, tmp_path / "out")
    assert refused.returncode == 1
    assert "galaxy.yml: version 1.2.4 is not the package's 1.2.3" in refused.stderr
    assert not (tmp_path / "out").exists()
