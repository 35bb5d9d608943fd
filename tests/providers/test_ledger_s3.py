"""The deploy lock and the history in S3 (`ledger.s3_bucket`), against moto: the conditional
PUT (If-None-Match: *) lets exactly one run win, the loser reads who; and through the CLI on
a managed target (ECS), a run is refused at once naming the holder, before anything is
asked of ECS, and `lock --release` clears a lock another machine left."""

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from mlops_vm.provision.model import ProviderSettings
from mlops_vm.release.deploy_lock import Holder, Locked, acquire, release
from mlops_vm.release.ledger_s3 import S3Ledger
from tests.environments import ECS_ENV, cli, cli_json, make_environment
from tests.providers.test_aws import REGION, aws_environment, moto_endpoint

__all__ = ["aws_environment", "moto_endpoint"]  # fixtures shared with the provider tests

BUCKET = "team-ledger"
# The CLI judges staleness by the real clock: a lock taken "now" is held, not stale.
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def ledger(moto_endpoint: str) -> S3Ledger:
    boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    settings = ProviderSettings("aws", region=REGION, endpoint_url=moto_endpoint)
    return S3Ledger(BUCKET, "mlops-vm/ecsteam/", settings)


def other_machine(token: str = "theirs") -> Holder:
    return Holder(token, "bob", "ci-runner-7", 99, NOW.isoformat(), "mlops-vm deploy ecsteam")


def test_one_conditional_put_wins_and_the_loser_reads_who(ledger: S3Ledger):
    mine = Holder.of_this_run("ecsteam", NOW)
    assert acquire([ledger], mine, NOW) == [ledger]
    with pytest.raises(Locked) as refused:
        acquire([ledger], other_machine(), NOW)
    assert refused.value.state.holder == mine
    assert refused.value.state.where == "s3://team-ledger/mlops-vm/ecsteam/"
    release([ledger], "not-mine")
    assert ledger.call("read")["holder"]["token"] == mine.token
    release([ledger], mine.token)
    assert ledger.call("read") == {"holder": None}
    assert acquire([ledger], other_machine(), NOW) == [ledger]


def test_history_objects_list_in_order(ledger: S3Ledger):
    assert ledger.call("history") == {"entries": []}
    times = ["2026-12-05T14:00:00+00:00", "2026-12-05T14:05:00+00:00", "2026-12-05T15:00:00+00:00"]
    for n, moment in enumerate(times):
        ledger.call("append", json.dumps({"time": moment, "n": n}))
    assert [e["n"] for e in ledger.call("history")["entries"]] == [0, 1, 2]


def test_a_run_s_entry_is_written_by_the_call_that_releases_its_lock(ledger: S3Ledger):
    mine = Holder.of_this_run("ecsteam", NOW)
    acquire([ledger], mine, NOW)
    entry = {"time": NOW.isoformat(), "verb": "deploy", "result": "ok"}
    assert release([ledger], mine.token, entry=json.dumps(entry)) == []
    assert ledger.call("history")["entries"] == [entry]
    assert ledger.call("read") == {"holder": None}
    # A lock another run holds now (this one's was cleared) stays; the entry is kept.
    acquire([ledger], other_machine(), NOW)
    later = {**entry, "time": "2099-01-01T00:00:00+00:00", "result": "failed"}  # listed last
    release([ledger], mine.token, entry=json.dumps(later))
    assert [e["result"] for e in ledger.call("history")["entries"]] == ["ok", "failed"]
    assert ledger.call("read")["holder"]["token"] == "theirs"


def ecs_environment(root: Path, endpoint: str) -> Path:
    settings = {
        "env": "ecsteam",
        "provider": {"name": "aws", "region": REGION, "endpoint_url": endpoint},
        "model": {"registry": {"username": "deploy", "password": "not-a-secret"}},
        "ledger": {"s3_bucket": BUCKET},
    }
    return make_environment(root, "ecsteam", settings, like=ECS_ENV)


def test_a_managed_target_run_is_refused_at_once_while_another_machine_holds_the_lock(
    tmp_path: Path, ledger: S3Ledger, moto_endpoint: str
):
    directory = ecs_environment(tmp_path, moto_endpoint)
    acquire([ledger], other_machine(), NOW)
    started = time.monotonic()
    code, answer = cli_json("deploy", str(directory), "--image", "registry.example.com/m:1.1")
    assert code == 1, answer
    assert time.monotonic() - started < 20
    assert answer["lock"]["where"] == "s3://team-ledger/mlops-vm/ecsteam/"
    assert "bob@ci-runner-7" in " ".join(answer["problems"])
    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=moto_endpoint)
    assert ecs.list_clusters()["clusterArns"] == []  # nothing was asked of ECS

    code, shown = cli_json("lock", str(directory))
    assert code == 0, shown
    states = {lock["where"]: lock["state"] for lock in shown["locks"]}
    assert states["s3://team-ledger/mlops-vm/ecsteam/"] == "held"  # another machine: not judged
    proc = cli("lock", str(directory), "--release")
    assert proc.returncode == 0, proc.stderr
    assert "NOT stale" in proc.stdout
    assert ledger.call("read") == {"holder": None}


def test_a_setting_for_another_cloud_is_refused(tmp_path: Path):
    directory = make_environment(tmp_path, "ledgerbad", {"ledger": {"s3_bucket": BUCKET}})
    proc = cli("validate", str(directory))
    assert proc.returncode == 2
    assert "ledger.s3_bucket needs the aws provider" in proc.stdout + proc.stderr
