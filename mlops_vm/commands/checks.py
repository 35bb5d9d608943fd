"""Load an environment for a command and check that its provider (VMs) or managed target
can be used: bad input exits 2 naming the problem, before anything is changed."""

from mlops_vm.commands.exits import EXIT_BAD_INPUT, EXIT_FAILED, Stop, fail
from mlops_vm.environment.config import ConfigError, LoadedEnvironment
from mlops_vm.environment.load import load_environment
from mlops_vm.environment.service_spec import service_spec
from mlops_vm.environment.specs import fleet_spec, load_balancer_spec, provider_settings
from mlops_vm.provision import ErrorCode, Provider, ProvisionError, get_provider
from mlops_vm.services import ServiceTarget, get_service_target


def load(env: str, as_json: bool) -> LoadedEnvironment:
    try:
        return load_environment(env)
    except ConfigError as error:
        raise fail(
            EXIT_BAD_INPUT,
            f"invalid environment {env!r}",
            [str(p) for p in error.problems],
            as_json,
        ) from None


def provider_for(loaded: LoadedEnvironment, as_json: bool) -> Provider:
    try:
        return get_provider(provider_settings(loaded.config))
    except ProvisionError as error:
        raise fail(EXIT_BAD_INPUT, "provider not available", [str(error)], as_json) from None


def service_target_for(loaded: LoadedEnvironment, as_json: bool) -> ServiceTarget:
    try:
        return get_service_target(loaded.config.target, provider_settings(loaded.config))
    except ProvisionError as error:
        raise fail(EXIT_BAD_INPUT, "target not available", [str(error)], as_json) from None


def rejected(loaded: LoadedEnvironment, by: str, error: ProvisionError, as_json: bool) -> Stop:
    code = EXIT_BAD_INPUT if error.code == ErrorCode.INVALID_INPUT else EXIT_FAILED
    return fail(code, f"{loaded.source}: rejected by {by}", [str(error)], as_json)


def check_with_provider(loaded: LoadedEnvironment, provider: Provider, as_json: bool) -> None:
    """What the provider can check before anything is created (regions, ports, files)."""
    try:
        provider.validate(
            fleet_spec(loaded.config, loaded.inventory_dir),
            load_balancer_spec(loaded.config, loaded.inventory_dir),
        )
    except ProvisionError as error:
        raise rejected(loaded, f"the {provider.name} provider", error, as_json) from None


def check_environment(loaded: LoadedEnvironment, as_json: bool, *, with_cloud: bool) -> None:
    """The provider (VMs) or the managed target can be used; WITH_CLOUD, it also checks
    what it can before anything is created (exit 2 naming the problem)."""
    if not loaded.config.managed:
        provider = provider_for(loaded, as_json)
        if with_cloud:
            check_with_provider(loaded, provider, as_json)
        return
    target = service_target_for(loaded, as_json)
    if with_cloud:
        try:
            target.validate(service_spec(loaded.config, loaded.inventory_dir))
        except ProvisionError as error:
            raise rejected(loaded, f"the {target.name} target", error, as_json) from None
