"""`mlops-vm init`: a commented environment folder for each provider and target that, once
its placeholders are filled in, passes `validate` (offline); an existing folder is refused."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlops_vm.cli import app
from mlops_vm.commands.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from mlops_vm.environment.secrets import PLACEHOLDER, placeholders
from tests.offline import offline

__all__ = ["offline"]  # the fixture

CHOICES = [
    ("local", None),
    ("static", None),
    ("aws", None),
    ("gcp", None),
    ("azure", None),
    ("aws", "ecs"),
    ("aws", "lambda"),
    ("gcp", "cloud_run"),
    ("azure", "app_service"),
]
ACM_ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
# What a user writes in place of each placeholder, by the setting's location.
FILLED = {
    "mlops_vm.model.image": "registry.example.com/iris-model:1.0",
    "mlops_vm.model.registry.username": "deploy",
    "vault_registry_password": "s3cret-value",
    "mlops_vm.fleet.hosts.0.address": "192.0.2.10",
    "mlops_vm.fleet.network.ssh_cidr": "203.0.113.0/24",
    "mlops_vm.provider.options.project": "my-project",
    "mlops_vm.provider.options.subscription_id": "00000000-0000-0000-0000-000000000000",
    "mlops_vm.service.certificate": ACM_ARN,
    "mlops_vm.load_balancer.certificate_arn": ACM_ARN,
    "mlops_vm.load_balancer.managed_domains.0": "model.example.com",
    "mlops_vm.fleet.ssh_public_key_file": "deploy.pub",  # written by the test
    "mlops_vm.provider.options.gateway_identity_id": (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ops/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/gateway"
    ),
    "mlops_vm.load_balancer.key_vault_secret_id": (
        "https://my-vault.vault.azure.net/secrets/gateway-cert"
    ),
}


def init(directory: Path, provider: str, target: str | None) -> tuple[int, str]:
    args = ["init", str(directory), "--provider", provider]
    result = CliRunner().invoke(app, [*args, *(["--target", target] if target else [])])
    return result.exit_code, result.output


def validate(directory: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["validate", str(directory), "--json"])
    return result.exit_code, json.loads(result.stdout)


def fill_in(path: Path) -> int:
    """Replace each placeholder of PATH by FILLED's value for its setting; how many."""
    lines = path.read_text().splitlines(keepends=True)
    found = list(placeholders(yaml.compose(path.read_text())))
    for location, line in found:
        key = ".".join(map(str, location))
        lines[line - 1] = lines[line - 1].replace(PLACEHOLDER, FILLED[key])
    path.write_text("".join(lines))
    return len(found)


@pytest.mark.parametrize(("provider", "target"), CHOICES)
def test_init_then_filled_in_passes_validate(offline, tmp_path, provider, target):
    directory = tmp_path / f"new-{provider}"
    code, output = init(directory, provider, target)
    assert code == EXIT_OK, output
    settings = directory / "group_vars" / "all" / "mlops_vm.yml"
    vault = directory / "group_vars" / "all" / "vault.yml"
    assert yaml.safe_load((directory / "mlops_vm.yml").read_text()) == {"plugin": "mlops_vm"}
    assert "vault" in (directory / ".gitignore").read_text()
    data = yaml.safe_load(settings.read_text())["mlops_vm"]
    assert data["provider"]["name"] == provider
    assert data.get("target") == target
    assert settings.read_text().count("#") >= 5  # commented

    # As written: each placeholder named with its file and line, exit 2.
    code, answer = validate(directory)
    assert code == EXIT_BAD_INPUT, answer
    assert any(p.startswith(f"{vault}:") for p in answer["problems"])
    assert any(p.startswith(f"{settings}:") for p in answer["problems"])

    assert fill_in(settings) >= 1 and fill_in(vault) == 1
    (directory / "deploy.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user\n")
    code, answer = validate(directory)
    assert code == EXIT_OK, answer
    assert offline == []


def test_an_existing_folder_is_not_overwritten(tmp_path):
    directory = tmp_path / "taken"
    assert init(directory, "aws", None)[0] == EXIT_OK
    settings = directory / "group_vars" / "all" / "mlops_vm.yml"
    settings.write_text(settings.read_text() + "# mine\n")
    code, output = init(directory, "gcp", None)
    assert code == EXIT_FAILED
    assert str(directory) in output.replace("\n", "") and "not overwritten" in output
    assert settings.read_text().endswith("# mine\n")
    assert "gcp" not in settings.read_text()


@pytest.mark.parametrize(
    ("provider", "target", "message"),
    [
        ("vmware", None, "--provider 'vmware'"),
        ("gcp", "ecs", "--target ecs runs on --provider aws"),
        ("aws", "kubernetes", "--target 'kubernetes'"),
    ],
)
def test_a_choice_that_does_not_exist_is_refused(tmp_path, provider, target, message):
    code, output = init(tmp_path / "nope", provider, target)
    assert code == EXIT_BAD_INPUT
    assert message in " ".join(output.split())
    assert not (tmp_path / "nope").exists()
