"""`image build`: the machine image of an environment's release, baked (or found by its
fingerprint) through the shared run path (playbooks/image.yml)."""

from mlops_vm.commands.exits import EXIT_BAD_INPUT, fail
from mlops_vm.commands.playbook import Step, Verb, run_verb
from mlops_vm.environment.config import LoadedEnvironment

BUILD = Verb(
    "playbooks/image.yml",
    done="baked the release image of",
    planned="image plan for",
    with_cloud=True,
    name="image",
)


def scaling_group_only(as_json: bool) -> Step:
    """Images are what scaling groups boot from: other environments are refused (exit 2)."""

    def check(loaded: LoadedEnvironment) -> None:
        config = loaded.config
        if config.managed or config.fleet.mode != "scaling_group":
            raise fail(
                EXIT_BAD_INPUT,
                f"{loaded.source}: fleet.mode is not scaling_group",
                ["release images are for scaling groups: set fleet.mode: scaling_group"],
                as_json,
            )

    return check


def build(env: str, *, check: bool, as_json: bool, verbose: bool) -> int:
    """Bake ENV's release image unless one with the same fingerprint exists; remove the
    images beyond fleet.keep_images."""
    return run_verb(
        BUILD,
        env,
        check=check,
        verbose=verbose,
        as_json=as_json,
        checks=[scaling_group_only(as_json)],
    )
