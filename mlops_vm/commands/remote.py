"""`exec` and `ssh`: a command on the model hosts, or a session on one (in its model
container with --container), over the same SSH settings Ansible uses.

Managed targets have no hosts to reach: both commands say so and exit 2 (ECS Exec, Cloud Run
and App Service consoles are the platforms' own ways in; not wired here yet).
"""

import subprocess

from mlops_vm.commands.checks import load, provider_for
from mlops_vm.commands.exits import EXIT_BAD_INPUT, EXIT_FAILED, fail
from mlops_vm.environment.config import LoadedEnvironment
from mlops_vm.environment.inventory import host_vars_of
from mlops_vm.provision import ProvisionError
from mlops_vm.provision.model import ROLE_MODEL, Instance, InstanceStatus
from mlops_vm.release.hosts import container_session, run_on_hosts, ssh_login

PLATFORM_WAY_IN = {
    "ecs": "aws ecs execute-command --interactive (ECS Exec, when the service enables it)",
    "lambda": "none: a Lambda function has no session; see `mlops-vm logs`",
    "cloud_run": "none: Cloud Run has no session; see `mlops-vm logs`",
    "app_service": "the App Service SSH console (az webapp ssh)",
}


def model_hosts(loaded: LoadedEnvironment, host: str | None, verb: str) -> list[Instance]:
    """The environment's running model hosts (HOST: that one), or a Stop saying why not."""
    if loaded.config.managed:
        target = loaded.config.target
        raise fail(
            EXIT_BAD_INPUT,
            f"{verb}: {loaded.config.env} runs on the managed target {target}: no hosts to reach",
            [f"the platform's way in: {PLATFORM_WAY_IN.get(target, 'its console')}"],
            False,
        )
    try:
        instances = provider_for(loaded, False).list_instances(loaded.config.env, ROLE_MODEL)
    except ProvisionError as error:
        raise fail(EXIT_FAILED, f"{verb} failed", [str(error)], False) from None
    if host:
        instances = [i for i in instances if host in (i.name, i.id)]
        if not instances:
            raise fail(EXIT_BAD_INPUT, f"no model host {host!r} in {loaded.config.env}", [], False)
    running = [i for i in instances if i.status == InstanceStatus.RUNNING and i.address]
    if not running:
        raise fail(EXIT_FAILED, f"{verb}: no running model host in {loaded.config.env}", [], False)
    return running


def exec_command(env: str, command: list[str], *, host: str | None) -> int:
    """COMMAND on each model host (HOST: only that one); the worst host's exit code."""
    if not command:
        raise fail(EXIT_BAD_INPUT, "exec: give the command after --", [], False)
    loaded = load(env, False)
    instances = model_hosts(loaded, host, "exec")
    return run_on_hosts(instances, host_vars_of(loaded.config, loaded.inventory_dir), command)


def ssh(env: str, host: str | None, *, container: bool) -> int:
    """An interactive session on HOST (default: the first model host), or in its model
    container; the session's exit code."""
    loaded = load(env, False)
    instance = model_hosts(loaded, host, "ssh")[0]
    hv = host_vars_of(loaded.config, loaded.inventory_dir)(instance)
    argv = container_session(hv) if container else ssh_login(hv, terminal=True)
    return subprocess.call(argv)
