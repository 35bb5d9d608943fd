"""Rollback, status and drain of an Azure VM scale set, against the ARM fake
(tests/fakes/azure: long-running operations polled through Azure-AsyncOperation).

The scale set's tags record its release and the one it replaced; a rollback is the
previous release put as the model again (customData is write-only, so it is rendered
again) and rolled to the instances by the rolling upgrade. The fake keeps each instance
on the model it was created or last upgraded with (latestModelApplied), upgrades them on
manualUpgrade and answers rollingUpgrades/latest with the last one.
"""

from dataclasses import replace

import pytest

from mlops_vm.provision import ProvisionError
from mlops_vm.provision.model import LABEL_PREVIOUS_RELEASE, LABEL_RELEASE
from tests.providers import test_azure
from tests.providers.test_azure import USER_DATA, instance_spec, scale_set_of

pytestmark = pytest.mark.usefixtures("plain_http", "fresh_hooks")

env = test_azure.env
provider = test_azure.provider
certificate = test_azure.certificate
fleet_spec = test_azure.fleet_spec
scale_set_spec = test_azure.scale_set_spec
lb_spec = test_azure.lb_spec

V1 = "registry.example:5000/model:v1"
V2 = "registry.example:5000/model:v2"


def release(scale_set_spec, image: str, count: int = 2):
    """A scale set serving IMAGE: its user data pulls that image, as the boot config does."""
    instance = instance_spec(user_data=f"{USER_DATA}# pull {image}\n", release=image)
    return scale_set_spec(count, instance=instance)


def custom_data(arm, env: str) -> str:
    sent = arm.stored(scale_set_of(arm, env)["id"])
    return sent["properties"]["virtualMachineProfile"]["osProfile"]["customData"]


def test_rollback_returns_the_scale_set_to_the_previous_model(provider, arm, scale_set_spec, env):
    provider.ensure_fleet(release(scale_set_spec, V1))
    v1_model = custom_data(arm, env)
    assert scale_set_of(arm, env)["tags"][LABEL_RELEASE] == V1
    assert provider.previous_release(env) is None

    forward = provider.ensure_fleet(release(scale_set_spec, V2))
    assert [c.detail for c in forward.changes] == [
        f"new user data; release {V2}",
        "roll 2 instance(s) to the latest model",
    ]
    tags = scale_set_of(arm, env)["tags"]
    assert (tags[LABEL_RELEASE], tags[LABEL_PREVIOUS_RELEASE]) == (V2, V1)
    previous = provider.previous_release(env)
    assert previous == V1

    plan = provider.ensure_fleet(release(scale_set_spec, previous), dry_run=True)
    rolled = provider.ensure_fleet(release(scale_set_spec, previous))
    assert [str(c) for c in plan.changes] == [str(c) for c in rolled.changes]
    assert [c.detail for c in rolled.changes] == [
        f"new user data; release {V1}",
        "roll 2 instance(s) to the latest model",
    ]
    assert custom_data(arm, env) == v1_model  # the model V1 had
    status = provider.group_status(env)
    assert (status.release, status.previous_release) == (V1, V2)
    assert [(i.release, i.lifecycle) for i in status.instances] == [(V1, "in_service")] * 2
    assert provider.ensure_fleet(release(scale_set_spec, V1)).changes == []


def test_status_lists_instances_with_release_lifecycle_and_health(
    provider, arm, scale_set_spec, lb_spec, env
):
    assert provider.group_status(env) is None
    fleet = provider.ensure_fleet(release(scale_set_spec, V1))
    status = provider.group_status(env)
    assert status.name == scale_set_of(arm, env)["name"]
    assert (status.min_size, status.desired, status.max_size) == (1, 2, 4)
    assert sorted(i.id for i in status.instances) == sorted(i.name for i in fleet.instances)
    assert {(i.release, i.lifecycle, i.lb_healthy) for i in status.instances} == {
        (V1, "in_service", None)
    }
    assert status.activities == ()  # no rolling upgrade yet
    assert status.problems() == []

    provider.ensure_load_balancer(lb_spec, fleet)
    status = provider.group_status(env)
    assert {i.lb_healthy for i in status.instances} == {True}
    # The join of the backend pool was rolled to the instances: the activity says so.
    [upgrade] = status.activities
    assert upgrade.status == "Completed" and "2 upgraded" in upgrade.description
    assert upgrade.at


def test_status_shows_instances_behind_the_model_on_the_previous_release(
    provider, arm, scale_set_spec, env
):
    provider.ensure_fleet(release(scale_set_spec, V1))
    # The model changes but the upgrade fails (health signal): instances stay behind.
    arm.fault_rolling_upgrade(scale_set_of(arm, env)["id"])
    with pytest.raises(ProvisionError, match="rolling upgrade"):
        provider.ensure_fleet(release(scale_set_spec, V2))
    status = provider.group_status(env)
    assert status.release == V2
    assert {i.release for i in status.instances} == {V1}
    assert all("behind the model" in i.detail for i in status.instances)
    assert any(f"runs {V1}, the group {V2}" in p for p in status.problems())
    [upgrade] = status.activities
    assert upgrade.status == "Faulted"


def test_scale_in_drains_by_the_gateways_connection_draining(
    provider, arm, scale_set_spec, lb_spec, env
):
    """Autoscale removes an instance from the backend pool before deleting it; the backend
    settings' connection draining (drain_seconds) lets its requests in flight finish."""
    fleet = provider.ensure_fleet(release(scale_set_spec, V1))
    provider.ensure_load_balancer(replace(lb_spec, drain_seconds=50), fleet)
    [gateway] = arm.resources("Microsoft.Network/applicationGateways", f"mlops-vm-{env}")
    [settings] = gateway["properties"]["backendHttpSettingsCollection"]
    assert settings["properties"]["connectionDraining"] == {
        "enabled": True,
        "drainTimeoutInSec": 50,
    }
