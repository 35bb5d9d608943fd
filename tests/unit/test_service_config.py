"""The environment schema's managed targets: one `target` key chooses the platform, and
every setting that does not apply to it is refused with its field, file and line."""

from pathlib import Path

import pytest
import yaml

from mlops_vm.environment.config import ConfigError
from mlops_vm.environment.load import load_environment
from mlops_vm.environment.service_spec import DEFAULT_HEALTHY_TIMEOUT_S, service_spec
from tests.environments import ECS_ENV, cli_json, make_environment


def ecs_environment(tmp_path: Path, name: str, overrides: dict | None = None) -> Path:
    return make_environment(tmp_path, name, overrides, like=ECS_ENV)


def problems_of(directory: Path) -> dict[str, tuple[str, int | None, Path]]:
    with pytest.raises(ConfigError) as raised:
        load_environment(directory)
    return {p.field: (p.message, p.line, p.file) for p in raised.value.problems}


def assert_located(directory: Path, problems: dict, field: str) -> str:
    """FIELD is among PROBLEMS, in the environment's file, at the line of its own key."""
    assert field in problems, problems
    message, line, file = problems[field]
    source = directory / "group_vars" / "all" / "mlops_vm.yml"
    assert file == source
    assert line is not None
    assert field.rsplit(".", 1)[-1] + ":" in source.read_text().splitlines()[line - 1]
    return message


def test_the_ecs_example_is_valid_and_maps_to_a_service_spec():
    loaded = load_environment("ecs-example")
    assert loaded.config.target == "ecs" and loaded.config.managed
    spec = service_spec(loaded.config, loaded.inventory_dir)
    assert spec.name == "mlops-vm-ecs-example"
    assert spec.image == "registry.example.com/iris-model:1.0"
    assert (spec.cpu, spec.memory_mb, spec.port) == (0.5, 1024, 8080)
    assert spec.secrets["API_TOKEN"].startswith("arn:aws:secretsmanager:")
    assert spec.env_vars == {"LOG_LEVEL": "info"}
    assert spec.options["target_requests_per_task"] == 1000
    assert spec.healthy_timeout_s == 900
    # The password stays out of the settings' repr (run logs, tracebacks).
    assert "vault_registry_password" not in repr(spec.registry)


def test_a_managed_target_waits_longer_for_health_unless_told(tmp_path):
    directory = ecs_environment(tmp_path, "waits")
    source = directory / "group_vars" / "all" / "mlops_vm.yml"
    settings = yaml.safe_load(source.read_text())
    del settings["mlops_vm"]["release"]
    source.write_text(yaml.safe_dump(settings))
    loaded = load_environment(directory)
    spec = service_spec(loaded.config, loaded.inventory_dir)
    assert spec.healthy_timeout_s == DEFAULT_HEALTHY_TIMEOUT_S


def test_vm_settings_are_refused_for_a_managed_target(tmp_path):
    directory = ecs_environment(
        tmp_path,
        "vmbits",
        {
            "fleet": {"count": 2},
            "load_balancer": {"https_port": 443},
            "model": {"replicas": 2, "memory": "1g"},
            "release": {"batch": "25%"},
        },
    )
    problems = problems_of(directory)
    for field in (
        "mlops_vm.fleet",
        "mlops_vm.load_balancer",
        "mlops_vm.model.replicas",
        "mlops_vm.model.memory",
        "mlops_vm.release.batch",
    ):
        assert "target ecs" in assert_located(directory, problems, field)


def test_a_target_on_another_cloud_than_the_provider_is_refused(tmp_path):
    directory = ecs_environment(tmp_path, "cloudy", {"provider": {"name": "gcp"}})
    message = assert_located(directory, problems_of(directory), "mlops_vm.provider.name")
    assert "runs on aws" in message


def test_service_settings_are_refused_for_vms(tmp_path):
    directory = make_environment(tmp_path, "vmsvc", {"service": {"port": 8080}})
    message = assert_located(directory, problems_of(directory), "mlops_vm.service")
    assert "managed targets only" in message


def test_an_unknown_target_and_bad_service_values_are_located(tmp_path):
    directory = ecs_environment(
        tmp_path,
        "badsvc",
        {
            "target": "kubernetes",
            "service": {
                "min_instances": 5,
                "max_instances": 2,
                "access": "everyone",
                "health_path": "healthz",
                "secrets": {"1BAD": "arn:aws:secretsmanager:eu-west-1:1:secret:x"},
                "ecs": {"log_retention_days": 2},
            },
        },
    )
    problems = problems_of(directory)
    # Every target is listed (the list grows with each platform).
    message = assert_located(directory, problems, "mlops_vm.target")
    assert "'vms'" in message and "'ecs'" in message
    for field in (
        "mlops_vm.service.access",
        "mlops_vm.service.health_path",
        "mlops_vm.service.ecs.log_retention_days",
    ):
        assert_located(directory, problems, field)
    assert any(field.startswith("mlops_vm.service.secrets") for field in problems)


def test_min_instances_above_max_is_refused(tmp_path):
    directory = ecs_environment(
        tmp_path, "minmax", {"service": {"min_instances": 5, "max_instances": 2}}
    )
    message = assert_located(directory, problems_of(directory), "mlops_vm.service")
    assert "min_instances (5) is above max_instances (2)" in message


def test_certificate_files_must_exist(tmp_path):
    directory = ecs_environment(
        tmp_path, "nocert", {"service": {"certificate": None, "cert_file": "missing.pem"}}
    )
    message = assert_located(directory, problems_of(directory), "mlops_vm.service.cert_file")
    assert "file not found" in message


def test_validate_exits_2_naming_field_and_line(tmp_path):
    directory = ecs_environment(tmp_path, "cliecs", {"fleet": {"count": 2}})
    code, payload = cli_json("validate", str(directory))
    assert code == 2
    source = directory / "group_vars" / "all" / "mlops_vm.yml"
    line = next(
        n for n, text in enumerate(source.read_text().splitlines(), 1) if text == "  fleet:"
    )
    assert f"{source}:{line}: mlops_vm.fleet: does not apply to target ecs" in "\n".join(
        payload["problems"]
    )
