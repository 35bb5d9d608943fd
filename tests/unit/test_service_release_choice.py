"""Which release a managed service runs: the VM side's rules (mlops_vm/release/choose.py)
applied to the revisions a platform reports."""

import pytest

from mlops_vm.release.choose import ReleaseError
from mlops_vm.services import Revision, ServiceRecord
from mlops_vm.services.releases import choose_service_release

MODEL = {"image": "registry.test/model:1.0"}


def record(active: Revision | None, previous: Revision | None = None) -> ServiceRecord:
    return ServiceRecord(name="svc", url="https://svc.test", active=active, previous=previous)


def revision(number: int, image: str, source: str, inventory_image: str = "") -> Revision:
    return Revision(f"arn:task-definition/svc:{number}", image, source, inventory_image)


def test_no_service_runs_the_inventorys_image():
    choice = choose_service_release("provision", MODEL, None)
    assert (choice.release["image"], choice.source) == ("registry.test/model:1.0", "provision")


def test_a_deployed_release_is_kept_while_the_inventory_is_unchanged():
    deployed = revision(2, "registry.test/model:1.1", "deploy", "registry.test/model:1.0")
    choice = choose_service_release("provision", MODEL, record(deployed))
    assert choice.release["image"] == "registry.test/model:1.1"
    assert choice.source == "deploy" and "keeping the running release" in choice.notes[0]
    # The inventory asks for something new: that wins.
    changed = choose_service_release(
        "provision", {"image": "registry.test/model:2.0"}, record(deployed)
    )
    assert changed.release["image"] == "registry.test/model:2.0"


def test_deploy_with_an_image_runs_it_and_remembers_the_inventorys():
    choice = choose_service_release("deploy", MODEL, None, "registry.test/model:1.1")
    assert choice.release["image"] == "registry.test/model:1.1"
    assert choice.release["inventory_image"] == "registry.test/model:1.0"


def test_rollback_goes_to_the_previous_revision_and_needs_one():
    first = revision(1, "registry.test/model:1.0", "provision")
    second = revision(2, "registry.test/model:1.1", "deploy", "registry.test/model:1.0")
    choice = choose_service_release("rollback", MODEL, record(second, first))
    assert (choice.release["image"], choice.source) == ("registry.test/model:1.0", "rollback")
    with pytest.raises(ReleaseError, match="nothing to roll back to"):
        choose_service_release("rollback", MODEL, record(second))
    with pytest.raises(ReleaseError, match="nothing to roll back to"):
        choose_service_release("rollback", MODEL, None)
