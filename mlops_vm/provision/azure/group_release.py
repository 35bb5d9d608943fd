"""A VM scale set's release record: what its model serves and what that replaced.

The model's release and the one it replaced are tags on the scale set (mlops-vm-release,
mlops-vm-previous-release; Azure tag values may hold "/" and ":"). The model itself is
not kept: customData is write-only in ARM, so `rollback` is a release of the previous
image, its user data rendered again, put as the model and rolled to the instances by
the same rolling upgrade as any release; the tags then swap, so a second rollback goes
forward again.
"""

from mlops_vm.provision.azure.client import Json
from mlops_vm.provision.model import LABEL_PREVIOUS_RELEASE, LABEL_RELEASE, FleetSpec


def releases(scale_set: Json | None) -> tuple[str | None, str | None]:
    """(the release, the previous one) recorded on SCALE_SET."""
    tags = (scale_set or {}).get("tags") or {}
    return tags.get(LABEL_RELEASE), tags.get(LABEL_PREVIOUS_RELEASE)


def release_tags(actual: Json | None, spec: FleetSpec) -> dict[str, str]:
    """The release tags the scale set gets for SPEC: its release, and the one it replaces
    when that changes (else the one recorded before)."""
    release = spec.instance.release
    if not release:
        return {}
    current, previous = releases(actual)
    if current and current != release:
        previous = current
    return {LABEL_RELEASE: release, **({LABEL_PREVIOUS_RELEASE: previous} if previous else {})}
