"""The history entry of a run, from what the run itself tells (release-plan.yml's
`release_before`, release-roll.yml's `release_after`, through the same functions their
filters call): a deploy, a rollback, a release that failed and was rolled back, and a run
that changed nothing, with no host read; a run that cannot tell is read after it, and a
managed target or a scaling group before and after."""

from types import SimpleNamespace
from typing import Any

import pytest

from mlops_vm.commands import history
from mlops_vm.commands.history import history_entry
from mlops_vm.release.deploy_lock import Holder
from mlops_vm.release.running import image_reference, most_run, releases_after, releases_before

HOSTS = ("m-1", "m-2")
SIZES = {"replicas": 1, "workers": 1, "cpus": 1.0, "memory": "512m", "gpus": "0"}
A = {"image": "r:5443/m:1.0", **SIZES}
B = {"image": "r:5443/m:1.1", **SIZES}
HOLDER = Holder("t", "alice", "laptop", 1, "2026-12-05T14:00:00+00:00", "mlops-vm deploy dev")


def record(release: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """A host's release.json: env (secret) and fingerprint beside the release."""
    current = {**release, "env": {"TOKEN": "s3cret"}, "fingerprint": "f" * 16, "source": "x"}
    return {"current": current, "previous": previous}


def fleet(mode: str = "fleet", managed: bool = False) -> Any:
    return SimpleNamespace(
        config=SimpleNamespace(env="dev", managed=managed, fleet=SimpleNamespace(mode=mode))
    )


def summary(ok: bool = True, **release: Any) -> dict[str, Any]:
    return {
        "ok": ok,
        "status": "successful" if ok else "failed",
        "check": False,
        "changes": [],
        "failures": [] if ok else [{"host": "m-1", "message": "failed"}],
        "release": {"hosts_changed": [], **release},
    }


def told(before: dict, preflight: dict | None = None, changed=(), chosen=None) -> dict:
    """What a VM fleet's run tells: the hosts' records before it and after it."""
    return {
        "release_before": releases_before(before),
        "release_after": releases_after(preflight or before, list(changed), chosen or {}),
    }


@pytest.fixture(autouse=True)
def no_host_is_read(monkeypatch):
    reads = []

    def running_release(loaded, as_json):
        reads.append(loaded)
        return {"image": "read/from:host"}

    monkeypatch.setattr(history, "running_release", running_release)
    return reads


def entry(run_told: dict, run: dict, verb="deploy", loaded=None, before=None):
    return history_entry(loaded or fleet(), verb, HOLDER, before, run, run_told, 0.0, False)


def test_a_deploy_goes_from_what_the_hosts_ran_to_the_chosen_release(no_host_is_read):
    records = {host: record(A) for host in HOSTS}
    chosen = {**B, "env": {"TOKEN": "s3cret"}, "inventory_image": "r:5443/m:1.0"}
    run = summary(hosts_changed=list(HOSTS))
    found = entry(told(records, changed=HOSTS, chosen=chosen), run)
    assert (found.from_release, found.to_release, found.result) == (A, B, "ok")
    assert "s3cret" not in str(found)  # no env, ever
    assert no_host_is_read == []


def test_a_rollback_goes_back_to_the_previous_release(no_host_is_read):
    records = {host: record(B, previous=record(A)["current"]) for host in HOSTS}
    run = summary(hosts_changed=list(HOSTS))
    found = entry(told(records, changed=HOSTS, chosen=A), run, verb="rollback")
    assert (found.verb, found.from_release, found.to_release) == ("rollback", B, A)
    assert no_host_is_read == []


def test_a_release_rolled_back_leaves_every_host_on_what_it_ran(no_host_is_read):
    records = {host: record(A) for host in HOSTS}
    failure = {"host": "m-2", "reason": "keeps restarting", "image": "r:5443/m:broken"}
    run = summary(ok=False, hosts_changed=list(HOSTS), failure=failure)
    # The report names no host as switched after a failure (release-roll.yml).
    found = entry(told(records, changed=(), chosen=B), run)
    assert (found.from_release, found.to_release) == (A, A)
    assert (found.result, found.detail) == ("rolled back", "m-2: keeps restarting")
    assert no_host_is_read == []


def test_a_run_that_changed_nothing_leaves_no_entry(no_host_is_read):
    records = {host: record(A) for host in HOSTS}
    assert entry(told(records, chosen=A), summary()) is None
    assert no_host_is_read == []


def test_a_first_provision_goes_from_nothing_to_what_the_new_hosts_got(no_host_is_read):
    before = dict.fromkeys(HOSTS)  # no record when the plan read them
    preflight = {host: record(A) for host in HOSTS}  # the model hosts' play gave them one
    found = entry(told(before, preflight, chosen=A), summary(), verb="provision")
    assert (found.from_release, found.to_release) == (None, A)
    assert no_host_is_read == []


def test_a_run_that_failed_elsewhere_is_read_after_it(no_host_is_read):
    records = {host: record(A) for host in HOSTS}
    found = entry(told(records, chosen=B), summary(ok=False))
    assert (found.from_release, found.to_release) == (A, {"image": "read/from:host"})
    assert len(no_host_is_read) == 1


def test_a_run_interrupted_before_its_plan_is_read_after_it(no_host_is_read):
    found = entry({}, {**summary(ok=False), "status": "canceled", "release": None})
    assert (found.from_release, found.to_release) == ({"image": "read/from:host"},) * 2
    assert found.result == "canceled"


@pytest.mark.parametrize("loaded", [fleet(mode="scaling_group"), fleet(managed=True)])
def test_a_scaling_group_or_a_managed_target_is_read(loaded, no_host_is_read):
    found = entry({}, summary(hosts_changed=[]), loaded=loaded, before={"image": "r/m:0.9"})
    assert (found.from_release, found.to_release) == (
        {"image": "r/m:0.9"},
        {"image": "read/from:host"},
    )


def test_the_image_is_named_as_the_host_records_it():
    assert image_reference("r:5443/m:1.1") == "r:5443/m:1.1"
    assert image_reference("r:5443/m") == "r:5443/m:latest"
    assert image_reference("r/m:1.1@sha256:ab") == "r/m:1.1@sha256:ab"  # kept as given


def test_the_release_most_hosts_run_wins_and_nothing_runs_is_none():
    assert most_run({"m-1": A, "m-2": B, "m-3": B}) == B
    assert most_run({"m-1": A, "m-2": B}) == A  # a tie: the first host by name
    assert most_run({"m-1": None}) is None and most_run({}) is None
