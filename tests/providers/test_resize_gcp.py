"""Resizing a GCP fleet in place, against the Compute Engine fake (tests/fakes/gcp), whose
stop / setMachineType / start / setScheduling / disks.resize behave as the API does
(instance_actions.py): the machine type changes only on a stopped instance, a GPU machine
type needs onHostMaintenance TERMINATE, disks only grow.

The gate around each resize is the release's: the host's way out of and back into the load
balancer is the provider's deregister/register (the order playbooks/resize.yml drives,
which test_resize_aws.py runs for real); here the provider calls are made in that order and
the fake's request log shows what reached Compute Engine.
"""

from dataclasses import replace

import pytest

from mlops_vm.provision import CertificateSpec, ErrorCode, LoadBalancerSpec, ProvisionError
from mlops_vm.provision.gcp import GcpProvider
from mlops_vm.provision.model import InstanceSpec
from tests.fakes.gcp import FakeCompute
from tests.fakes.gcp.testing import by_name, make_provider
from tests.providers.cloud_fixtures import resized
from tests.providers.test_gcp import fleet, scaling_group

pytestmark = pytest.mark.usefixtures("clean_faults")

RESIZE_CALLS = {
    "compute.instanceGroups.removeInstances",
    "compute.instances.stop",
    "compute.instances.setScheduling",
    "compute.instances.setMachineType",
    "compute.instances.start",
    "compute.instanceGroups.addInstances",
    "compute.disks.resize",
}


@pytest.fixture
def provider(fake: FakeCompute, project: str) -> GcpProvider:
    return make_provider(fake, project)


def instance_resources(fake: FakeCompute, project: str) -> dict:
    return by_name(fake.resources(project, "instances"))


def calls_since(fake: FakeCompute, start: int, project: str) -> list[tuple[str, str]]:
    """(method, resource name) of the resize and gate calls made since START."""
    return [
        (method, path.rsplit("/", 1)[-1] if "instances/" in path else path.split("/")[-1])
        for method, path in fake.calls[start:]
        if method in RESIZE_CALLS and f"/{project}/" in path
    ]


def test_a_fleet_resizes_host_by_host_out_of_the_load_balancer(fake, provider, project):
    lb = LoadBalancerSpec(
        env="t1", certificate=CertificateSpec(managed_domains=("m.example.com",)), drain_seconds=0
    )
    result = provider.ensure_fleet(fleet(2))
    provider.ensure_load_balancer(lb, result)
    bigger = resized(fleet(2), "e2-medium", disk_gb=30)
    plan = provider.plan_resizes(bigger)
    assert set(plan) == {i.id for i in result.instances}
    start = len(fake.calls)
    for instance in result.instances:  # the order of playbooks/resize.yml, batch 1
        provider.deregister_target(lb, instance)
        assert provider.resize_instance(bigger, instance) == plan[instance.id]
        provider.register_target(lb, instance)
        provider.wait_target_healthy(lb, instance.id, timeout_s=5, poll_s=0.02)
    steps = [method.rsplit(".", 1)[1] for method, _ in calls_since(fake, start, project)]
    per_host = ["removeInstances", "resize", "stop", "setMachineType", "start", "addInstances"]
    assert steps == per_host * 2
    resources = instance_resources(fake, project)
    assert {r["machineType"].rsplit("/", 1)[1] for r in resources.values()} == {"e2-medium"}
    assert {r["status"] for r in resources.values()} == {"RUNNING"}
    assert {d["sizeGb"] for d in fake.resources(project, "disks")} == {"30"}
    assert provider.plan_resizes(bigger) == {}
    assert all(t.healthy for t in provider.target_health(lb))


def test_a_gpu_machine_type_gets_terminate_on_host_maintenance(fake, provider, project):
    [instance] = provider.ensure_fleet(fleet(1)).instances
    before = instance_resources(fake, project)[instance.name]
    assert before["scheduling"]["onHostMaintenance"] == "MIGRATE"
    gpu = resized(fleet(1), "g2-standard-4")
    start = len(fake.calls)
    provider.resize_instance(gpu, instance)
    steps = [method.rsplit(".", 1)[1] for method, _ in calls_since(fake, start, project)]
    assert steps == ["stop", "setScheduling", "setMachineType", "start"]
    after = instance_resources(fake, project)[instance.name]
    assert after["machineType"].endswith("/machineTypes/g2-standard-4")
    assert after["scheduling"]["onHostMaintenance"] == "TERMINATE"


def test_new_gpu_instances_and_templates_cannot_live_migrate(fake, provider, project):
    provider.ensure_fleet(fleet(1, instance=InstanceSpec(machine_type="a2-highgpu-1g")))
    [created] = fake.resources(project, "instances")
    assert created["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert "guestAccelerators" not in created  # the A100 comes with the machine type
    attached = InstanceSpec(
        machine_type="e2-small", accelerator_type="nvidia-tesla-t4", accelerator_count=2
    )
    provider.ensure_fleet(scaling_group(instance=attached))
    [template] = fake.resources(project, "instanceTemplates")
    assert template["properties"]["guestAccelerators"] == [
        {"acceleratorType": "nvidia-tesla-t4", "acceleratorCount": 2}
    ]
    assert template["properties"]["scheduling"]["onHostMaintenance"] == "TERMINATE"


def test_a_machine_type_the_zone_lacks_is_refused_before_any_instance_changes(
    fake, provider, project
):
    result = provider.ensure_fleet(fleet(2))
    zone = result.instances[1].zone
    fake.catalog.remove_machine_type(zone, "e2-medium")
    try:
        start = len(fake.calls)
        with pytest.raises(ProvisionError) as raised:
            provider.plan_resizes(resized(fleet(2), "e2-medium"))
    finally:
        fake.catalog.reset()
    assert raised.value.code is ErrorCode.INVALID_INPUT
    assert f"not offered in {zone}" in raised.value.message
    assert calls_since(fake, start, project) == []


def test_a_disk_never_shrinks(provider):
    provider.ensure_fleet(fleet(1))
    with pytest.raises(ProvisionError) as raised:
        provider.plan_resizes(resized(fleet(1), "e2-small", disk_gb=10))
    assert raised.value.code is ErrorCode.INVALID_INPUT
    assert "never shrink" in raised.value.message


def test_a_managed_instance_group_rolls_a_new_machine_type_through_its_template(
    fake, provider, project
):
    provider.ensure_fleet(scaling_group())
    bigger = resized(scaling_group(), "e2-medium")
    assert provider.plan_resizes(bigger) == {}
    result = provider.ensure_fleet(bigger)
    rolled = [c.detail for c in result.changes if c.kind == "instance_group_manager"]
    assert rolled and rolled[0].startswith("rolling replacement to ")
    templates = {
        t["properties"]["machineType"] for t in fake.resources(project, "instanceTemplates")
    }
    assert "e2-medium" in templates


# -- GPUs checked against the zones, before anything is created -------------------------------


def test_a_gpu_the_zone_lacks_is_refused_before_anything_is_created(fake, provider, project):
    gpu = fleet(2, instance=InstanceSpec(machine_type="g2-standard-4"))
    provider.validate(gpu, None)  # L4s everywhere
    fake.catalog.remove_accelerator("us-central1-b", "nvidia-l4")
    try:
        with pytest.raises(ProvisionError) as raised:
            provider.validate(gpu, None)
    finally:
        fake.catalog.reset()
    assert raised.value.code is ErrorCode.INVALID_INPUT
    assert raised.value.message == "GPU nvidia-l4 is not offered in zone us-central1-b"
    assert "fleet.zones" in raised.value.hint
    assert fake.resources(project, "instances") == []


def test_more_attached_gpus_than_an_instance_takes_are_refused(provider):
    attached = InstanceSpec(
        machine_type="n1-standard-4", accelerator_type="nvidia-tesla-t4", accelerator_count=8
    )
    with pytest.raises(ProvisionError) as raised:
        provider.validate(fleet(1, instance=attached), None)
    assert "8 x nvidia-tesla-t4 per instance" in raised.value.message
    assert "at most 4" in raised.value.hint
    provider.validate(fleet(1, instance=replace(attached, accelerator_count=4)), None)
