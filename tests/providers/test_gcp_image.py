"""Release images on GCP against the Compute Engine fake: an image in the environment's
family made from a stopped builder's disk, reuse by fingerprint, images beyond keep_images
deleted, the builder always deleted, instance templates pointing at each release's image
(labelled with the release) and the MIG patched to them, `--check` equal to the run.

The configure step (ImageSpec.configure; in real use ansible-playbook over SSH) is injected:
nothing can SSH into the fake's instances.
"""

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from mlops_vm.bootstrap.baked import render_baked_user_data
from mlops_vm.provision import AutoscalingSpec, FleetSpec, InstanceSpec, ProvisionError
from mlops_vm.provision.gcp import GcpProvider
from mlops_vm.provision.model import (
    LABEL_FINGERPRINT,
    LABEL_RELEASE,
    ROLE_IMAGE_BUILDER,
    ImageSpec,
    Instance,
)
from tests.check_equals_run import assert_same
from tests.fakes.gcp import FakeCompute
from tests.fakes.gcp.testing import by_name, make_provider

pytestmark = pytest.mark.usefixtures("clean_faults")

ENV = "t1"
MODEL_V1 = "registry.example.test/team/model:1.0"
MODEL_V2 = "registry.example.test/team/model:2.0"


@pytest.fixture
def provider(fake: FakeCompute, project: str) -> GcpProvider:
    return make_provider(fake, project)


class Builders:
    """The configure step: checks the builder runs, records it; fails when told to."""

    def __init__(self, fake: FakeCompute, project: str, fail_with: BaseException | None = None):
        self.fake, self.project, self.fail_with = fake, project, fail_with
        self.configured: list[Instance] = []

    def __call__(self, builder: Instance) -> None:
        [raw] = [
            i for i in self.fake.resources(self.project, "instances") if i["name"] == builder.name
        ]
        assert raw["status"] == "RUNNING"
        self.configured.append(builder)
        if self.fail_with is not None:
            raise self.fail_with


def fleet(count: int = 1, **changes: Any) -> FleetSpec:
    instance = changes.pop(
        "instance",
        InstanceSpec(machine_type="e2-small", ssh_public_key="ssh-ed25519 AAAAC3Nza t@example"),
    )
    return FleetSpec(env=ENV, instance=instance, count=count, **changes)


def image_spec(release: str, configure: Callable, keep: int = 3) -> ImageSpec:
    fingerprint = hashlib.sha256(f"{ENV} {release}".encode()).hexdigest()
    return ImageSpec(
        env=ENV, release=release, fingerprint=fingerprint, keep_images=keep, configure=configure
    )


def images(fake: FakeCompute, project: str) -> list[dict]:
    return fake.resources(project, "images")


def builders_left(fake: FakeCompute, project: str) -> list[dict]:
    return [
        i
        for i in fake.resources(project, "instances")
        if i.get("labels", {}).get("mlops-vm-role") == ROLE_IMAGE_BUILDER
    ]


def test_bake_images_the_stopped_builder_disk_into_the_family(fake, provider, project):
    builders = Builders(fake, project)
    spec = image_spec(MODEL_V1, builders)
    result, changes = provider.ensure_release_image(fleet(), spec)
    assert not result.reused
    assert ("create", "image", result.name) in {(c.action, c.kind, c.name) for c in changes}
    [image] = images(fake, project)
    assert image["family"] == f"mlops-vm-{ENV}-img"
    assert image["labels"][LABEL_RELEASE] == "registry-example-test-team-model-1-0"
    assert image["labels"][LABEL_FINGERPRINT] == spec.fingerprint[:63]
    assert f"release={MODEL_V1}" in image["description"]
    assert result.image_id.endswith(f"/global/images/{image['name']}")
    assert len(builders.configured) == 1
    assert builders_left(fake, project) == []
    assert fake.resources(project, "disks") == []  # the builder's disk went with it


def test_same_fingerprint_is_reused(fake, provider, project):
    builders = Builders(fake, project)
    first, _ = provider.ensure_release_image(fleet(), image_spec(MODEL_V1, builders))
    again, changes = provider.ensure_release_image(fleet(), image_spec(MODEL_V1, builders))
    assert (again.image_id, again.reused, changes) == (first.image_id, True, [])
    assert len(builders.configured) == 1


def test_images_beyond_keep_images_are_deleted(fake, provider, project):
    builders = Builders(fake, project)
    made = [
        provider.ensure_release_image(fleet(), image_spec(f"model:{n}", builders, keep=2))[0]
        for n in range(4)
    ]
    assert {i["name"] for i in images(fake, project)} == {made[2].name, made[3].name}


@pytest.mark.parametrize("failure", [RuntimeError("roles failed"), KeyboardInterrupt()])
def test_the_builder_is_deleted_when_configuring_fails(fake, provider, project, failure):
    builders = Builders(fake, project, fail_with=failure)
    with pytest.raises(type(failure)):
        provider.ensure_release_image(fleet(), image_spec(MODEL_V1, builders))
    assert len(builders.configured) == 1
    assert builders_left(fake, project) == []
    assert images(fake, project) == []


def test_check_equals_the_run(fake, provider, project):
    builders = Builders(fake, project)
    for release in (MODEL_V1, MODEL_V2, "model:3"):
        spec = image_spec(release, builders, keep=2)
        planned, plan = provider.ensure_release_image(fleet(), spec, dry_run=True)
        assert not planned.reused
        done, changes = provider.ensure_release_image(fleet(), spec)
        assert_same(plan, changes)
        assert planned.image_id == done.image_id
        assert provider.ensure_release_image(fleet(), spec)[1] == []
    assert ("delete", "image") in {(c.action, c.kind) for c in changes}


def baked_group(release: str, configure: Callable) -> FleetSpec:
    image = image_spec(release, configure)
    instance = InstanceSpec(
        machine_type="e2-small",
        user_data=render_baked_user_data(ENV, release, image.fingerprint),
    )
    return fleet(
        2,
        mode="scaling_group",
        instance=instance,
        autoscaling=AutoscalingSpec(min_size=1, max_size=4),
        release_image=image,
    )


def test_templates_point_at_each_release_image_and_the_group_follows(fake, provider, project):
    builders = Builders(fake, project)
    first = baked_group(MODEL_V1, builders)
    provider.ensure_fleet(first)
    assert provider.ensure_fleet(first).changes == []
    second = baked_group(MODEL_V2, builders)
    plan = provider.ensure_fleet(second, dry_run=True).changes
    done = provider.ensure_fleet(second).changes
    assert_same(plan, done)
    kinds = {(c.action, c.kind) for c in done}
    assert {("create", "image"), ("create", "instance_template")} <= kinds
    manager = next(iter(by_name(fake.resources(project, "instanceGroupManagers")).values()))
    [template] = [
        t
        for t in fake.resources(project, "instanceTemplates")
        if t["selfLink"].endswith(manager["instanceTemplate"].rsplit("/", 1)[1])
    ]
    v2 = next(i for i in images(fake, project) if i["labels"][LABEL_RELEASE].endswith("2-0"))
    properties = template["properties"]
    assert properties["disks"][0]["initializeParams"]["sourceImage"].endswith(
        f"/global/images/{v2['name']}"
    )
    assert properties["labels"][LABEL_RELEASE] == v2["labels"][LABEL_RELEASE]
    # The metadata holds only the instance's facts: no role, no payload.
    [user_data] = [i["value"] for i in properties["metadata"]["items"] if i["key"] == "user-data"]
    assert len(user_data) < 1024 and "roles/" not in user_data
    assert provider.ensure_fleet(second).changes == []


def test_without_a_configure_step_no_builder_is_made(fake, provider, project):
    spec = replace(image_spec(MODEL_V1, print), configure=None)
    with pytest.raises(ProvisionError, match="configure"):
        provider.ensure_release_image(fleet(), spec)
    assert builders_left(fake, project) == [] and images(fake, project) == []


def test_destroy_deletes_the_images(fake, provider, project):
    builders = Builders(fake, project)
    for release in (MODEL_V1, MODEL_V2):
        provider.ensure_release_image(fleet(), image_spec(release, builders))
    planned = provider.destroy(ENV, dry_run=True)
    assert len(images(fake, project)) == 2
    removed = provider.destroy(ENV)
    assert_same(planned, removed)
    assert [c.kind for c in removed].count("image") == 2
    assert images(fake, project) == []
    assert provider.destroy(ENV) == []
