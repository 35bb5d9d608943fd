"""Where the project's files are, and where generated state (keys, caches, runs) lives.

Generated state never lives in the git tree: it defaults to ~/.mlops-vm and can be moved
with MLOPS_VM_HOME.
"""

import os
from pathlib import Path


def project_dir() -> Path:
    """The folder with ansible.cfg, playbooks/, roles/, plugins/, ...: the checkout around
    the package, or in an installed wheel the copy inside it (setup.py)."""
    if "MLOPS_VM_PROJECT_DIR" in os.environ:
        return Path(os.environ["MLOPS_VM_PROJECT_DIR"])
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "ansible.cfg").is_file():
        return checkout
    return Path(__file__).resolve().parent / "_project"


PROJECT_DIR = project_dir()
STATE_DIR = Path(os.environ.get("MLOPS_VM_HOME", Path.home() / ".mlops-vm"))

IMAGES_DIR = PROJECT_DIR / "images"
EXAMPLES_DIR = PROJECT_DIR / "examples"
PKI_DIR = STATE_DIR / "pki"
CACHE_DIR = STATE_DIR / "cache"
REGISTRY_STATE_DIR = STATE_DIR / "registry"


def known_hosts_file(env: str) -> Path:
    """The host keys of ENV's instances: written by the local provider, read by every SSH
    connection to them (Ansible's and the CLI's)."""
    return STATE_DIR / "envs" / env / "known_hosts"
