"""ansible-playbook from this venv, as the tests run it: the project's ansible.cfg, output
captured, and stdin a fresh /dev/null. Ansible refuses to start on a non-blocking stdin,
and the xdist worker's stdin is a /dev/null that any child (ssh, a Go CLI) may have left
non-blocking for everyone who shares it."""

import os
import subprocess
import sys
from pathlib import Path

from mlops_vm import paths

BINARY = Path(sys.executable).parent / "ansible-playbook"


def ansible_playbook(
    *args: str,
    cwd: Path = paths.PROJECT_DIR,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BINARY), *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(paths.PROJECT_DIR / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
            **(env or {}),
        },
        check=False,
    )


def render_locally(playbook: Path, *extra_vars: str) -> subprocess.CompletedProcess[str]:
    """PLAYBOOK against localhost with this interpreter: the role-rendering tests."""
    extra = [arg for value in extra_vars for arg in ("-e", value)]
    return ansible_playbook(
        *("-i", "localhost,", str(playbook)),
        *("-e", f"ansible_python_interpreter={sys.executable}"),
        *extra,
        timeout=300,
    )
