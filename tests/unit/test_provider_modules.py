"""The provider modules (plugins/modules) hand a failed provider's partial changes back to
the run, in fail_json's `changes`, where the runner's event handler collects them; an
error of no project type still ends the module with its reason as the result."""

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

import mlops_vm.provision
from mlops_vm import paths
from mlops_vm.plan import Change
from mlops_vm.provision import ErrorCode, FleetResult, LoadBalancerResult, ProvisionError
from tests.source_files import load_source_file

CONFIG = {
    "env": "dev",
    "provider": {"name": "local"},
    "model": {"image": "registry.example.test/model:1.0"},
    "load_balancer": {"publish_port": 8443},
}
VPC = Change("create", "vpc", "mlops-vm-dev", "10.42.0.0/16")
ALB = Change("create", "load_balancer", "dev-alb")


def load_module(name: str) -> ModuleType:
    """A module of plugins/modules, with its module_utils where Ansible's payload puts them."""
    plugins = paths.PROJECT_DIR / "plugins"
    common = "ansible.module_utils.mlops_vm_common"
    sys.modules[common] = load_source_file(common, plugins / "module_utils" / "mlops_vm_common.py")
    return load_source_file(name, plugins / "modules" / f"{name}.py")


class FailingProvider:
    """A provider that fails after making VPC (fleet) or the ALB (its health wait)."""

    name = "fake"

    def validate(self, fleet: Any, lb: Any) -> None:
        return None

    def plan_resizes(self, spec: Any) -> dict:
        return {}

    def ensure_fleet(self, spec: Any, *, dry_run: bool = False) -> FleetResult:
        raise ProvisionError(
            ErrorCode.PERMISSION, "create the internet gateway: denied", changes_so_far=[VPC]
        )

    def converge_fleet(self, spec: Any, lb: Any, *, dry_run: bool = False) -> FleetResult:
        return self.ensure_fleet(spec, dry_run=dry_run)  # no surplus to drain here

    def ensure_load_balancer(self, spec: Any, fleet: Any, *, dry_run: bool) -> LoadBalancerResult:
        return LoadBalancerResult(endpoint="https://x", changes=[ALB])

    def wait_healthy(self, spec: Any, **_: Any) -> list:
        raise ProvisionError(ErrorCode.TIMEOUT, "targets never got healthy")


class BrokenProvider(FailingProvider):
    """A provider whose own code fails with an error of no project type (as a local Docker
    call or a wait's TimeoutError can)."""

    def ensure_fleet(self, spec: Any, *, dry_run: bool = False) -> FleetResult:
        raise TimeoutError("mlops-vm-dev-builder did not boot within 90s (state: 'starting')")


def run_module(
    name: str, args: dict[str, Any], monkeypatch, capsys, provider: type = FailingProvider
) -> dict[str, Any]:
    monkeypatch.setattr(mlops_vm.provision, "get_provider", lambda settings: provider())
    module = load_module(name)
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        module.main()
    assert exited.value.code == 1
    return json.loads(capsys.readouterr().out)


def test_fleet_failure_returns_what_was_made(tmp_path: Path, monkeypatch, capsys):
    result = run_module(
        "mlops_vm_fleet", {"config": CONFIG, "inventory_dir": str(tmp_path)}, monkeypatch, capsys
    )
    assert result["failed"] is True
    assert result["changed"] is True
    assert result["changes"] == [str(VPC)]


def test_load_balancer_health_failure_still_returns_the_lb_changes(
    tmp_path: Path, monkeypatch, capsys
):
    args = {
        "config": CONFIG,
        "inventory_dir": str(tmp_path),
        "fleet": {"instances": [], "network": {}},
        "wait_healthy_timeout_s": 5,
    }
    result = run_module("mlops_vm_load_balancer", args, monkeypatch, capsys)
    assert result["failed"] is True
    assert result["changes"] == [str(ALB)]


def test_an_unexpected_error_is_the_result_with_its_type_and_origin(
    tmp_path: Path, monkeypatch, capsys
):
    args = {"config": CONFIG, "inventory_dir": str(tmp_path)}
    result = run_module("mlops_vm_fleet", args, monkeypatch, capsys, BrokenProvider)
    assert result["failed"] is True
    assert result["msg"].startswith(
        "TimeoutError: mlops-vm-dev-builder did not boot within 90s (state: 'starting') "
        "(in ensure_fleet, test_provider_modules.py:"
    ), result["msg"]
    assert result["changed"] is False and result["changes"] == []
