"""`mlops-vm validate` for the App Service target, through the CLI: what App Service would
refuse exits 2 before any Azure call, naming the field and file or the platform's limit.

Contract only (no Azure call is made: validate checks the SKU table, the instance range and
the Key Vault URIs offline). Provision/deploy/rollback/destroy through the CLI are not run
here: the runner hands the Ansible module no Azure credentials other than the machine's
own, and the fake ARM is plain http (see the report of branch wt13a).
"""

from pathlib import Path

import pytest

from mlops_vm import paths
from tests.environments import cli, make_environment

APP_SERVICE_ENV = (
    paths.PROJECT_DIR
    / "inventories"
    / "app-service-example"
    / "group_vars"
    / "all"
    / "mlops_vm.yml"
)


def validate(tmp_path: Path, name: str, overrides: dict) -> tuple[int, str, Path]:
    directory = make_environment(tmp_path, name, overrides, like=APP_SERVICE_ENV)
    proc = cli("validate", str(directory))
    return proc.returncode, proc.stdout + proc.stderr, directory


def test_the_example_is_valid(tmp_path: Path) -> None:
    code, output, _ = validate(tmp_path, "appsvc-ok", {})
    assert code == 0, output
    assert "is valid" in output


@pytest.mark.parametrize(
    ("case", "overrides", "message"),
    [
        ("basic", {"service": {"app_service": {"sku": "B1"}}}, "has no deployment slots"),
        ("range", {"service": {"max_instances": 31}}, "out of the P0v3 plan's range 1..30"),
        (
            "secret",
            {"service": {"secrets": {"API_TOKEN": "plain-value"}}},
            "is not a Key Vault secret URI",
        ),
    ],
)
def test_what_app_service_refuses_exits_2(tmp_path: Path, case, overrides, message) -> None:
    code, output, _ = validate(tmp_path, f"appsvc-{case}", overrides)
    assert code == 2, output
    assert message in " ".join(output.split())


def test_a_bad_setting_names_field_and_file(tmp_path: Path) -> None:
    code, output, directory = validate(
        tmp_path, "appsvc-field", {"service": {"app_service": {"registry": "dockerhub"}}}
    )
    assert code == 2, output
    assert "mlops_vm.service.app_service.registry" in output
    assert str(directory / "group_vars" / "all" / "mlops_vm.yml") in output
