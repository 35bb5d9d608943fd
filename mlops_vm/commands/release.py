"""`deploy` and `rollback`: a release host by host (VMs) or revision by revision (managed
targets), through the shared run path."""

from typing import Any

from mlops_vm.commands.exits import EXIT_BAD_INPUT, fail
from mlops_vm.commands.history import entry_release
from mlops_vm.commands.playbook import Step, Verb, run_verb
from mlops_vm.environment.config import IMAGE_REFERENCE, LoadedEnvironment

DEPLOY = Verb("playbooks/release.yml", done="released", planned="release plan for", name="deploy")
ROLLBACK = Verb(
    "playbooks/release.yml", done="rolled back", planned="rollback plan for", name="rollback"
)


def image_reference(image: str | None, as_json: bool) -> Step:
    """The check that --image IMAGE, when given, is an image reference (exit 2)."""

    def check(_: LoadedEnvironment) -> None:
        if image is not None and not IMAGE_REFERENCE.match(image):
            raise fail(
                EXIT_BAD_INPUT,
                f"--image {image!r} is not an image reference",
                ["registry[:port]/path[:tag][@sha256:digest], lowercase path"],
                as_json,
            )

    return check


def deploy(
    env: str,
    *,
    image: str | None,
    check: bool,
    as_json: bool,
    verbose: bool,
    canary: bool | None = None,
) -> int:
    """Release IMAGE (default: the inventory's model.image); CANARY overrides release.canary
    .enabled for this run (None: the setting)."""
    extravars: dict[str, Any] = {"mlops_vm_release_mode": "deploy"}
    if image:
        extravars["mlops_vm_release_image"] = image
    if canary is not None:
        extravars["mlops_vm_release_canary"] = canary
    return run_verb(
        DEPLOY,
        env,
        check=check,
        verbose=verbose,
        as_json=as_json,
        extravars=extravars,
        checks=[image_reference(image, as_json)],
    )


def rollback(env: str, *, to: int | None, check: bool, as_json: bool, verbose: bool) -> int:
    """Go back to the previous release the hosts (or the platform) recorded, or with TO, to
    the release entry TO of the history left running."""
    extravars: dict[str, Any] = {"mlops_vm_release_mode": "rollback"}
    checks: list[Step] = []
    if to is not None:
        checks.append(history_release(to, extravars, as_json))
    return run_verb(
        ROLLBACK,
        env,
        check=check,
        verbose=verbose,
        as_json=as_json,
        extravars=extravars,
        checks=checks,
    )


def history_release(n: int, extravars: dict[str, Any], as_json: bool) -> Step:
    """The check that entry N of the history names a release to go back to (exit 2), which
    then goes into EXTRAVARS for the release playbook (release/choose.py `to`)."""

    def check(loaded: LoadedEnvironment) -> None:
        if loaded.config.managed:
            raise fail(
                EXIT_BAD_INPUT,
                "--to works on VM fleets; a managed target rolls back to its previous revision",
                ["run `mlops-vm rollback ENV` or `mlops-vm deploy ENV --image REF`"],
                as_json,
            )
        release = entry_release(loaded, n, as_json)
        extravars["mlops_vm_release_to"] = release
        extravars["mlops_vm_release_image"] = release["image"]  # what a scaling group rolls

    return check
