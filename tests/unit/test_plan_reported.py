"""ChangeLog.reported: a call whose answer says what it did (plan.py)."""

import pytest

from mlops_vm.plan import Change, ChangeLog

PLANNED = Change("update", "scaling_group", "web", "instance refresh")
RUNNING = Change("update", "scaling_group", "web", "instance refresh already running")


def test_a_dry_run_records_the_plan_and_calls_nothing():
    calls: list[str] = []
    log = ChangeLog(dry_run=True)
    assert log.reported(PLANNED, lambda: calls.append("start") or RUNNING) == PLANNED
    assert (calls, log.changes) == ([], [PLANNED])


def test_a_real_run_records_what_the_answer_says():
    log = ChangeLog(dry_run=False)
    assert log.reported(PLANNED, lambda: RUNNING) == RUNNING
    assert log.changes == [RUNNING]


def test_a_failed_call_records_nothing():
    def refused() -> Change:
        raise RuntimeError("refused")

    log = ChangeLog(dry_run=False)
    with pytest.raises(RuntimeError):
        log.reported(PLANNED, refused)
    assert log.changes == []
