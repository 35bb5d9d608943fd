"""Release images on AWS against moto: CreateImage, reuse by fingerprint, clean-up beyond
keep_images (images and snapshots), the builder always terminated, launch template versions
tagged with the release pointing at the new image, `--check` equal to the run.

Nothing can SSH into a moto instance: the configure step (ImageSpec.configure, in real use
ansible-playbook over SSH) is injected here, and records the builder it was handed. That
the roles really configure a builder into a serving image is tested on the local provider.
"""

import base64
import gzip
import hashlib
from collections.abc import Callable
from dataclasses import replace

import pytest

from mlops_vm.bootstrap.baked import render_baked_user_data
from mlops_vm.plan import ChangeLog
from mlops_vm.provision import FleetSpec, ProvisionError
from mlops_vm.provision.aws import AwsProvider, bake, instances, network
from mlops_vm.provision.model import (
    ROLE_IMAGE_BUILDER,
    TAG_FINGERPRINT,
    TAG_RELEASE,
    ImageSpec,
    Instance,
)
from tests.check_equals_run import assert_same
from tests.providers.test_aws import (
    aws_environment,
    boto,
    certificate,
    env,
    fleet_spec,
    lb_spec,
    make_provider,
    moto_endpoint,
    provider,
    scaling_spec,
    tag_map,
)

__all__ = [  # fixtures shared with the provider tests, found by pytest by their names
    "aws_environment",
    "boto",
    "certificate",
    "env",
    "fleet_spec",
    "lb_spec",
    "moto_endpoint",
    "provider",
]

MODEL_V1 = "registry.example.test/team/model:1.0"
MODEL_V2 = "registry.example.test/team/model:2.0"


class Builders:
    """The configure step: records each builder it configures; fails when told to."""

    def __init__(self, boto: Callable, fail_with: BaseException | None = None) -> None:
        self.boto = boto
        self.fail_with = fail_with
        self.configured: list[Instance] = []

    def __call__(self, builder: Instance) -> None:
        # The builder runs, in the environment's network, when the roles are applied.
        [raw] = [
            i
            for r in self.boto("ec2").describe_instances(InstanceIds=[builder.id])["Reservations"]
            for i in r["Instances"]
        ]
        assert raw["State"]["Name"] == "running"
        self.configured.append(builder)
        if self.fail_with is not None:
            raise self.fail_with


def image_spec(env: str, release: str, configure: Callable, keep: int = 3) -> ImageSpec:
    fingerprint = hashlib.sha256(f"{env} {release}".encode()).hexdigest()
    return ImageSpec(
        env=env, release=release, fingerprint=fingerprint, keep_images=keep, configure=configure
    )


def env_images(boto, env: str) -> list[dict]:
    return boto("ec2").describe_images(
        Owners=["self"], Filters=[{"Name": "tag:mlops-vm/env", "Values": [env]}]
    )["Images"]


def live_instances(boto, env: str, role: str) -> list[dict]:
    reservations = boto("ec2").describe_instances(
        Filters=[
            {"Name": "tag:mlops-vm/env", "Values": [env]},
            {"Name": "tag:mlops-vm/role", "Values": [role]},
        ]
    )["Reservations"]
    return [i for r in reservations for i in r["Instances"] if i["State"]["Name"] != "terminated"]


def snapshot_ids(images: list[dict]) -> set[str]:
    return {
        mapping["Ebs"]["SnapshotId"]
        for image in images
        for mapping in image.get("BlockDeviceMappings", [])
        if "SnapshotId" in mapping.get("Ebs", {})
    }


def test_bake_images_a_configured_builder_then_terminates_it(provider, fleet_spec, boto, env):
    builders = Builders(boto)
    spec = image_spec(env, MODEL_V1, builders)
    result, changes = provider.ensure_release_image(fleet_spec(1), spec)
    assert not result.reused
    assert ("create", "image", result.name) in {(c.action, c.kind, c.name) for c in changes}
    [builder] = builders.configured
    assert builder.role == ROLE_IMAGE_BUILDER
    [image] = env_images(boto, env)
    assert image["ImageId"] == result.image_id
    tags = tag_map(image["Tags"])
    assert tags[TAG_RELEASE] == MODEL_V1
    assert tags[TAG_FINGERPRINT] == spec.fingerprint
    # Its snapshots carry the environment's tag too.
    snapshots = boto("ec2").describe_snapshots(SnapshotIds=sorted(snapshot_ids([image])))
    assert all(tag_map(s.get("Tags"))["mlops-vm/env"] == env for s in snapshots["Snapshots"])
    assert live_instances(boto, env, ROLE_IMAGE_BUILDER) == []


def test_same_fingerprint_is_reused_without_a_builder(provider, fleet_spec, boto, env):
    builders = Builders(boto)
    spec = image_spec(env, MODEL_V1, builders)
    first, _ = provider.ensure_release_image(fleet_spec(1), spec)
    again, changes = provider.ensure_release_image(fleet_spec(1), spec)
    assert (again.image_id, again.reused, changes) == (first.image_id, True, [])
    assert len(builders.configured) == 1


def test_images_beyond_keep_images_go_with_their_snapshots(provider, fleet_spec, boto, env):
    builders = Builders(boto)
    results = [
        provider.ensure_release_image(
            fleet_spec(1), image_spec(env, f"model:{n}", builders, keep=2)
        )[0]
        for n in range(4)
    ]
    kept = env_images(boto, env)
    assert {i["ImageId"] for i in kept} == {results[2].image_id, results[3].image_id}
    all_snapshots = {
        s["SnapshotId"] for s in boto("ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"]
    }
    assert snapshot_ids(kept) <= all_snapshots
    # The removed images' snapshots are gone: only the kept images' remain of this env.
    tagged = boto("ec2").describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:mlops-vm/env", "Values": [env]}]
    )["Snapshots"]
    assert {s["SnapshotId"] for s in tagged} == snapshot_ids(kept)
    # An older release baked again while two newer exist: it is kept, the oldest goes.
    back, changes = provider.ensure_release_image(
        fleet_spec(1), image_spec(env, "model:3", builders, keep=2)
    )
    assert back.reused and changes == []


@pytest.mark.parametrize("failure", [RuntimeError("roles failed"), KeyboardInterrupt()])
def test_the_builder_is_terminated_when_configuring_fails(provider, fleet_spec, boto, env, failure):
    builders = Builders(boto, fail_with=failure)
    with pytest.raises(type(failure)):
        provider.ensure_release_image(fleet_spec(1), image_spec(env, MODEL_V1, builders))
    assert len(builders.configured) == 1
    assert live_instances(boto, env, ROLE_IMAGE_BUILDER) == []
    assert env_images(boto, env) == []


def test_a_builder_left_behind_is_terminated_by_the_next_bake(provider, fleet_spec, boto, env):
    # A run killed outright (SIGKILL: no finally runs) leaves its builder running, as
    # this one launched the way bake launches it.
    log = ChangeLog(dry_run=False)
    ids = network.converge_network(provider.ctx, fleet_spec(1), log)
    settings = {"ImageId": "ami-0deb1200000000002", "InstanceType": "t3.small"}
    instances.launch_instance(
        provider.ctx,
        bake.builder_spec(fleet_spec(1)),
        bake.builder_name(env),
        ids.subnet_ids[0],
        ids.instance_security_group_id,
        settings,
    )
    assert len(live_instances(boto, env, ROLE_IMAGE_BUILDER)) == 1
    spec = image_spec(env, MODEL_V1, Builders(boto))
    plan = provider.ensure_release_image(fleet_spec(1), spec, dry_run=True)[1]
    _, done = provider.ensure_release_image(fleet_spec(1), spec)
    assert_same(plan, done)
    assert [c.detail for c in done if c.kind == "instance"] == ["an image builder left behind"]
    assert live_instances(boto, env, ROLE_IMAGE_BUILDER) == []


def test_check_equals_the_run(provider, fleet_spec, boto, env):
    builders = Builders(boto)
    for release, keep in ((MODEL_V1, 2), (MODEL_V2, 2), ("model:3", 2)):
        spec = image_spec(env, release, builders, keep=keep)
        planned, plan_changes = provider.ensure_release_image(fleet_spec(1), spec, dry_run=True)
        assert not planned.reused
        _, changes = provider.ensure_release_image(fleet_spec(1), spec)
        assert_same(plan_changes, changes)
        assert provider.ensure_release_image(fleet_spec(1), spec)[1] == []
    # The third bake removed the first image: planned as it was done.
    assert ("delete", "image") in {(c.action, c.kind) for c in changes}
    assert len(env_images(boto, env)) == 2


def baked_spec(fleet_spec, env: str, release: str, configure: Callable) -> FleetSpec:
    image = image_spec(env, release, configure)
    user_data = render_baked_user_data(env, release, image.fingerprint)
    return replace(scaling_spec(fleet_spec, user_data=user_data), release_image=image)


def default_version(boto, env: str) -> dict:
    [template] = boto("ec2").describe_launch_templates(
        Filters=[{"Name": "tag:mlops-vm/env", "Values": [env]}]
    )["LaunchTemplates"]
    [version] = boto("ec2").describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Default"]
    )["LaunchTemplateVersions"]
    return version


def instance_tag_spec(version: dict) -> dict[str, str]:
    [spec] = [
        s
        for s in version["LaunchTemplateData"]["TagSpecifications"]
        if s["ResourceType"] == "instance"
    ]
    return tag_map(spec["Tags"])


def test_scaling_group_template_versions_point_at_each_release_image(
    moto_endpoint, fleet_spec, boto, env
):
    provider: AwsProvider = make_provider(moto_endpoint, instance_refresh=False)
    builders = Builders(boto)
    first = baked_spec(fleet_spec, env, MODEL_V1, builders)
    fleet = provider.ensure_fleet(first)
    [v1_image] = env_images(boto, env)
    version = default_version(boto, env)
    assert version["LaunchTemplateData"]["ImageId"] == v1_image["ImageId"]
    assert instance_tag_spec(version)[TAG_RELEASE] == MODEL_V1
    # The group's instances boot from the baked image.
    assert {i.tags.get(TAG_RELEASE) for i in fleet.instances} == {MODEL_V1}
    assert provider.ensure_fleet(first).changes == []

    second = baked_spec(fleet_spec, env, MODEL_V2, builders)
    plan = provider.ensure_fleet(second, dry_run=True).changes
    done = provider.ensure_fleet(second).changes
    assert_same(plan, done)
    assert {(c.action, c.kind) for c in done} >= {
        ("create", "image"),
        ("update", "launch_template"),
    }
    version = default_version(boto, env)
    assert version["VersionNumber"] == 2
    v2_image = next(i for i in env_images(boto, env) if i["ImageId"] != v1_image["ImageId"])
    assert version["LaunchTemplateData"]["ImageId"] == v2_image["ImageId"]
    assert instance_tag_spec(version)[TAG_RELEASE] == MODEL_V2
    assert len(builders.configured) == 2
    assert provider.ensure_fleet(second).changes == []


def test_a_baked_instance_user_data_is_small_and_holds_no_role(
    moto_endpoint, fleet_spec, boto, env
):
    provider = make_provider(moto_endpoint, instance_refresh=False)
    provider.ensure_fleet(baked_spec(fleet_spec, env, MODEL_V1, Builders(boto)))
    data = default_version(boto, env)["LaunchTemplateData"]["UserData"]
    user_data = gzip.decompress(base64.b64decode(data))
    assert len(user_data) < 1024
    text = user_data.decode()
    assert "roles/" not in text and "payload" not in text and "ansible" not in text.lower()
    assert MODEL_V1 in text


def test_a_scaling_group_refresh_follows_a_new_release_image(moto_endpoint, fleet_spec, boto, env):
    # moto has no instance refresh: the plan says the group is refreshed onto the new version
    # (the call itself is checked with the Stubber in test_aws_errors.py).
    provider = make_provider(moto_endpoint)
    builders = Builders(boto)
    provider_no_refresh = make_provider(moto_endpoint, instance_refresh=False)
    provider_no_refresh.ensure_fleet(baked_spec(fleet_spec, env, MODEL_V1, builders))
    plan = provider.ensure_fleet(baked_spec(fleet_spec, env, MODEL_V2, builders), dry_run=True)
    details = [c.detail for c in plan.changes if c.kind == "scaling_group"]
    assert "instance refresh" in details


def test_without_a_configure_step_no_builder_is_launched(provider, fleet_spec, boto, env):
    spec = ImageSpec(env=env, release=MODEL_V1, fingerprint="f" * 64)
    with pytest.raises(ProvisionError, match="configure"):
        provider.ensure_release_image(fleet_spec(1), spec)
    assert env_images(boto, env) == []
    assert live_instances(boto, env, ROLE_IMAGE_BUILDER) == []


def test_destroy_deregisters_the_images_and_deletes_their_snapshots(
    provider, fleet_spec, boto, env
):
    builders = Builders(boto)
    for release in (MODEL_V1, MODEL_V2):
        provider.ensure_release_image(fleet_spec(1), image_spec(env, release, builders))
    snapshots = snapshot_ids(env_images(boto, env))
    planned = provider.destroy(env, dry_run=True)
    assert len(env_images(boto, env)) == 2
    removed = provider.destroy(env)
    assert_same(planned, removed)
    assert [c.kind for c in removed].count("image") == 2
    assert env_images(boto, env) == []
    left = {s["SnapshotId"] for s in boto("ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert not snapshots & left
    assert provider.destroy(env) == []
