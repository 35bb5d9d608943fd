"""Shell completion: typer's completion is on, and environment names complete from
inventories/ (the callback, and through the shell protocol the installed script uses)."""

import os
import subprocess

from typer.testing import CliRunner

from mlops_vm.cli import app
from mlops_vm.commands.completion import complete_environment
from tests.environments import CLI


def test_environment_names_complete_from_inventories():
    assert complete_environment("ecs") == ["ecs-example"]
    assert {"local", "prod", "dev", "lambda-example"} <= set(complete_environment(""))
    assert complete_environment("no-such-") == []


def bash_completion(*words: str) -> list[str]:
    env = {
        **os.environ,
        "_MLOPS_VM_COMPLETE": "complete_bash",
        "COMP_WORDS": " ".join(("mlops-vm", *words)),
        "COMP_CWORD": str(len(words)),
    }
    done = subprocess.run([CLI], env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_the_shell_completes_commands_and_environment_names():
    assert "validate" in bash_completion("val")
    assert bash_completion("status", "clo") == ["cloud-run-example"]
    assert bash_completion("exec", "pro") == ["prod"]


def test_completion_can_be_installed():
    result = CliRunner().invoke(app, ["--help"])
    assert "--install-completion" in result.output and "--show-completion" in result.output
