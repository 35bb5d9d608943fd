"""Run one of the model_service role's own modules on this machine through ansible-runner, as
the tests of those modules do: its result, and every artifact of the run to search for a
secret."""

from __future__ import annotations

import sys
from pathlib import Path

import ansible_runner

from mlops_vm import paths


def run_role_module(
    tmp_path: Path, module: str, module_args: str, *, extravars: dict, check: bool = False
) -> dict:
    """MODULE's one result on localhost (with "failed" set when it failed). A secret goes in
    EXTRAVARS and MODULE_ARGS refers to it: the runner's env/ folder is the caller's input,
    not an artifact of the run."""
    tmp_path.mkdir(exist_ok=True)
    result = ansible_runner.run(
        private_data_dir=str(tmp_path),
        project_dir=str(paths.PROJECT_DIR),
        host_pattern="localhost",
        inventory=f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}",
        module=module,
        module_args=module_args,
        **({"cmdline": "--check"} if check else {}),
        extravars=extravars,
        envvars={
            "ANSIBLE_CONFIG": str(paths.PROJECT_DIR / "ansible.cfg"),
            "ANSIBLE_LIBRARY": str(paths.PROJECT_DIR / "roles" / "model_service" / "library"),
        },
        quiet=True,
    )
    # The failed event's result does not say so itself.
    outcomes = [
        {**event["event_data"]["res"], "failed": event["event"] == "runner_on_failed"}
        for event in result.events
        if event["event"] in ("runner_on_ok", "runner_on_failed")
    ]
    assert len(outcomes) == 1, result.stdout.read()
    return outcomes[0]


def artifacts_text(tmp_path: Path) -> str:
    files = [path for path in (tmp_path / "artifacts").rglob("*") if path.is_file()]
    assert any(path.name == "stdout" for path in files)
    return "".join(path.read_text(errors="replace") for path in files)
