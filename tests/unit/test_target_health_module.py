"""The release's one read of the load balancer (plugins/modules/mlops_vm_target_health): every
target as the provider reports it, and per instance whether it serves (healthy in one of
its backends is enough; a target the LB does not list is absent, so the release registers
that host again)."""

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

import mlops_vm.provision
from mlops_vm.provision import TargetHealth
from tests.unit.test_provider_modules import CONFIG, load_module

TARGETS = [
    TargetHealth("i-1", True, "healthy"),
    TargetHealth("i-2", False, "draining"),
    # In two backends (GCP, Azure): unhealthy in one, healthy in the other.
    TargetHealth("i-3", False, "timeout"),
    TargetHealth("i-3", True, "healthy"),
]


class Reporting:
    def __init__(self, targets: list[TargetHealth]) -> None:
        self.targets = targets
        self.asked: list[Any] = []

    def target_health(self, spec: Any) -> list[TargetHealth]:
        self.asked.append(spec)
        return self.targets


def read(tmp_path: Path, monkeypatch, capsys, provider: Reporting, **extra: Any) -> dict:
    monkeypatch.setattr(mlops_vm.provision, "get_provider", lambda settings: provider)
    module = load_module("mlops_vm_target_health")
    args = {"config": CONFIG, "inventory_dir": str(tmp_path), **extra}
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        module.main()
    assert exited.value.code == 0
    return json.loads(capsys.readouterr().out)


def test_every_target_and_whether_each_instance_serves(tmp_path, monkeypatch, capsys):
    provider = Reporting(TARGETS)
    result = read(tmp_path, monkeypatch, capsys, provider)
    assert result["changed"] is False
    assert result["serving"] == {"i-1": True, "i-2": False, "i-3": True}
    assert [t["instance_id"] for t in result["targets"]] == ["i-1", "i-2", "i-3", "i-3"]
    assert len(provider.asked) == 1  # one read of the LB for every host
    assert provider.asked[0].env == CONFIG["env"]


def test_check_mode_reads_the_same(tmp_path, monkeypatch, capsys):
    result = read(tmp_path, monkeypatch, capsys, Reporting(TARGETS), _ansible_check_mode=True)
    assert result["serving"]["i-2"] is False and result["changed"] is False
