"""The mlops_vm_service module (plugins/modules): what it hands back to the run when the
target fails, that the release rules decide before the target is asked, and that the
registry password never reaches the output (no_log)."""

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

import mlops_vm.services
from mlops_vm.plan import Change
from mlops_vm.provision import ErrorCode, ProvisionError
from mlops_vm.services import Revision, ServiceRecord, ServiceResult
from tests.unit.test_provider_modules import load_module

CONFIG = {
    "env": "svc",
    "target": "ecs",
    "provider": {"name": "aws", "region": "eu-west-1"},
    "model": {"image": "registry.example.test/model:1.0"},
}
PASSWORD = "registry-pass-7f3e9"
REGISTERED = Change("create", "task_definition", "mlops-vm-svc:2")
ROLLED_BACK = Change("update", "ecs_service", "mlops-vm-svc", "rolled back to mlops-vm-svc:1")


class FailingTarget:
    """A deployed service (one revision, no previous) whose next release never gets healthy."""

    name = "ecs"
    cloud = "aws"
    has_canary = False  # as ECS

    def __init__(self) -> None:
        self.calls: list[str] = []

    def status(self, env: str) -> ServiceRecord:
        active = Revision(
            "arn:task-definition/mlops-vm-svc:1", CONFIG["model"]["image"], "provision"
        )
        return ServiceRecord(name="mlops-vm-svc", url="https://svc.test", active=active)

    def validate(self, spec: Any) -> None:
        self.calls.append(f"validate {spec.image} {spec.registry.password}")

    def release(self, spec: Any, *, dry_run: bool) -> ServiceResult:
        self.calls.append("release")
        raise ProvisionError(
            ErrorCode.TIMEOUT,
            f"never healthy (pulled with {spec.registry.password})",
            changes_so_far=[REGISTERED, ROLLED_BACK],
        )

    def rollback(self, env: str, *, dry_run: bool) -> ServiceResult:
        raise AssertionError("the release rules refuse first")


def run(args: dict[str, Any], monkeypatch, capsys) -> tuple[dict[str, Any], FailingTarget]:
    target = FailingTarget()
    monkeypatch.setattr(mlops_vm.services, "get_service_target", lambda name, settings: target)
    module = load_module("mlops_vm_service")
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        module.main()
    assert exited.value.code == 1
    return json.loads(capsys.readouterr().out), target


def test_a_failed_release_reports_what_it_made_and_hides_the_password(
    tmp_path: Path, monkeypatch, capsys
):
    args = {
        "config": CONFIG,
        "inventory_dir": str(tmp_path),
        "state": "released",
        "image": "registry.example.test/model:1.1",
        "registry_username": "deploy",
        "registry_password": PASSWORD,
    }
    result, target = run(args, monkeypatch, capsys)
    assert target.calls == [f"validate registry.example.test/model:1.1 {PASSWORD}", "release"]
    assert result["failed"] is True and result["changed"] is True
    assert result["changes"] == [str(REGISTERED), str(ROLLED_BACK)]
    assert result["error"]["code"] == "timeout"
    assert PASSWORD not in json.dumps(result)


def test_rollback_without_a_previous_revision_fails_before_the_target_is_asked(
    tmp_path: Path, monkeypatch, capsys
):
    args = {"config": CONFIG, "inventory_dir": str(tmp_path), "state": "rolled_back"}
    result, target = run(args, monkeypatch, capsys)
    assert "nothing to roll back to" in result["msg"]
    assert target.calls == []


@pytest.mark.parametrize("canary", [True, False])
def test_deploy_canary_flag_reaches_the_target_for_one_run(
    tmp_path: Path, monkeypatch, capsys, canary: bool
):
    """`deploy --canary/--no-canary` (the canary argument) overrides the platform's
    canary.enabled in the spec the target releases; unset, the spec has none of its own."""
    released: list[dict[str, Any]] = []
    monkeypatch.setattr(FailingTarget, "has_canary", True)  # as Lambda
    monkeypatch.setattr(
        FailingTarget,
        "validate",
        lambda self, spec: released.append(dict(spec.options)),
    )
    args = {
        "config": CONFIG,
        "inventory_dir": str(tmp_path),
        "state": "released",
        "image": "registry.example.test/model:1.1",
        "canary": canary,
    }
    run(args, monkeypatch, capsys)
    assert released[-1]["canary"]["enabled"] is canary
    del args["canary"]
    run(args, monkeypatch, capsys)
    assert "enabled" not in (released[-1].get("canary") or {})


def test_canary_on_a_target_without_one_is_refused_before_it_is_asked(
    tmp_path: Path, monkeypatch, capsys
):
    args = {"config": CONFIG, "inventory_dir": str(tmp_path), "state": "released", "canary": True}
    result, target = run(args, monkeypatch, capsys)
    assert "has no canary gate" in result["msg"] and target.calls == []
