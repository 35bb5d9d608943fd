"""The release's one read of the load balancer (mlops_vm_target_health, an action plugin
in plugins/action, documented in plugins/modules): every target as the provider reports it,
and per instance whether it serves (healthy in one of its backends is enough; a target the
LB does not list is absent, so the release registers that host again); a provider's error
fails the task with its message."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlops_vm.provision
from mlops_vm import paths
from mlops_vm.provision import ErrorCode, ProvisionError, TargetHealth
from tests.source_files import load_source_file
from tests.unit.test_provider_modules import CONFIG

TARGETS = [
    TargetHealth("i-1", True, "healthy"),
    TargetHealth("i-2", False, "draining"),
    # In two backends (GCP, Azure): unhealthy in one, healthy in the other.
    TargetHealth("i-3", False, "timeout"),
    TargetHealth("i-3", True, "healthy"),
]


class Reporting:
    def __init__(self, targets: list[TargetHealth] | ProvisionError) -> None:
        self.answer = targets
        self.asked: list[Any] = []

    def target_health(self, spec: Any) -> list[TargetHealth]:
        self.asked.append(spec)
        if isinstance(self.answer, ProvisionError):
            raise self.answer
        return self.answer


def read(tmp_path: Path, monkeypatch, provider: Reporting, **args: Any) -> dict[str, Any]:
    """The action's result for a task with ARGS (the config and inventory_dir by default)."""
    monkeypatch.setattr(mlops_vm.provision, "get_provider", lambda settings: provider)
    plugin = load_source_file(
        "mlops_vm_target_health_action",
        paths.PROJECT_DIR / "plugins" / "action" / "mlops_vm_target_health.py",
    )
    task = SimpleNamespace(
        args={"config": CONFIG, "inventory_dir": str(tmp_path), **args},
        async_val=0,
        check_mode=False,
        diff=False,
        action="mlops_vm_target_health",
        get_validated_value=lambda *a: None,
    )
    action = plugin.ActionModule(
        # A connection with a temporary directory: the action asks for none.
        task, connection=SimpleNamespace(_shell=SimpleNamespace(tmpdir="/unused")),
        play_context=SimpleNamespace(check_mode=False),
        loader=None, templar=None, shared_loader_obj=None,
    )  # fmt: skip
    return action.run(task_vars={})


def test_every_target_and_whether_each_instance_serves(tmp_path, monkeypatch):
    provider = Reporting(TARGETS)
    result = read(tmp_path, monkeypatch, provider)
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["serving"] == {"i-1": True, "i-2": False, "i-3": True}
    assert [t["instance_id"] for t in result["targets"]] == ["i-1", "i-2", "i-3", "i-3"]
    assert len(provider.asked) == 1  # one read of the LB for every host
    assert provider.asked[0].env == CONFIG["env"]


def test_a_load_balancer_that_cannot_be_read_fails_the_task_saying_why(tmp_path, monkeypatch):
    denied = ProvisionError(ErrorCode.PERMISSION, "describe target health: access denied")
    result = read(tmp_path, monkeypatch, Reporting(denied))
    assert result["failed"] and "access denied" in result["msg"]
    assert "serving" not in result


def test_invalid_settings_fail_naming_the_field(tmp_path, monkeypatch):
    result = read(
        tmp_path, monkeypatch, Reporting(TARGETS), config={**CONFIG, "provider": {"name": "x"}}
    )
    assert result["failed"] and "invalid configuration" in result["msg"]
    assert "provider" in result["msg"]
