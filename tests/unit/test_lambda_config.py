"""The `lambda` target in the environment schema (contract: no cloud): the example is
valid, Lambda's limits that the schema knows are refused with field, file and line, the
section spelt `lambda` maps to the target's options, and other targets' sections and
settings are refused."""

from pathlib import Path

import pytest

from mlops_vm.environment.load import load_environment
from mlops_vm.environment.service_spec import service_spec
from tests.environments import LAMBDA_ENV, make_environment
from tests.unit.test_service_config import assert_located, problems_of


def lambda_environment(tmp_path: Path, name: str, overrides: dict | None = None) -> Path:
    return make_environment(tmp_path, name, overrides, like=LAMBDA_ENV)


def test_the_lambda_example_is_valid_and_maps_to_a_service_spec():
    loaded = load_environment("lambda-example")
    assert loaded.config.target == "lambda" and loaded.config.managed
    spec = service_spec(loaded.config, loaded.inventory_dir)
    assert spec.name == "mlops-vm-lambda-example"
    assert (spec.memory_mb, spec.min_instances, spec.max_instances) == (2048, 0, 10)
    assert spec.options["timeout_s"] == 30 and spec.options["canary_percent"] == 10
    assert spec.options["ephemeral_storage_mb"] == 512
    assert spec.secrets["API_TOKEN"].startswith("arn:aws:secretsmanager:")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("timeout_s", 901, "less than or equal to 900"),
        ("ephemeral_storage_mb", 10241, "less than or equal to 10240"),
        ("ephemeral_storage_mb", 256, "greater than or equal to 512"),
        ("canary_percent", 60, "less than or equal to 50"),
        ("memory", 1024, "Extra inputs are not permitted"),
        ("endpoint", "nlb", "Input should be 'url' or 'alb'"),
    ],
)
def test_lambda_limits_in_the_schema_are_located(tmp_path, field, value, expected):
    directory = lambda_environment(tmp_path, "lim", {"service": {"lambda": {field: value}}})
    message = assert_located(directory, problems_of(directory), f"mlops_vm.service.lambda.{field}")
    assert expected in message


def test_another_targets_section_is_refused(tmp_path):
    directory = lambda_environment(tmp_path, "mixed", {"service": {"ecs": {"keep_images": 3}}})
    message = assert_located(directory, problems_of(directory), "mlops_vm.service.ecs")
    assert "does not apply to target lambda" in message
    ecs = lambda_environment(tmp_path, "ecsmixed", {"target": "ecs"})
    message = assert_located(ecs, problems_of(ecs), "mlops_vm.service.lambda")
    assert "does not apply to target ecs" in message


def test_an_alb_endpoint_on_a_domain_maps_to_the_service_spec(tmp_path):
    overrides = {
        "service": {
            "lambda": {"endpoint": "alb"},
            "domain": "api.example.test",
            "certificate": "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
        }
    }
    directory = lambda_environment(tmp_path, "albenv", overrides)
    loaded = load_environment(directory)
    spec = service_spec(loaded.config, loaded.inventory_dir)
    assert spec.options["endpoint"] == "alb" and spec.domain == "api.example.test"
