"""Which release a run rolls out (mlops_vm/release/choose.py): no command silently reverts
a release, `rollback` needs an agreed previous release."""

import pytest

from mlops_vm.release.choose import ReleaseError, choose_release

IMAGE_10 = "reg:5443/m/model:1.0"
IMAGE_11 = "reg:5443/m/model:1.1"
MODEL = {"image": IMAGE_10, "replicas": 2, "memory": "512m"}


def record(image: str, source: str, inventory_image: str, fingerprint: str = "f1") -> dict:
    return {
        "image": image,
        "replicas": 2,
        "workers": 1,
        "cpus": 1.0,
        "memory": "512m",
        "gpus": "0",
        "env": {},
        "fingerprint": fingerprint,
        "source": source,
        "inventory_image": inventory_image,
    }


def test_a_fresh_environment_runs_the_inventory():
    choice = choose_release("provision", MODEL, {"h1": None, "h2": None})
    assert choice.release["image"] == IMAGE_10
    assert choice.release["replicas"] == 2
    assert choice.source == "provision"
    assert choice.notes == []


def test_deploy_image_overrides_only_the_image():
    choice = choose_release("deploy", MODEL, {"h1": None}, image=IMAGE_11)
    assert choice.release["image"] == IMAGE_11
    assert choice.release["memory"] == "512m"
    assert choice.release["inventory_image"] == IMAGE_10
    assert choice.source == "deploy"


def test_provision_keeps_a_deployed_release_while_the_inventory_did_not_change():
    current = record(IMAGE_11, "deploy", inventory_image=IMAGE_10)
    records = {"h1": {"current": current, "previous": None}}
    choice = choose_release("provision", MODEL, records)
    assert choice.release["image"] == IMAGE_11
    assert "keeping the running release" in choice.notes[0]
    assert f"--image {IMAGE_10}" in choice.notes[0]


def test_an_edited_inventory_wins_over_a_deployed_release():
    current = record(IMAGE_11, "deploy", inventory_image="reg:5443/m/model:0.9")
    choice = choose_release("provision", MODEL, {"h1": {"current": current}})
    assert choice.release["image"] == IMAGE_10
    assert choice.notes == []


def test_a_release_made_by_provision_is_not_kept():
    current = record(IMAGE_11, "provision", inventory_image=IMAGE_11)
    choice = choose_release("provision", MODEL, {"h1": {"current": current}})
    assert choice.release["image"] == IMAGE_10


def test_rollback_takes_the_previous_release_with_its_settings():
    previous = record(IMAGE_10, "provision", IMAGE_10) | {"memory": "1g"}
    records = {
        h: {"current": record(IMAGE_11, "deploy", IMAGE_10, "f2"), "previous": previous}
        for h in ("h1", "h2")
    }
    choice = choose_release("rollback", MODEL, records)
    assert choice.release["image"] == IMAGE_10
    assert choice.release["memory"] == "1g"
    assert choice.source == "rollback"


def test_rollback_without_a_previous_release_is_refused():
    records = {"h1": {"current": record(IMAGE_10, "provision", IMAGE_10), "previous": None}}
    with pytest.raises(ReleaseError, match=r"nothing to roll back to: .*h1"):
        choose_release("rollback", MODEL, records)


def test_rollback_refuses_hosts_that_disagree():
    records = {
        "h1": {"previous": record(IMAGE_10, "provision", IMAGE_10, "f1")},
        "h2": {"previous": record(IMAGE_11, "provision", IMAGE_11, "f2")},
    }
    with pytest.raises(ReleaseError, match="disagree"):
        choose_release("rollback", MODEL, records)
