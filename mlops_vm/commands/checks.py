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


def check_with_provider(
    loaded: LoadedEnvironment, provider: Provider, as_json: bool, *, with_cloud: bool
) -> None:
    """What the provider can check before anything is created: offline (names, sizes, ports)
    and, WITH_CLOUD, what its API answers (regions, machine types, certificates)."""
    fleet = fleet_spec(loaded.config, loaded.inventory_dir)
    lb = load_balancer_spec(loaded.config, loaded.inventory_dir)
    try:
        if with_cloud:
            provider.validate(fleet, lb)
        else:
            provider.check_offline(fleet, lb)
    except ProvisionError as error:
        raise rejected(loaded, f"the {provider.name} provider", error, as_json) from None


def check_environment(
    loaded: LoadedEnvironment, as_json: bool, *, with_cloud: bool, offline: bool = False
) -> None:
    """The provider (VMs) or the managed target can be used; OFFLINE, it also checks what
    needs no credentials nor network; WITH_CLOUD, that and what its API answers, before
    anything is created (exit 2 naming the problem)."""
    if not (offline or with_cloud):
        if loaded.config.managed:
            service_target_for(loaded, as_json)
        else:
            provider_for(loaded, as_json)
        return
    if not loaded.config.managed:
        check_with_provider(loaded, provider_for(loaded, as_json), as_json, with_cloud=with_cloud)
        return
    target = service_target_for(loaded, as_json)
    spec = service_spec(loaded.config, loaded.inventory_dir)
    try:
        if with_cloud:
            target.validate(spec)
        else:
            target.check_offline(spec)
    except ProvisionError as error:
        raise rejected(loaded, f"the {target.name} target", error, as_json) from None
