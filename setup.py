"""Packaging step that pyproject.toml cannot declare: the wheel carries the Ansible project
(ansible.cfg, playbooks, roles, plugins, the local inventory, images, examples) in
mlops_vm/_project/, where mlops_vm/paths.py finds it when there is no checkout around the
package. The files stay where they are in the repository (the checkout runs from there);
they are copied in at build time only."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# What the CLI reads at run time through mlops_vm.paths.PROJECT_DIR.
PROJECT_FILES = [
    "ansible.cfg",
    "playbooks",
    "roles",
    "plugins",
    # The embedded default environment (`mlops-vm provision local`); the example ones stay
    # in the repository.
    "inventories/local",
    "images",
    "examples",
]


class BuildWithProject(build_py):
    """build_py, then the project files copied into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install runs from the checkout
        target = Path(self.build_lib) / "mlops_vm" / "_project"
        shutil.rmtree(target, ignore_errors=True)
        for name in PROJECT_FILES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(
                    source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithProject})
