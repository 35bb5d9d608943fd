"""`mlops-vm validate` offline: every shipped example is valid with no cloud credentials and
no network; a broken one exits 2 naming the file, the line and the field (schema, a secret
defined nowhere, a placeholder left, a target's documented limit)."""

import json
import shutil
from pathlib import Path

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret
from typer.testing import CliRunner

from mlops_vm import paths
from mlops_vm.cli import app
from mlops_vm.commands.exits import EXIT_BAD_INPUT, EXIT_OK
from mlops_vm.environment.secrets import PLACEHOLDER
from tests.offline import offline

__all__ = ["offline"]  # the fixture

INVENTORIES = paths.PROJECT_DIR / "inventories"
EXAMPLES = sorted(p.name for p in INVENTORIES.iterdir() if (p / "group_vars").is_dir())


def validate(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["validate", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def copy_example(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    shutil.copytree(INVENTORIES / name, directory)
    return directory


def settings(directory: Path) -> Path:
    return directory / "group_vars" / "all" / "mlops_vm.yml"


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_examples_are_all_here():
    assert {"local", "prod", "dev", "ecs-example", "lambda-example"} <= set(EXAMPLES)
    assert {"cloud-run-example", "app-service-example"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_shipped_example_is_valid_offline(offline, name):
    code, answer = validate(name)
    assert code == EXIT_OK, answer
    assert answer["ok"] is True and answer["cloud"] is False
    assert offline == []  # not one connection attempted


def broken_ecs_example(tmp_path: Path, old: str, new: str) -> tuple[Path, dict]:
    """validate's answer for the ECS example with OLD replaced by NEW (exit 2 asserted)."""
    path = settings(copy_example(tmp_path, "ecs-example"))
    path.write_text(path.read_text().replace(old, new))
    code, answer = validate(str(path.parent.parent.parent))
    assert code == EXIT_BAD_INPUT, answer
    return path, answer


def test_a_bad_setting_exits_2_naming_file_line_and_field(offline, tmp_path):
    path, answer = broken_ecs_example(tmp_path, "memory_mb: 1024", "memory_mb: lots")
    where = f"{path}:{line_of(path, 'memory_mb: lots')}: mlops_vm.service.memory_mb:"
    assert any(problem.startswith(where) for problem in answer["problems"]), answer


def test_a_limit_of_the_target_is_checked_offline(offline, tmp_path):
    path, answer = broken_ecs_example(tmp_path, "cpu: 0.5 ", "cpu: 1.0 ")
    assert str(path) in answer["error"] and "rejected by the ecs target" in answer["error"]
    assert "does not go with service.cpu 1" in " ".join(answer["problems"])
    assert offline == []


def test_a_secret_defined_nowhere_is_named(offline, tmp_path):
    directory = copy_example(tmp_path, "prod")
    (directory / "group_vars" / "all" / "vault.yml").unlink()
    code, answer = validate(str(directory))
    assert code == EXIT_BAD_INPUT, answer
    path = settings(directory)
    line = line_of(path, "vault_registry_password")
    [problem] = answer["problems"]
    assert problem.startswith(f"{path}:{line}: mlops_vm.model.registry.password: refers to")
    assert "'vault_registry_password'" in problem


def test_a_placeholder_left_is_named(offline, tmp_path):
    directory = copy_example(tmp_path, "prod")
    vault = directory / "group_vars" / "all" / "vault.yml"
    vault.write_text(vault.read_text().replace("example-registry-password", PLACEHOLDER))
    code, answer = validate(str(directory))
    assert code == EXIT_BAD_INPUT, answer
    line = line_of(vault, PLACEHOLDER)
    assert answer["problems"] == [f"{vault}:{line}: vault_registry_password: fill in {PLACEHOLDER}"]


def test_an_encrypted_vault_is_opened_with_the_password_file(offline, tmp_path, monkeypatch):
    directory = copy_example(tmp_path, "prod")
    vault = directory / "group_vars" / "all" / "vault.yml"
    secret = VaultLib([("default", VaultSecret(b"pw"))])
    password_file = tmp_path / "vault-password"
    password_file.write_text("pw\n")

    vault.write_bytes(secret.encrypt("---\nvault_other: x\n"))
    # Without the password the names cannot be seen: a warning, not a failure.
    code, answer = validate(str(directory))
    assert code == EXIT_OK, answer
    assert "encrypted and not opened" in " ".join(answer["warnings"])
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(password_file))
    code, answer = validate(str(directory))
    assert code == EXIT_BAD_INPUT, answer
    assert "'vault_registry_password'" in " ".join(answer["problems"])

    vault.write_bytes(secret.encrypt("---\nvault_registry_password: s3cret\n"))
    code, answer = validate(str(directory))
    assert code == EXIT_OK, answer
    assert "s3cret" not in json.dumps(answer)


def test_the_cloud_checks_are_the_ones_that_need_the_network(offline):
    # The same example with --cloud asks AWS (refused here): the offline run above did not.
    code, answer = validate("prod", "--cloud")
    assert code != EXIT_OK, answer
    assert offline != []
