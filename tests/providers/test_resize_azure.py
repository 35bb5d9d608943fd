"""Resizing an Azure fleet in place, against the ARM fake (tests/fakes/azure), which holds
the VM to ARM's rules (compute.py): a running VM takes only a size of its hardware cluster
(list_available_sizes), other sizes and a larger OS disk need it deallocated, a disk never
shrinks, and every write goes through the SDK's long-running-operation protocol.

Each host leaves the Application Gateway pool before its resize and rejoins after it, in the
order playbooks/resize.yml drives (run for real in test_resize_aws.py).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlops_vm.provision import ErrorCode, ProvisionError
from mlops_vm.provision.azure import targets
from tests.providers import test_azure
from tests.providers.cloud_fixtures import resized
from tests.providers.test_azure import instance_spec

pytestmark = pytest.mark.usefixtures("plain_http", "fresh_hooks")

# The Azure module's fixtures, shared rather than written again.
env = test_azure.env
provider = test_azure.provider
certificate = test_azure.certificate
fleet_spec = test_azure.fleet_spec
scale_set_spec = test_azure.scale_set_spec
lb_spec = test_azure.lb_spec


def steps_of(arm, names: set[str]) -> list[tuple[str, str]]:
    """(step, VM name) of the writes that take a host out, resize it and put it back."""
    steps = []
    for request in arm.writes():
        path = request.path.lower()
        vm = (
            path.split("/virtualmachines/")[-1].split("/")[0] if "/virtualmachines/" in path else ""
        )
        if "/networkinterfaces/" in path and request.method == "PUT":
            nic = path.split("/networkinterfaces/")[1].split("/")[0]
            steps.append(("nic", next(n for n in names if n.lower() in nic)))
        elif vm and request.method == "POST":
            steps.append((path.rsplit("/", 1)[1], vm))
        elif vm and request.method == "PATCH":
            steps.append(("update", vm))
    return [(step, name.lower()) for step, name in steps]


def vm_sizes(arm, env: str) -> dict[str, str]:
    return {
        vm["name"]: vm["properties"]["hardwareProfile"]["vmSize"]
        for vm in arm.resources("Microsoft.Compute/virtualMachines", f"mlops-vm-{env}")
    }


def test_a_fleet_resizes_host_by_host_out_of_the_gateway(
    provider, arm, fleet_spec, lb_spec, env, monkeypatch
):
    monkeypatch.setattr(targets, "sleep", lambda seconds: None)
    spec = replace(lb_spec, drain_seconds=1)
    fleet = provider.ensure_fleet(fleet_spec(2))
    provider.ensure_load_balancer(spec, fleet)
    # B2s -> NC4as_T4_v3: another hardware cluster, so each VM is deallocated first.
    gpu = resized(fleet_spec(2), "Standard_NC4as_T4_v3")
    plan = provider.plan_resizes(gpu)
    assert [c.detail for c in plan[fleet.instances[0].id]] == [
        "resize Standard_B2s -> Standard_NC4as_T4_v3 (deallocate, resize, start)"
    ]
    arm.clear_requests()
    for instance in fleet.instances:  # the order of playbooks/resize.yml, batch 1
        provider.deregister_target(spec, instance)
        provider.resize_instance(gpu, instance)
        provider.register_target(spec, instance)
        provider.wait_target_healthy(spec, instance.id, timeout_s=5, poll_s=0.02)
    expected = []
    for instance in fleet.instances:
        name = instance.name.lower()
        expected += [("nic", name), ("deallocate", name), ("update", name), ("start", name)]
        expected += [("nic", name)]
    assert steps_of(arm, {i.name for i in fleet.instances}) == expected
    assert set(vm_sizes(arm, env).values()) == {"Standard_NC4as_T4_v3"}
    assert {i.status for i in provider.list_instances(env)} == {"running"}
    assert provider.plan_resizes(gpu) == {}


def test_a_size_of_the_same_cluster_needs_no_deallocation(provider, arm, fleet_spec, env):
    [instance] = provider.ensure_fleet(fleet_spec(1)).instances
    bigger = resized(fleet_spec(1), "Standard_B1s")
    arm.clear_requests()
    [change] = provider.resize_instance(bigger, instance)
    assert "in place" in change.detail
    assert [step for step, _ in steps_of(arm, {instance.name})] == ["update"]
    assert vm_sizes(arm, env) == {instance.name: "Standard_B1s"}


def test_the_os_disk_grows_while_deallocated(provider, arm, fleet_spec, env):
    [instance] = provider.ensure_fleet(fleet_spec(1)).instances
    bigger = resized(fleet_spec(1), "Standard_B2s", disk_gb=64)
    arm.clear_requests()
    assert [c.detail for c in provider.resize_instance(bigger, instance)] == [
        "grow 30 -> 64 GiB (deallocated)"
    ]
    assert [step for step, _ in steps_of(arm, {instance.name})] == [
        "deallocate",
        "update",
        "start",
    ]
    [disk] = arm.resources("Microsoft.Compute/disks", f"mlops-vm-{env}")
    assert disk["properties"]["diskSizeGB"] == 64
    with pytest.raises(ProvisionError) as raised:
        provider.plan_resizes(resized(fleet_spec(1), "Standard_B2s", disk_gb=40))
    assert "never shrink" in raised.value.message


def test_a_restricted_size_is_refused_before_any_vm_changes(provider, arm, fleet_spec):
    provider.ensure_fleet(fleet_spec(2))
    arm.state.restricted_skus.add("Standard_D4s_v5")
    try:
        arm.clear_requests()
        with pytest.raises(ProvisionError) as raised:
            provider.plan_resizes(resized(fleet_spec(2), "Standard_D4s_v5"))
    finally:
        arm.state.restricted_skus.discard("Standard_D4s_v5")
    assert raised.value.code is ErrorCode.INVALID_INPUT
    assert "Standard_D4s_v5" in raised.value.message
    assert arm.writes() == []


def test_a_scale_set_rolls_a_new_size_through_its_model(provider, arm, scale_set_spec):
    spec = scale_set_spec(2, instance=instance_spec())
    provider.ensure_fleet(spec)
    bigger = resized(spec, "Standard_D2s_v5")
    assert provider.plan_resizes(bigger) == {}
    details = [c.detail for c in provider.ensure_fleet(bigger).changes if c.kind == "scale_set"]
    assert details == ["sku.name", "roll 2 instance(s) to the latest model"]
