"""No setting silently ignored (issue 25): walk the environment schema's service settings
against each managed target. Every common field (ServiceConfig) is either read by the
target or refused with its file, line and field; every field of a target's own section is
read by the target; a field added to the schema without a decision fails here."""

import re
from pathlib import Path

import pytest

from mlops_vm import paths
from mlops_vm.environment.config import PLATFORM_FIELDS, ServiceConfig
from mlops_vm.environment.target_fields import REFUSES, reads
from mlops_vm.services.dispatch import TARGET_NAMES
from tests.environments import cli_json, make_environment
from tests.unit.test_service_config import assert_located, problems_of

SECTIONS = {PLATFORM_FIELDS.get(t, t) for t in TARGET_NAMES}
COMMON_FIELDS = set(ServiceConfig.model_fields) - SECTIONS
EXAMPLES = {
    "ecs": "ecs-example",
    "lambda": "lambda-example",
    "cloud_run": "cloud-run-example",
    "app_service": "app-service-example",
}
# Values of the right type for each common field (what a user might write).
SAMPLES = {
    "health_path": "/alive",
    "domain": "api.example.com",
    "certificate": "my-certificate",
    "cert_file": "tls/cert.pem",
    "key_file": "tls/key.pem",
    "cpu": 2,
    "memory_mb": 4096,
}


def example_file(target: str) -> Path:
    return (
        paths.PROJECT_DIR
        / "inventories"
        / EXAMPLES[target]
        / "group_vars"
        / "all"
        / ("mlops_vm.yml")
    )


def package_source(target: str) -> str:
    """The target's package, with the shared services modules it imports (aws_alb.py reads
    the certificate for ECS and Lambda alike)."""
    services = paths.PROJECT_DIR / "mlops_vm" / "services"
    package = services / PLATFORM_FIELDS.get(target, target)
    source = "\n".join(path.read_text() for path in sorted(package.rglob("*.py")))
    shared = sorted(set(re.findall(r"mlops_vm\.services(?:\.|\s+import\s+)(\w+)", source)))
    modules = [services / f"{name}.py" for name in shared if (services / f"{name}.py").is_file()]
    return "\n".join([source, *(module.read_text() for module in modules)])


def test_every_target_has_an_example():
    assert set(EXAMPLES) == set(TARGET_NAMES)


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_every_common_field_is_read_or_refused(target):
    read, refused = reads(target), set(REFUSES[target])
    assert not read & refused, f"{target}: both read and refused: {read & refused}"
    undecided = COMMON_FIELDS - read - refused
    assert not undecided, f"{target}: no decision for service.{', service.'.join(undecided)}"
    assert read | refused == COMMON_FIELDS, f"{target}: unknown fields {read | refused}"


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_what_a_target_reads_its_code_reads(target):
    source = package_source(target)
    # spec.<field>, not just the word: a docstring or a parameter no caller passes is no read.
    unread = [f for f in sorted(reads(target)) if not re.search(rf"\bspec\.{f}\b", source)]
    assert not unread, f"{target} declares service.{unread} read but its package never reads it"


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_every_field_of_a_targets_own_section_is_read(target):
    section = ServiceConfig.model_fields[PLATFORM_FIELDS.get(target, target)].annotation
    model = next(arg for arg in section.__args__ if arg is not type(None))  # X | None
    source = package_source(target)
    unread = [f for f in model.model_fields if not re.search(rf"\boptions\.{f}\b", source)]
    assert not unread, f"service.{target}: {unread} accepted and never read"


REFUSED_CASES = [(t, f) for t in TARGET_NAMES for f in sorted(REFUSES[t])]


@pytest.mark.parametrize(("target", "field"), REFUSED_CASES)
def test_a_field_a_target_does_not_read_is_refused_with_its_line(tmp_path, target, field):
    directory = make_environment(
        tmp_path, "refused", {"service": {field: SAMPLES[field]}}, like=example_file(target)
    )
    message = assert_located(directory, problems_of(directory), f"mlops_vm.service.{field}")
    assert f"not used by target {target}" in message


def test_validate_exits_2_on_a_setting_the_target_does_not_use(tmp_path):
    directory = make_environment(
        tmp_path, "unused", {"service": {"certificate": "x"}}, like=example_file("cloud_run")
    )
    code, payload = cli_json("validate", str(directory))
    assert code == 2, payload
    assert "mlops_vm.service.certificate" in str(payload)
