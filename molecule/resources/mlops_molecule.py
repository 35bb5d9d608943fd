"""Helpers shared by the scenarios' Testinfra tests.

The tests run on the controller inside `molecule verify`, whose environment
carries the scenario's inventory (MOLECULE_INVENTORY_FILE) and Ansible
configuration (ANSIBLE_CONFIG, with the project's roles path), so a test can
run a playbook against the scenario's VMs exactly as Molecule does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent
APPLY_ROLE_PLAYBOOK = RESOURCES / "apply_role.yml"


def run_playbook(
    playbook: Path,
    extra_vars: dict | None = None,
    limit: str | None = None,
    timeout_s: int = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ansible-playbook against the scenario's inventory; output is in .stdout."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra_vars or {}, handle)
        vars_file = handle.name
    command = ["ansible-playbook", "-i", inventory, "-e", f"@{vars_file}", str(playbook)]
    if limit:
        command += ["--limit", limit]
    try:
        return subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    finally:
        os.unlink(vars_file)


def apply_role(
    role: str, variables: dict, limit: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Apply one role with the given variables through apply_role.yml."""
    return run_playbook(APPLY_ROLE_PLAYBOOK, {"role_under_test": role, **variables}, limit=limit)


def assert_refused(result: subprocess.CompletedProcess[str], *names: str) -> None:
    """The run failed, and its output names every one of `names`."""
    assert result.returncode != 0, f"the playbook was expected to fail:\n{result.stdout}"
    for name in names:
        assert name in result.stdout, f"{name!r} not named in the failure:\n{result.stdout}"
    # The refusal came before any change: no host reports a change.
    assert "PLAY RECAP" in result.stdout, result.stdout
    assert not re.search(r"changed=[1-9]", result.stdout), result.stdout


def copy_generated_ca(host, destination: str) -> str:
    """The CA the role generated on the controller (in the scenario's ephemeral directory),
    copied into the VM at DESTINATION for curl; its controller path."""
    ca = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "nginx-ca", "ca.crt")
    host.ansible("copy", f"src={ca} dest={destination} mode=0644", check=False)
    return ca
