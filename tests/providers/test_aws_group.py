"""Rollback, status and drain of an AWS Auto Scaling group, against moto in server mode.

Each release records itself on the launch template version (the tags it gives instances)
and on the group (its release, the one it replaced); a rollback makes the previous
release's template version the default again and starts an instance refresh. moto 5.2.5
answers StartInstanceRefresh with NotImplementedError, so the refresh is recorded by
test_aws.FakeRefreshes; moto also shows every instance on the template's current default
version and each InService at once, and DescribeScalingActivities lists the launches it
made ("Launching a new EC2 instance: i-...").
"""

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from mlops_vm.provision import InstanceSpec
from mlops_vm.provision.model import TAG_PREVIOUS_RELEASE, TAG_RELEASE
from tests.providers import test_aws
from tests.providers.test_aws import FakeRefreshes, env_filter, refresh_details, scaling_spec

# The AWS module's moto server and fixtures, shared rather than written again.
moto_endpoint = test_aws.moto_endpoint
aws_environment = test_aws.aws_environment
boto = test_aws.boto
env = test_aws.env
provider = test_aws.provider
fleet_spec = test_aws.fleet_spec
certificate = test_aws.certificate
lb_spec = test_aws.lb_spec

V1 = "registry.example:5000/model:v1"
V2 = "registry.example:5000/model:v2"


def release_spec(fleet_spec, release: str):
    """A scaling group serving RELEASE: its user-data pulls that image, as the rendered
    boot configuration does."""
    instance = InstanceSpec(
        machine_type="t3.small", user_data=f"#cloud-config\n# pull {release}\n", release=release
    )
    return scaling_spec(fleet_spec, instance=instance)


def answer_with(provider, operation: str, change, service: str = "auto-scaling") -> None:
    """moto's parsed answer to OPERATION, as CHANGE(parsed) makes it (what moto cannot show)."""

    def hook(parsed, **_):
        parsed.update(change(parsed))

    client = provider.ctx.client("elbv2" if service.startswith("elastic") else "autoscaling")
    client.meta.events.register(f"after-call.{service}.{operation}", hook)


def group_tags(boto, name: str) -> dict[str, str]:
    [group] = boto("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ]
    return {tag["Key"]: tag["Value"] for tag in group["Tags"]}


def default_version(boto, env: str) -> int:
    [template] = boto("ec2").describe_launch_templates(Filters=env_filter(env))["LaunchTemplates"]
    return template["DefaultVersionNumber"]


def test_a_release_records_what_it_replaced(provider, fleet_spec, boto, env):
    refreshes = FakeRefreshes(provider)
    name = provider.ensure_fleet(release_spec(fleet_spec, V1)).network["scaling_group"]
    assert group_tags(boto, name)[TAG_RELEASE] == V1
    assert TAG_PREVIOUS_RELEASE not in group_tags(boto, name)
    assert provider.previous_release(env) is None

    plan = provider.ensure_fleet(release_spec(fleet_spec, V2), dry_run=True)
    done = provider.ensure_fleet(release_spec(fleet_spec, V2))
    assert [str(c) for c in plan.changes] == [str(c) for c in done.changes]
    assert f"release {V2} (previous: {V1})" in [c.detail for c in done.changes]
    tags = group_tags(boto, name)
    assert (tags[TAG_RELEASE], tags[TAG_PREVIOUS_RELEASE]) == (V2, V1)
    assert provider.previous_release(env) == V1
    # Both versions kept, each naming the release it launches.
    [template] = boto("ec2").describe_launch_templates(Filters=env_filter(env))["LaunchTemplates"]
    versions = boto("ec2").describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"]
    )["LaunchTemplateVersions"]
    released = {
        v["VersionNumber"]: {
            t["Key"]: t["Value"] for t in v["LaunchTemplateData"]["TagSpecifications"][0]["Tags"]
        }[TAG_RELEASE]
        for v in versions
    }
    assert released == {1: V1, 2: V2}
    refreshes.end("Successful")
    assert provider.ensure_fleet(release_spec(fleet_spec, V2)).changes == []


def test_rollback_returns_the_group_to_the_previous_template_version(
    provider, fleet_spec, boto, env
):
    refreshes = FakeRefreshes(provider)
    provider.ensure_fleet(release_spec(fleet_spec, V1))
    name = provider.ensure_fleet(release_spec(fleet_spec, V2)).network["scaling_group"]
    assert default_version(boto, env) == 2
    refreshes.end("Successful")

    previous = provider.previous_release(env)
    assert previous == V1
    plan = provider.ensure_fleet(release_spec(fleet_spec, previous), dry_run=True)
    assert default_version(boto, env) == 2  # the plan changed nothing
    rolled = provider.ensure_fleet(release_spec(fleet_spec, previous))
    assert [str(c) for c in plan.changes] == [str(c) for c in rolled.changes]
    details = [c.detail for c in rolled.changes]
    # The very version it ran before, no new one; rolled out by a health-gated refresh.
    assert any(d.startswith("default version 1 again") for d in details)
    assert default_version(boto, env) == 1
    assert refresh_details(rolled.changes) == ["instance refresh"]
    assert refreshes.started[-1]["DesiredConfiguration.LaunchTemplate.Version"] == "$Default"
    tags = group_tags(boto, name)
    assert (tags[TAG_RELEASE], tags[TAG_PREVIOUS_RELEASE]) == (V1, V2)
    status = provider.group_status(env)
    assert (status.release, status.previous_release) == (V1, V2)
    assert {instance.release for instance in status.instances} == {V1}
    refreshes.end("Successful")
    assert provider.ensure_fleet(release_spec(fleet_spec, V1)).changes == []


def test_status_lists_instances_with_release_lifecycle_and_health(
    provider, fleet_spec, lb_spec, boto, env
):
    FakeRefreshes(provider)
    assert provider.group_status(env) is None
    fleet = provider.ensure_fleet(release_spec(fleet_spec, V1))
    status = provider.group_status(env)
    assert (status.name, status.min_size, status.desired, status.max_size) == (
        fleet.network["scaling_group"],
        1,
        2,
        4,
    )
    assert status.release == V1
    assert len(status.instances) == 2
    for instance in status.instances:
        assert instance.id.startswith("i-")
        assert instance.zone and instance.zone.startswith(test_aws.REGION)
        assert (instance.release, instance.lifecycle) == (V1, "in_service")
        assert instance.lb_healthy is None  # no load balancer yet
    assert status.activities == ()  # moto 5.2.5 records no scaling activity

    # AWS's answer, as DescribeScalingActivities gives it: newest first, with its cause.
    started = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)
    answer = {
        "ActivityId": "a-1",
        "AutoScalingGroupName": status.name,
        "Description": "Launching a new EC2 instance: i-0abc",
        "Cause": "At 2026-12-05T16:00:00Z a monitor alarm TargetTracking-AlarmHigh in state "
        "ALARM triggered policy mlops-vm-cpu-target changing the desired capacity from 2 to 3.",
        "StartTime": started,
        "StatusCode": "Successful",
        "Progress": 100,
    }
    answer_with(provider, "DescribeScalingActivities", lambda parsed: {"Activities": [answer]})
    [activity] = provider.group_status(env).activities
    assert activity.at == started.isoformat()
    assert activity.description == answer["Description"]
    assert "from 2 to 3" in activity.cause and activity.status == "Successful"

    provider.ensure_load_balancer(lb_spec, fleet)
    status = provider.group_status(env)
    assert {i.lb_healthy for i in status.instances} == {True}
    assert status.problems() == []


def test_status_says_what_is_wrong(provider, fleet_spec, lb_spec, boto, env):
    FakeRefreshes(provider)
    fleet = provider.ensure_fleet(release_spec(fleet_spec, V1))
    provider.ensure_load_balancer(lb_spec, fleet)
    status = provider.group_status(env)
    sick = status.instances[0]

    def draining(parsed: dict) -> dict:
        # moto deregisters at once: AWS shows the target draining for the deregistration delay.
        for description in parsed["TargetHealthDescriptions"]:
            if description["Target"]["Id"] == sick.id:
                description["TargetHealth"] = {
                    "State": "draining",
                    "Reason": "Target.DeregistrationInProgress",
                }
        return parsed

    answer_with(provider, "DescribeTargetHealth", draining, service="elastic-load-balancing-v2")
    status = provider.group_status(env)
    [draining] = [i for i in status.instances if i.id == sick.id]
    assert draining.lifecycle == "draining"
    assert status.problems() == [f"1 of {status.desired} desired instances in service"]
    # An instance on another release than the group's is a problem too.
    other = replace(status.instances[1], release=V2)
    mixed = replace(status, instances=(status.instances[0], other))
    assert any(f"runs {V2}" in p for p in mixed.problems())


def test_scale_in_drains_by_the_target_groups_deregistration_delay(
    provider, fleet_spec, lb_spec, boto
):
    """The ASG deregisters an instance it scales in from its target groups and terminates it
    only once the deregistration delay (drain_seconds) is over: no lifecycle hook needed."""
    FakeRefreshes(provider)
    fleet = provider.ensure_fleet(release_spec(fleet_spec, V1))
    result = provider.ensure_load_balancer(replace(lb_spec, drain_seconds=45), fleet)
    attributes = {
        a["Key"]: a["Value"]
        for a in boto("elbv2").describe_target_group_attributes(
            TargetGroupArn=result.resources["target_group_arn"]
        )["Attributes"]
    }
    assert attributes["deregistration_delay.timeout_seconds"] == "45"
    [group] = boto("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[fleet.network["scaling_group"]]
    )["AutoScalingGroups"]
    assert group["TargetGroupARNs"] == [result.resources["target_group_arn"]]
    assert group["HealthCheckType"] == "ELB"


@pytest.mark.parametrize("release", [None, V1])
def test_a_group_without_a_previous_release_has_nothing_to_roll_back_to(
    provider, fleet_spec, env, release
):
    FakeRefreshes(provider)
    spec = release_spec(fleet_spec, V1)
    provider.ensure_fleet(replace(spec, instance=replace(spec.instance, release=release)))
    assert provider.previous_release(env) is None


# --- through the CLI: deploy, rollback (--check first) and status ------------------------


def test_cli_rollback_and_status_of_a_scaling_group(tmp_path, moto_endpoint, boto):
    """`deploy`, `rollback --check`, `rollback`, `status --json` on a scaling group, the
    playbooks and modules as against AWS (moto has no instance refresh: turned off)."""
    from tests.e2e.test_aws_cli import aws_env
    from tests.environments import cli_json

    env = f"asg{uuid.uuid4().hex[:8]}"
    options = {**test_aws.FAST, "instance_refresh": False}
    directory = aws_env(
        tmp_path,
        env,
        moto_endpoint,
        provider={"options": options},
        # The cold boot: baking needs SSH into a builder, which moto's instances have not
        # (the baked path's CLI run: tests/e2e/test_image_cli.py, in check mode).
        fleet={"mode": "scaling_group", "count": 2, "bake_image": False},
        # No registry login: a scaling group on AWS would read it at boot by reference
        # (fleet.secrets), which is not what this test is about.
        model={"image": V1, "registry": {"username": "", "password": ""}},
    )
    code, nothing = cli_json("rollback", str(directory))
    assert code != 0 and "nothing to roll back to" in json_text(nothing)
    for image in (V1, V2):
        code, deployed = cli_json("deploy", str(directory), "--image", image)
        assert code == 0, deployed
    assert default_version(boto, env) == 2

    code, plan = cli_json("rollback", str(directory), "--check")
    assert code == 0, plan
    assert default_version(boto, env) == 2
    code, done = cli_json("rollback", str(directory))
    assert code == 0, done
    assert plan["planned"] == done["changes"]
    assert any("default version 1 again" in line for line in done["changes"])
    assert default_version(boto, env) == 1

    code, status = cli_json("status", str(directory), "--json")
    assert code == 0, status
    group = status["scaling_group"]
    assert (group["release"], group["previous_release"]) == (V1, V2)
    assert (group["min_size"], group["desired"], group["max_size"]) == (1, 2, 3)
    assert [(i["release"], i["lifecycle"]) for i in status["instances"]] == [(V1, "in_service")] * 2
    # Rolling back again goes forward to what the first rollback left.
    assert cli_json("rollback", str(directory))[0] == 0
    assert default_version(boto, env) == 2


def json_text(payload: dict) -> str:
    import json

    return json.dumps(payload)
