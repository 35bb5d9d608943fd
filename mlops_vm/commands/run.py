"""`provision` and `destroy`: the environment's whole life, through the shared run path."""

import sys
from collections.abc import Callable

from mlops_vm.commands.exits import EXIT_BAD_INPUT, fail
from mlops_vm.commands.playbook import Verb, run_verb
from mlops_vm.environment.config import LoadedEnvironment

PROVISION = Verb(
    "playbooks/provision.yml",
    done="provisioned",
    planned="plan for",
    with_cloud=True,
    name="provision",
)
DESTROY = Verb("playbooks/destroy.yml", done="destroyed", name="destroy")


def provision(env: str, *, check: bool, as_json: bool, verbose: bool) -> int:
    """Launch the fleet, configure it, put the load balancer in front, smoke-test it."""
    return run_verb(PROVISION, env, check=check, verbose=verbose, as_json=as_json)


def destroy(
    env: str, *, yes: bool, as_json: bool, verbose: bool, confirm: Callable[[str], None]
) -> int:
    """Delete everything the environment owns (found by its tags); CONFIRM asks the question
    (and stops the command on no) unless YES."""

    def confirmed(loaded: LoadedEnvironment) -> None:
        if yes:
            return
        if not sys.stdin.isatty():
            raise fail(
                EXIT_BAD_INPUT, "destroy needs --yes when not run interactively", [], as_json
            )
        confirm(f"Delete every resource of environment {loaded.config.env!r}?")

    return run_verb(
        DESTROY, env, check=False, verbose=verbose, as_json=as_json, before_run=confirmed
    )
