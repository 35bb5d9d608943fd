"""ChangeLog.delete_each and changes_of: a dry run plans a delete per item read and calls
nothing; a run deletes them one after the other, and a failure leaves in the log exactly
the deletes done before it."""

import pytest

from mlops_vm.plan import Change, ChangeLog, changes_of
from mlops_vm.provision.prefixed import EnvironmentNames, Prefixed

FOUND = [{"Name": "a", "Cidr": "10.0.0.0/24"}, {"Name": "b", "Cidr": "10.0.1.0/24"}]


def delete_all(log: ChangeLog, deleted: list[str], fail_on: str | None = None) -> None:
    def delete(item: dict[str, str]) -> None:
        if item["Name"] == fail_on:
            raise RuntimeError(f"{fail_on}: in use")
        deleted.append(item["Name"])

    log.delete_each("subnet", FOUND, lambda item: item["Name"], delete, lambda i: i["Cidr"])


def test_a_dry_run_plans_each_delete_and_calls_none():
    deleted: list[str] = []
    changes = changes_of(lambda log: delete_all(log, deleted), dry_run=True)
    assert deleted == []
    assert changes == [
        Change("delete", "subnet", "a", "10.0.0.0/24"),
        Change("delete", "subnet", "b", "10.0.1.0/24"),
    ]


def test_a_run_deletes_each_and_records_what_it_planned():
    deleted: list[str] = []
    planned = changes_of(lambda log: delete_all(log, []), dry_run=True)
    assert changes_of(lambda log: delete_all(log, deleted), dry_run=False) == planned
    assert deleted == ["a", "b"]


def test_a_failed_delete_leaves_only_those_done_before_it():
    log = ChangeLog(dry_run=False)
    deleted: list[str] = []
    with pytest.raises(RuntimeError):
        delete_all(log, deleted, fail_on="b")
    assert deleted == ["a"]
    assert log.changes == [Change("delete", "subnet", "a", "10.0.0.0/24")]


def test_a_fixed_detail_is_recorded_for_every_item():
    log = ChangeLog(dry_run=True)
    log.delete_each("certificate", ["arn:1", "arn:2"], str, print, "replaced")
    assert [change.detail for change in log.changes] == ["replaced", "replaced"]


class ShopNames(EnvironmentNames):
    bucket = Prefixed("bucket")
    bucket_logs = Prefixed("logs", base="bucket")


def test_prefixed_names_extend_the_environment_prefix_or_another_name():
    names = ShopNames("prod")
    assert names.prefix == "mlops-vm-prod"
    assert names.bucket == "mlops-vm-prod-bucket"
    assert names.bucket_logs == "mlops-vm-prod-bucket-logs"
    assert isinstance(ShopNames.bucket, Prefixed)  # on the class: the declaration itself
