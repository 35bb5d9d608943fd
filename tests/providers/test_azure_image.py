"""Release images on Azure against the ARM fake: a managed image made from a deallocated,
generalized builder VM, reuse by fingerprint, images beyond keep_images deleted, the builder
(VM, NIC, OS disk) always removed, the scale set model pointing at each release's image
(tagged with the release, customData only the instance's facts), `--check` equal to the run.

The configure step (ImageSpec.configure; in real use ansible-playbook over SSH) is injected:
nothing can SSH into the fake's VMs.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import replace

import pytest

from mlops_vm.bootstrap.baked import render_baked_user_data
from mlops_vm.provision import FleetSpec, NetworkSpec, ProvisionError
from mlops_vm.provision.azure import AzureProvider
from mlops_vm.provision.model import LABEL_FINGERPRINT, LABEL_RELEASE, ImageSpec, Instance
from tests.check_equals_run import assert_same
from tests.fakes.azure import SUBSCRIPTION_ID, FakeArm
from tests.providers.test_azure import (
    certificate,
    env,
    fleet_spec,
    make_provider,
    provider,
    scale_set_spec,
)

__all__ = ["certificate", "env", "fleet_spec", "provider", "scale_set_spec"]  # fixtures

pytestmark = pytest.mark.usefixtures("plain_http", "fresh_hooks")

MODEL_V1 = "registry.example.test/team/model:1.0"
MODEL_V2 = "registry.example.test/team/model:2.0"
IMAGE_TYPE = "Microsoft.Compute/images"
VM_TYPE = "Microsoft.Compute/virtualMachines"


class Builders:
    """The configure step: records the builder it is handed; fails when told to."""

    def __init__(self, arm: FakeArm, fail_with: BaseException | None = None) -> None:
        self.arm, self.fail_with = arm, fail_with
        self.configured: list[Instance] = []

    def __call__(self, builder: Instance) -> None:
        assert self.arm.resource(builder.id) is not None
        assert builder.private_ip
        self.configured.append(builder)
        if self.fail_with is not None:
            raise self.fail_with


def image_spec(env: str, release: str, configure: Callable, keep: int = 3) -> ImageSpec:
    fingerprint = hashlib.sha256(f"{env} {release}".encode()).hexdigest()
    return ImageSpec(
        env=env, release=release, fingerprint=fingerprint, keep_images=keep, configure=configure
    )


def group_of(env: str) -> str:
    return f"mlops-vm-{env}"


def images(arm: FakeArm, env: str) -> list[dict]:
    return arm.resources(IMAGE_TYPE, group_of(env))


def builder_parts(arm: FakeArm, env: str) -> list[str]:
    """The builder's VM, NIC and OS disk, whatever is left of them."""
    return [
        r["name"]
        for r in arm.resources(resource_group=group_of(env))
        if "image-builder" in r["name"]
    ]


def test_bake_images_a_generalized_builder_then_removes_it(arm, provider, fleet_spec, env):
    builders = Builders(arm)
    spec = image_spec(env, MODEL_V1, builders)
    result, changes = provider.ensure_release_image(fleet_spec(1), spec)
    assert not result.reused
    assert ("create", "image", result.name) in {(c.action, c.kind, c.name) for c in changes}
    [image] = images(arm, env)
    assert image["id"].lower() == result.image_id.lower()
    assert image["tags"][LABEL_RELEASE] == MODEL_V1
    assert image["tags"][LABEL_FINGERPRINT] == spec.fingerprint
    assert image["properties"]["storageProfile"]["osDisk"]["osState"] == "Generalized"
    assert len(builders.configured) == 1
    assert builder_parts(arm, env) == []


def test_same_fingerprint_is_reused(arm, provider, fleet_spec, env):
    builders = Builders(arm)
    first, _ = provider.ensure_release_image(fleet_spec(1), image_spec(env, MODEL_V1, builders))
    again, changes = provider.ensure_release_image(
        fleet_spec(1), image_spec(env, MODEL_V1, builders)
    )
    assert (again.image_id, again.reused, changes) == (first.image_id, True, [])
    assert len(builders.configured) == 1


def test_images_beyond_keep_images_are_deleted(arm, provider, fleet_spec, env):
    builders = Builders(arm)
    made = [
        provider.ensure_release_image(fleet_spec(1), image_spec(env, f"m:{n}", builders, 2))[0]
        for n in range(4)
    ]
    assert {i["name"] for i in images(arm, env)} == {made[2].name, made[3].name}


@pytest.mark.parametrize("failure", [RuntimeError("roles failed"), KeyboardInterrupt()])
def test_the_builder_is_removed_when_configuring_fails(arm, provider, fleet_spec, env, failure):
    builders = Builders(arm, fail_with=failure)
    with pytest.raises(type(failure)):
        provider.ensure_release_image(fleet_spec(1), image_spec(env, MODEL_V1, builders))
    assert len(builders.configured) == 1
    assert builder_parts(arm, env) == []
    assert images(arm, env) == []


def test_check_equals_the_run(arm, provider, fleet_spec, env):
    builders = Builders(arm)
    for release in (MODEL_V1, MODEL_V2, "m:3"):
        spec = image_spec(env, release, builders, keep=2)
        planned, plan = provider.ensure_release_image(fleet_spec(1), spec, dry_run=True)
        done, changes = provider.ensure_release_image(fleet_spec(1), spec)
        assert_same(plan, changes)
        assert planned.image_id.lower() == done.image_id.lower()
        assert provider.ensure_release_image(fleet_spec(1), spec)[1] == []
    assert ("delete", "image") in {(c.action, c.kind) for c in changes}


def baked(scale_set_spec, env: str, release: str, configure: Callable) -> FleetSpec:
    image = image_spec(env, release, configure)
    spec = scale_set_spec(2)
    instance = replace(
        spec.instance, user_data=render_baked_user_data(env, release, image.fingerprint)
    )
    return replace(spec, instance=instance, release_image=image)


def model_of(arm: FakeArm, env: str) -> dict:
    [scale_set] = arm.resources("Microsoft.Compute/virtualMachineScaleSets", group_of(env))
    return scale_set


def test_the_scale_set_model_follows_each_release_image(arm, scale_set_spec, env):
    provider: AzureProvider = make_provider(arm)
    builders = Builders(arm)
    first = baked(scale_set_spec, env, MODEL_V1, builders)
    provider.ensure_fleet(first)
    assert provider.ensure_fleet(first).changes == []
    second = baked(scale_set_spec, env, MODEL_V2, builders)
    plan = provider.ensure_fleet(second, dry_run=True).changes
    done = provider.ensure_fleet(second).changes
    assert_same(plan, done)
    assert ("create", "image") in {(c.action, c.kind) for c in done}
    scale_set = model_of(arm, env)
    profile = scale_set["properties"]["virtualMachineProfile"]
    [v2] = [i for i in images(arm, env) if i["tags"][LABEL_RELEASE] == MODEL_V2]
    assert profile["storageProfile"]["imageReference"]["id"].lower() == v2["id"].lower()
    assert scale_set["tags"][LABEL_RELEASE] == MODEL_V2
    # ARM never shows customData back: read what the fake stored.
    stored = arm.stored(scale_set["id"])
    assert stored is not None
    stored_profile = stored["properties"]["virtualMachineProfile"]
    custom = base64.b64decode(stored_profile["osProfile"]["customData"]).decode()
    assert len(custom) < 1024 and "roles/" not in custom and MODEL_V2 in custom
    assert provider.ensure_fleet(second).changes == []


def test_without_a_configure_step_no_builder_is_made(arm, provider, fleet_spec, env):
    spec = replace(image_spec(env, MODEL_V1, print), configure=None)
    with pytest.raises(ProvisionError, match="configure"):
        provider.ensure_release_image(fleet_spec(1), spec)
    assert builder_parts(arm, env) == [] and images(arm, env) == []


def test_destroy_in_a_reused_group_deletes_the_images(arm, provider, fleet_spec, env):
    # An owned resource group goes whole; in a reused one, the images are found by tag.
    group = f"shared-{env}"
    arm.create_resource_group(SUBSCRIPTION_ID, group, "westeurope")
    existing = {"resource_group": group}
    spec = fleet_spec(1, network=NetworkSpec(ssh_cidr="198.51.100.0/24", existing=existing))
    builders = Builders(arm)
    for release in (MODEL_V1, MODEL_V2):
        provider.ensure_release_image(spec, image_spec(env, release, builders))
    assert len(arm.resources(IMAGE_TYPE, group)) == 2
    planned = provider.destroy(env, dry_run=True)
    removed = provider.destroy(env)
    assert_same(planned, removed)
    assert [c.kind for c in removed].count("image") == 2
    assert arm.resources(IMAGE_TYPE, group) == []
