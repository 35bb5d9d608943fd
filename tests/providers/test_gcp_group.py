"""Rollback, status and drain of a GCP managed instance group, against the Compute Engine
fake (tests/fakes/gcp: discovery-document requests, operations polled until DONE).

Each release's template carries its release in metadata; the MIG's version name records
the template it replaced, which is kept (not deleted) for a rollback. The fake replaces
the instances when the MIG's template changes (a PROACTIVE update), lists them with
listManagedInstances (currentAction NONE, the template of their version), answers
currentActions from its rollout state and gives autoscalers status ACTIVE without
statusDetails or recommendedSize (so the activities are the current actions).
"""

from dataclasses import replace

import pytest

from mlops_vm.provision import InstanceSpec
from mlops_vm.provision.model import LABEL_RELEASE
from tests.fakes.gcp.testing import tail
from tests.providers.test_gcp import ENV, USER_DATA, _instance_templates_of, _mig, scaling_group
from tests.providers.test_gcp import lb_spec as gcp_lb_spec
from tests.providers.test_gcp import provider as gcp_provider

pytestmark = pytest.mark.usefixtures("clean_faults")
provider = gcp_provider
lb_spec = gcp_lb_spec

V1 = "registry.example:5000/model:v1"
V2 = "registry.example:5000/model:v2"
V3 = "registry.example:5000/model:v3"


def release(image: str, count: int = 2):
    """A MIG serving IMAGE: its user-data pulls that image, as the boot configuration does."""
    instance = InstanceSpec(
        machine_type="e2-small", user_data=f"{USER_DATA}# pull {image}\n", release=image
    )
    return scaling_group(count, instance=instance)


def template_names(fake, project) -> set[str]:
    return {t["name"] for t in fake.resources(project, "instanceTemplates")}


def test_each_template_records_its_release_and_the_previous_is_kept(fake, provider, project):
    provider.ensure_fleet(release(V1))
    [first] = fake.resources(project, "instanceTemplates")
    items = {i["key"]: i["value"] for i in first["properties"]["metadata"]["items"]}
    assert items[LABEL_RELEASE] == V1
    assert provider.previous_release(ENV) is None

    second = provider.ensure_fleet(release(V2))
    assert [(c.action, c.kind) for c in second.changes] == [
        ("create", "instance_template"),
        ("update", "instance_group_manager"),
    ]
    assert first["name"] in template_names(fake, project)  # kept for a rollback
    assert _mig(fake, project)["versions"][0]["name"].endswith(f"-after-{first['name'][-10:]}")
    assert provider.previous_release(ENV) == V1
    assert provider.ensure_fleet(release(V2)).changes == []

    # A third release: the first template goes, the second is the one kept.
    third = provider.ensure_fleet(release(V3))
    assert ("delete", "instance_template", first["name"]) in [
        (c.action, c.kind, c.name) for c in third.changes
    ]
    assert len(template_names(fake, project)) == 2
    assert provider.previous_release(ENV) == V2


def test_rollback_returns_the_mig_to_the_previous_template(fake, provider, project):
    provider.ensure_fleet(release(V1))
    [first] = fake.resources(project, "instanceTemplates")
    before = provider.ensure_fleet(release(V2)).instances
    previous = provider.previous_release(ENV)
    assert previous == V1

    plan = provider.ensure_fleet(release(previous), dry_run=True)
    rolled = provider.ensure_fleet(release(previous))
    assert [str(c) for c in plan.changes] == [str(c) for c in rolled.changes]
    # No new template: the MIG goes back to the kept one, through a rolling replacement.
    assert [(c.action, c.kind) for c in rolled.changes] == [("update", "instance_group_manager")]
    assert f"rolling replacement to {first['name']}" in rolled.changes[0].detail
    mig = _mig(fake, project)
    assert mig["versions"][0]["instanceTemplate"].endswith(first["name"])
    assert mig["updatePolicy"]["type"] == "PROACTIVE"
    assert _instance_templates_of(fake, project) == {tail(first["selfLink"])}
    assert not {i.name for i in before} & {i.name for i in rolled.instances}  # replaced
    status = provider.group_status(ENV)
    assert (status.release, status.previous_release) == (V1, V2)
    assert {i.release for i in status.instances} == {V1}
    assert provider.ensure_fleet(release(V1)).changes == []
    # And forward again: the V2 template was kept as the previous one.
    assert provider.previous_release(ENV) == V2


def test_status_lists_instances_with_release_lifecycle_and_health(fake, provider, project, lb_spec):
    assert provider.group_status(ENV) is None
    fleet = provider.ensure_fleet(release(V1))
    status = provider.group_status(ENV)
    assert status.name == _mig(fake, project)["name"]
    assert (status.min_size, status.desired, status.max_size) == (1, 2, 4)
    assert status.release == V1 and status.previous_release is None
    assert sorted(i.id for i in status.instances) == sorted(i.name for i in fleet.instances)
    for instance in status.instances:
        assert instance.zone in ("us-central1-a", "us-central1-b")
        assert (instance.release, instance.lifecycle) == (V1, "in_service")
        assert instance.lb_healthy is None  # no backend service yet
    assert status.activities == ()  # nothing in progress
    assert status.problems() == []

    provider.ensure_load_balancer(lb_spec, fleet)
    status = provider.group_status(ENV)
    assert {i.lb_healthy for i in status.instances} == {True}
    assert status.problems() == []


def test_status_shows_a_rollout_in_progress(fake, provider, project):
    provider.ensure_fleet(release(V1))
    fake.hold_rollout(_mig(fake, project)["selfLink"])
    with fake.store.lock:
        stored = fake.store.get(_mig(fake, project)["selfLink"].split("/compute/v1/", 1)[-1])
        stored["_unstable_reads"] = 1  # the fake shows its instances being created
    status = provider.group_status(ENV)
    [activity] = status.activities
    assert activity.description == "creating 2 instance(s)" and activity.at
    assert "template or size change" in activity.cause


def test_scale_in_drains_by_the_backend_services_connection_draining(
    fake, provider, project, lb_spec
):
    """A MIG deletes an instance it scales in only after the backend service's connection
    draining (drainingTimeoutSec = drain_seconds): requests in flight finish."""
    fleet = provider.ensure_fleet(release(V1))
    provider.ensure_load_balancer(replace(lb_spec, drain_seconds=40), fleet)
    [service] = fake.resources(project, "backendServices")
    assert service["connectionDraining"] == {"drainingTimeoutSec": 40}
    [backend] = service["backends"]
    assert backend["group"].endswith(_mig(fake, project)["instanceGroup"].split("/v1/")[-1])
