"""`logs`: the model containers' logs, from the hosts over SSH (VMs) or from the platform's
log store (managed targets)."""

from mlops_vm import display
from mlops_vm.commands.checks import load, provider_for, service_target_for
from mlops_vm.commands.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, fail
from mlops_vm.environment.config import LoadedEnvironment
from mlops_vm.environment.inventory import host_vars_of
from mlops_vm.provision import ProvisionError
from mlops_vm.provision.model import ROLE_MODEL
from mlops_vm.release.hosts import stream_logs


def logs(env: str, *, host: str | None, tail: int, follow: bool) -> int:
    """Each line prefixed with host | container; HOST: only that model host."""
    loaded = load(env, False)
    if loaded.config.managed:
        return service_logs(loaded, tail=tail, follow=follow)
    provider = provider_for(loaded, False)
    try:
        instances = provider.list_instances(loaded.config.env, ROLE_MODEL)
    except ProvisionError as error:
        raise fail(EXIT_FAILED, "logs failed", [str(error)], False) from None
    if host:
        instances = [i for i in instances if host in (i.name, i.id)]
        if not instances:
            raise fail(EXIT_BAD_INPUT, f"no model host {host!r} in {loaded.config.env}", [], False)
    return stream_logs(
        instances,
        host_vars_of(loaded.config, loaded.inventory_dir),
        tail=tail,
        follow=follow,
    )


def service_logs(loaded: LoadedEnvironment, *, tail: int, follow: bool) -> int:
    """The managed service's container logs (the platform's log store)."""
    if follow:
        raise fail(EXIT_BAD_INPUT, "--follow is for VMs; a managed service: --tail", [], False)
    target = service_target_for(loaded, False)
    try:
        lines = target.logs(loaded.config.env, tail=tail)
    except ProvisionError as error:
        raise fail(EXIT_FAILED, "logs failed", [str(error)], False) from None
    for line in lines:
        display.out.print(line, markup=False, highlight=False)
    return EXIT_OK
