"""The cloud_run target's settings: service.cloud_run in the schema, the example, and the
settings refused with their field, file and line."""

from dataclasses import replace

import pytest

from mlops_vm import paths
from mlops_vm.environment.load import load_environment
from mlops_vm.environment.service_spec import service_spec
from mlops_vm.provision.errors import ProvisionError
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.cloud_run.limits import check_domain
from mlops_vm.services.cloud_run.options import INTERNAL_LB, ingress_of, options_of, repository_id
from mlops_vm.services.settings import CloudRunServiceConfig
from tests.environments import ECS_ENV, make_environment
from tests.unit.test_service_config import assert_located, problems_of

CLOUD_RUN_ENV = (
    paths.PROJECT_DIR / "inventories" / "cloud-run-example" / "group_vars" / "all" / "mlops_vm.yml"
)


def test_the_cloud_run_example_is_valid_and_maps_to_a_service_spec():
    loaded = load_environment("cloud-run-example")
    assert loaded.config.target == "cloud_run"
    spec = service_spec(loaded.config, loaded.inventory_dir)
    assert (spec.cpu, spec.memory_mb, spec.concurrency) == (1, 2048, 80)
    assert spec.secrets == {"API_TOKEN": "iris-api-token:latest"}
    options = options_of(spec)
    assert options.traffic_steps == [10, 50, 100]
    assert repository_id(spec, options) == "mlops-vm-cloud-run-example"


def test_traffic_steps_must_rise_to_100(tmp_path):
    directory = make_environment(
        tmp_path,
        "steps",
        {"service": {"cloud_run": {"traffic_steps": [50, 20]}}},
        like=CLOUD_RUN_ENV,
    )
    message = assert_located(
        directory, problems_of(directory), "mlops_vm.service.cloud_run.traffic_steps"
    )
    assert "end at 100" in message


def test_cloud_run_settings_are_refused_for_another_target(tmp_path):
    directory = make_environment(
        tmp_path, "notcr", {"service": {"cloud_run": {"keep_images": 3}}}, like=ECS_ENV
    )
    message = assert_located(directory, problems_of(directory), "mlops_vm.service.cloud_run")
    assert "does not apply to target ecs" in message


def test_cloud_run_runs_on_gcp_only(tmp_path):
    directory = make_environment(
        tmp_path, "craws", {"provider": {"name": "aws"}}, like=CLOUD_RUN_ENV
    )
    message = assert_located(directory, problems_of(directory), "mlops_vm.provider.name")
    assert "runs on gcp" in message


def test_a_certificate_or_load_balancer_ingress_needs_a_domain():
    spec = ServiceSpec(env="e", name="s", image="model:1")
    default = CloudRunServiceConfig()
    with pytest.raises(ProvisionError, match=r"service\.cert_file/key_file"):
        check_domain(replace(spec, cert_file="/c.pem", key_file="/k.pem"), default)
    with pytest.raises(ProvisionError, match="go together"):
        check_domain(replace(spec, domain="api.example.com", cert_file="/c.pem"), default)
    lb_only = CloudRunServiceConfig(ingress="load_balancer")
    with pytest.raises(ProvisionError, match=r"ingress: load_balancer needs service\.domain"):
        check_domain(spec, lb_only)
    with_domain = replace(spec, domain="api.example.com")
    check_domain(with_domain, lb_only)
    assert ingress_of(with_domain, default) == INTERNAL_LB
    assert ingress_of(with_domain, CloudRunServiceConfig(ingress="all")) == "INGRESS_TRAFFIC_ALL"
    assert ingress_of(spec, default) == "INGRESS_TRAFFIC_ALL"
