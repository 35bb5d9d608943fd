"""ChangeLog.apply_together (calls started together) and follow_up (real-run-only steps):
a dry run plans every wanted change and calls nothing; a run records what was done, also
when some of it failed, before the failure is raised."""

import pytest

from mlops_vm.plan import Change, ChangeLog

WANTED = [("vm-1", "zone-a"), ("vm-2", "zone-b")]


def test_a_dry_run_records_what_is_wanted_and_calls_nothing():
    log = ChangeLog(dry_run=True)
    calls: list[str] = []
    made = log.apply_together(
        "create", "instance", WANTED, lambda: calls.append("do") or ([], None)
    )
    log.follow_up(lambda: calls.append("follow up"))
    assert calls == []
    assert made == WANTED  # the stand-in later steps plan against
    assert log.changes == [Change("create", "instance", n, d) for n, d in WANTED]


def test_a_partial_failure_records_what_was_done_then_raises():
    log = ChangeLog(dry_run=False)
    failure = RuntimeError("vm-2: quota")
    with pytest.raises(RuntimeError) as raised:
        log.apply_together("create", "instance", WANTED, lambda: (WANTED[:1], failure))
    assert raised.value is failure
    assert log.changes == [Change("create", "instance", "vm-1", "zone-a")]


def test_a_run_records_what_was_done_and_follows_up():
    log = ChangeLog(dry_run=False)
    followed: list[str] = []
    made = log.apply_together("delete", "instance", WANTED, lambda: (WANTED, None))
    log.follow_up(lambda: followed.extend(name for name, _ in made))
    assert followed == ["vm-1", "vm-2"]
    assert [c.action for c in log.changes] == ["delete", "delete"]
