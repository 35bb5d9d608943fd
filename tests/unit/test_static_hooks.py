"""The static provider's release hooks (provider.options.drain_command / register_command):
a dry run plans the change and runs nothing; the run runs the command once, with {name} and
{address} filled in; a failing command is an error that names the option."""

import sys
from pathlib import Path

import pytest

from mlops_vm.provision import (
    CertificateSpec,
    ErrorCode,
    LoadBalancerSpec,
    ProviderSettings,
    ProvisionError,
)
from mlops_vm.provision.model import Instance, InstanceStatus
from mlops_vm.provision.static import StaticProvider

HOST = Instance(id="h1", name="h1", status=InstanceStatus.RUNNING, private_ip="192.0.2.7")
LB = LoadBalancerSpec(env="static-hooks", certificate=CertificateSpec())


def provider(**options: str) -> StaticProvider:
    return StaticProvider(ProviderSettings(name="static", options={"hosts": [], **options}))


def appending(log: Path) -> str:
    """A command that appends its arguments to LOG."""
    script = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')"
    return f'{sys.executable} -c "{script}" {log} {{name}} {{address}}'


def test_a_dry_run_plans_the_hook_and_runs_nothing(tmp_path):
    log = tmp_path / "calls"
    static = provider(drain_command=appending(log), register_command=appending(log))
    planned = static.deregister_target(LB, HOST, dry_run=True)
    assert [(c.action, c.kind, c.name, c.detail) for c in planned] == [
        ("update", "lb_target", "h1", "drain")
    ]
    assert not log.exists()
    assert static.deregister_target(LB, HOST) == planned
    assert static.register_target(LB, HOST)[0].detail == "register"
    assert log.read_text().splitlines() == ["h1 192.0.2.7", "h1 192.0.2.7"]


def test_without_a_hook_nothing_changes():
    assert provider().deregister_target(LB, HOST) == []


def test_a_failing_hook_names_its_option():
    static = provider(register_command=f"{sys.executable} -c 'raise SystemExit(3)'")
    with pytest.raises(ProvisionError) as failed:
        static.register_target(LB, HOST)
    assert failed.value.code is ErrorCode.INTERNAL
    assert "register_command for h1 exited 3" in failed.value.message
