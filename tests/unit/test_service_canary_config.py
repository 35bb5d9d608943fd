"""The managed targets' canary settings (service.<platform>.canary, the fields of the VMs'
release.canary): from the environment file to the target's options, and what is refused
with its field, file and line."""

from mlops_vm import paths
from mlops_vm.environment.load import load_environment
from mlops_vm.environment.service_spec import service_spec
from mlops_vm.services.cloud_run.options import options_of
from mlops_vm.services.settings import (
    AppServiceConfig,
    EcsServiceConfig,
    LambdaServiceConfig,
    parse_options,
)
from tests.environments import ECS_ENV, LAMBDA_ENV, make_environment
from tests.unit.test_service_config import assert_located, problems_of

CLOUD_RUN_ENV = (
    paths.PROJECT_DIR / "inventories" / "cloud-run-example" / "group_vars" / "all" / "mlops_vm.yml"
)
APP_SERVICE_ENV = (
    paths.PROJECT_DIR
    / "inventories"
    / "app-service-example"
    / "group_vars"
    / "all"
    / "mlops_vm.yml"
)
CANARY = {"enabled": True, "window_s": 120, "max_error_share_increase": 0.02, "min_requests": 30}


def test_canary_settings_reach_each_target(tmp_path):
    cloud_run = make_environment(
        tmp_path,
        "crc",
        {"service": {"cloud_run": {"traffic_steps": [10, 100], "canary": CANARY}}},
        like=CLOUD_RUN_ENV,
    )
    loaded = load_environment(cloud_run)
    options = options_of(service_spec(loaded.config, loaded.inventory_dir))
    assert options.canary.enabled and options.canary.window_s == 120
    assert (options.canary.max_p99_ratio, options.canary.min_requests) == (1.5, 30)

    app = make_environment(
        tmp_path, "asc", {"service": {"app_service": {"canary": CANARY}}}, like=APP_SERVICE_ENV
    )
    loaded = load_environment(app)
    spec = service_spec(loaded.config, loaded.inventory_dir)
    found = parse_options(AppServiceConfig, spec.options, "service.app_service")
    assert found.canary.enabled and found.canary_percent == 10

    function = make_environment(
        tmp_path,
        "lc",
        {"service": {"lambda": {"canary_percent": 10, "canary": CANARY}}},
        like=LAMBDA_ENV,
    )
    loaded = load_environment(function)
    spec = service_spec(loaded.config, loaded.inventory_dir)
    assert parse_options(LambdaServiceConfig, spec.options, "service.lambda").canary.enabled


def test_the_canary_is_off_unless_enabled():
    assert not LambdaServiceConfig().canary.enabled
    assert not AppServiceConfig().canary.enabled


def test_a_cloud_run_canary_needs_a_first_step_below_100(tmp_path):
    directory = make_environment(
        tmp_path,
        "crc",
        {"service": {"cloud_run": {"traffic_steps": [100], "canary": {"enabled": True}}}},
        like=CLOUD_RUN_ENV,
    )
    message = assert_located(directory, problems_of(directory), "mlops_vm.service.cloud_run")
    assert "first step below 100" in message


def test_a_lambda_canary_needs_a_share(tmp_path):
    directory = make_environment(
        tmp_path,
        "lc",
        {"service": {"lambda": {"canary_percent": 0, "canary": {"enabled": True}}}},
        like=LAMBDA_ENV,
    )
    message = assert_located(directory, problems_of(directory), "mlops_vm.service.lambda")
    assert "canary_percent above 0" in message


def test_a_bad_threshold_is_refused_naming_the_field(tmp_path):
    directory = make_environment(
        tmp_path,
        "lc",
        {"service": {"lambda": {"canary": {"window_s": -1}}}},
        like=LAMBDA_ENV,
    )
    assert_located(directory, problems_of(directory), "mlops_vm.service.lambda.canary.window_s")


def test_the_ecs_canary_settings_reach_the_target(tmp_path):
    directory = make_environment(
        tmp_path, "ec", {"service": {"ecs": {"canary_percent": 20, "canary": CANARY}}}, like=ECS_ENV
    )
    loaded = load_environment(directory)
    spec = service_spec(loaded.config, loaded.inventory_dir)
    found = parse_options(EcsServiceConfig, spec.options, "service.ecs")
    assert found.canary.enabled and found.canary_percent == 20 and found.canary.window_s == 120
    assert not EcsServiceConfig().canary.enabled and EcsServiceConfig().canary_percent == 10


def test_an_ecs_canary_share_above_half_is_refused_naming_the_field(tmp_path):
    directory = make_environment(
        tmp_path, "ec", {"service": {"ecs": {"canary_percent": 80}}}, like=ECS_ENV
    )
    assert_located(directory, problems_of(directory), "mlops_vm.service.ecs.canary_percent")
