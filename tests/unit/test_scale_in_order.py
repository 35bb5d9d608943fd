"""Provider.converge_fleet (provision/base.py): the instances a smaller fleet.count removes
leave the load balancer and drain before ensure_fleet removes them; those the load balancer
does not know, or a load balancer that does not exist yet, need no drain. A recording
provider stands in for a cloud (the clouds' own order is in tests/providers/contract.py)."""

from dataclasses import replace

import pytest

from mlops_vm.plan import Change
from mlops_vm.provision import (
    CertificateSpec,
    ErrorCode,
    FleetResult,
    FleetSpec,
    Instance,
    InstanceSpec,
    InstanceStatus,
    LoadBalancerSpec,
    Provider,
    ProvisionError,
)
from mlops_vm.provision.model import ProviderSettings, TargetHealth

FLEET = FleetSpec(env="t", instance=InstanceSpec(machine_type="m"), count=1)
LB = LoadBalancerSpec(env="t", certificate=CertificateSpec())


def vm(index: int) -> Instance:
    return Instance(id=f"vm-{index}", name=f"t-model-{index}", status=InstanceStatus.RUNNING)


class Recording(Provider):
    """Three instances, the upper two surplus at count 1; every call recorded in order."""

    name = "recording"

    def __init__(self, behind: set[str] | None = None, lb_missing: bool = False) -> None:
        super().__init__(ProviderSettings(name="recording"))
        self.calls: list[str] = []
        self.behind = {"vm-1", "vm-2", "vm-3"} if behind is None else behind
        self.lb_missing = lb_missing

    def check_offline(self, fleet, lb) -> None:
        return None

    def validate(self, fleet, lb) -> None:
        return None

    def surplus_instances(self, spec: FleetSpec) -> list[Instance]:
        return [vm(3), vm(2)]

    def ensure_fleet(self, spec: FleetSpec, *, dry_run: bool = False) -> FleetResult:
        self.calls.append("ensure_fleet")
        return FleetResult([vm(1)], [Change("delete", "instance", "t-model-3")])

    def list_instances(self, env, role=None) -> list[Instance]:
        return [vm(1)]

    def ensure_load_balancer(self, spec, fleet, *, dry_run=False):
        raise NotImplementedError

    def target_health(self, spec: LoadBalancerSpec) -> list[TargetHealth]:
        if self.lb_missing:
            raise ProvisionError(ErrorCode.NOT_FOUND, "no load balancer")
        return [TargetHealth(i, True) for i in sorted(self.behind)]

    def destroy(self, env, *, dry_run=False):
        return []

    def deregister_target(self, spec, instance, *, dry_run=False) -> list[Change]:
        self.calls.append(f"deregister {instance.id}" + (" (plan)" if dry_run else ""))
        return [Change("delete", "target", instance.id)]


def test_the_surplus_drains_before_the_fleet_shrinks():
    provider = Recording()
    result = provider.converge_fleet(FLEET, LB)
    assert provider.calls == ["deregister vm-3", "deregister vm-2", "ensure_fleet"]
    assert [str(c) for c in result.changes] == [
        "delete target vm-3",
        "delete target vm-2",
        "delete instance t-model-3",
    ]


def test_a_dry_run_plans_the_drain_too():
    provider = Recording()
    provider.converge_fleet(FLEET, LB, dry_run=True)
    assert provider.calls == ["deregister vm-3 (plan)", "deregister vm-2 (plan)", "ensure_fleet"]


@pytest.mark.parametrize(
    "provider, fleet, lb",
    [
        (Recording(behind={"vm-1"}), FLEET, LB),  # not behind the load balancer
        (Recording(lb_missing=True), FLEET, LB),  # no load balancer yet
        (Recording(), FLEET, None),  # an environment without one
        (Recording(), FLEET, replace(LB, target_type="ip")),  # others register targets
        (Recording(), replace(FLEET, mode="scaling_group"), LB),  # the group drains itself
    ],
)
def test_nothing_to_drain(provider, fleet, lb):
    provider.converge_fleet(fleet, lb)
    assert provider.calls == ["ensure_fleet"]


def test_a_failed_drain_stops_before_anything_is_removed():
    provider = Recording()

    def refuse(spec, instance, *, dry_run=False):
        raise ProvisionError(ErrorCode.TIMEOUT, f"{instance.id} never drained")

    provider.deregister_target = refuse
    with pytest.raises(ProvisionError, match="vm-3 never drained"):
        provider.converge_fleet(FLEET, LB)
    assert "ensure_fleet" not in provider.calls
