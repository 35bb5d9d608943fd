"""Resizing an AWS fleet in place, against moto in server mode.

The provider's resize (stop, modify the type, start; the disk grown online), its checks
before anything changes, and the real playbooks/resize.yml run by ansible-playbook over
the inventory plugin: each host leaves the ALB, is resized and rejoins before the next
one starts, as moto's request recording shows. What moto cannot show: a real instance's
boot after the type change (the load balancer's health check is the gate; moto reports
targets healthy at once) and the root file system growing onto the larger volume.
"""

import base64
import json
import re
import subprocess
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import yaml

from mlops_vm.provision import ErrorCode, InstanceSpec, LoadBalancerSpec, ProvisionError
from tests.ansible_cli import ansible_playbook
from tests.providers import test_aws
from tests.providers.cloud_fixtures import resized
from tests.providers.test_aws import FAST, REGION, FakeRefreshes, refresh_details, scaling_spec

# The AWS module's moto server and fixtures, shared rather than written again.
moto_endpoint = test_aws.moto_endpoint
aws_environment = test_aws.aws_environment
boto = test_aws.boto
env = test_aws.env
provider = test_aws.provider
fleet_spec = test_aws.fleet_spec
certificate = test_aws.certificate


def instance_types(boto, instance_ids) -> dict[str, str]:
    reservations = boto("ec2").describe_instances(InstanceIds=list(instance_ids))["Reservations"]
    return {i["InstanceId"]: i["InstanceType"] for r in reservations for i in r["Instances"]}


def record_ec2_calls(provider) -> list[str]:
    seen: list[str] = []
    provider.ctx.client("ec2").meta.events.register(
        "before-call.ec2", lambda model, **_: seen.append(model.name)
    )
    return seen


MUTATING = {"StopInstances", "ModifyInstanceAttribute", "StartInstances", "ModifyVolume"}


def test_the_plan_lists_each_instance_and_changes_nothing(provider, fleet_spec, boto):
    fleet = provider.ensure_fleet(fleet_spec(2))
    calls = record_ec2_calls(provider)
    plan = provider.plan_resizes(resized(fleet_spec(2), "t3.large", disk_gb=30))
    assert set(plan) == {i.id for i in fleet.instances}
    for instance in fleet.instances:
        assert [str(c) for c in plan[instance.id]] == [
            f"update instance {instance.name} (resize t3.small -> t3.large (stop, modify, start))",
            f"update disk {instance.name} (grow 24 -> 30 GiB)",
        ]
    assert not MUTATING & set(calls)
    assert set(instance_types(boto, plan).values()) == {"t3.small"}


def test_resize_changes_type_and_grows_the_disk_then_nothing(provider, fleet_spec, boto):
    fleet = provider.ensure_fleet(fleet_spec(2))
    bigger = resized(fleet_spec(2), "t3.large", disk_gb=30)
    calls = record_ec2_calls(provider)
    first = fleet.instances[0]
    changes = provider.resize_instance(bigger, first)
    assert [(c.kind, c.name) for c in changes] == [("instance", first.name), ("disk", first.name)]
    assert [c for c in calls if c in MUTATING] == [
        "ModifyVolume",
        "StopInstances",
        "ModifyInstanceAttribute",
        "StartInstances",
    ]
    types = instance_types(boto, [i.id for i in fleet.instances])
    assert types == {first.id: "t3.large", fleet.instances[1].id: "t3.small"}
    [after] = [i for i in provider.list_instances(fleet_spec(2).env) if i.id == first.id]
    assert after.status == "running"
    assert after.private_ip == first.private_ip
    volumes = boto("ec2").describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [first.id]}]
    )["Volumes"]
    assert [v["Size"] for v in volumes] == [30]
    assert provider.resize_instance(bigger, first) == []
    assert list(provider.plan_resizes(bigger)) == [fleet.instances[1].id]


@pytest.mark.parametrize(
    ("launched", "wanted", "words"),
    [
        ("t3.small", "m7g.large", "runs a x86_64 image; m7g.large runs arm64 only"),
        ("t2.micro", "t3.small", "does not have ENA enabled, which t3.small requires"),
        ("t3.small", "x9.nothing", "x9.nothing"),
        ("t3.small", "g6.xlarge", "g6.xlarge is not offered in eu-west-1"),
    ],
)
def test_an_incompatible_type_is_refused_before_any_instance_changes(
    provider, fleet_spec, boto, launched, wanted, words
):
    spec = fleet_spec(2, instance=InstanceSpec(machine_type=launched, disk_gb=24))
    fleet = provider.ensure_fleet(spec)
    calls = record_ec2_calls(provider)
    with pytest.raises(ProvisionError) as raised:
        provider.plan_resizes(resized(spec, wanted))
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert words in raised.value.message
    assert not MUTATING & set(calls)
    assert set(instance_types(boto, [i.id for i in fleet.instances]).values()) == {launched}


def test_a_fleet_moves_onto_gpu_instances(provider, fleet_spec, boto):
    fleet = provider.ensure_fleet(fleet_spec(1))
    gpu = resized(fleet_spec(1), "g5.xlarge")
    [change] = provider.plan_resizes(gpu)[fleet.instances[0].id]
    assert change.detail == "resize t3.small -> g5.xlarge (stop, modify, start)"
    provider.resize_instance(gpu, fleet.instances[0])
    assert instance_types(boto, [fleet.instances[0].id]) == {fleet.instances[0].id: "g5.xlarge"}


def test_a_disk_never_shrinks(provider, fleet_spec):
    provider.ensure_fleet(fleet_spec(1))
    with pytest.raises(ProvisionError) as raised:
        provider.plan_resizes(resized(fleet_spec(1), "t3.small", disk_gb=16))
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "disks grow but never shrink" in raised.value.message
    assert "24" in raised.value.hint


def test_a_scaling_group_rolls_a_new_type_by_instance_refresh(provider, fleet_spec, boto):
    refreshes = FakeRefreshes(provider)
    spec = scaling_spec(fleet_spec)
    provider.ensure_fleet(spec)
    bigger = resized(spec, "t3.large")
    assert provider.plan_resizes(bigger) == {}
    result = provider.ensure_fleet(bigger)
    assert refresh_details(result.changes) == ["instance refresh"]
    assert len(refreshes.started) == 1
    [template] = boto("ec2").describe_launch_templates(
        Filters=[{"Name": "tag:mlops-vm/env", "Values": [spec.env]}]
    )["LaunchTemplates"]
    [version] = boto("ec2").describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Default"]
    )["LaunchTemplateVersions"]
    assert version["LaunchTemplateData"]["InstanceType"] == "t3.large"


# --- the playbook: host by host through the release gate -----------------------------------


def write_inventory(directory: Path, name: str, endpoint: str, machine_type: str) -> Path:
    settings = {
        "mlops_vm": {
            "env": name,
            "provider": {
                "name": "aws",
                "region": REGION,
                "endpoint_url": endpoint,
                "options": FAST,
            },
            "fleet": {"count": 2, "machine_type": machine_type, "disk_gb": 24},
            "model": {"image": "registry.example.test/model:1.0"},
            "load_balancer": {"drain_seconds": 1},
        }
    }
    (directory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (directory / "mlops_vm.yml").write_text("---\nplugin: mlops_vm\n")
    (directory / "group_vars" / "all" / "mlops_vm.yml").write_text(yaml.safe_dump(settings))
    return directory


def run_resize_playbook(directory: Path) -> subprocess.CompletedProcess[str]:
    return ansible_playbook(
        *("-i", str(directory), "playbooks/resize.yml"),
        *("-e", "mlops_vm_release_batch=1"),
    )


def recorded_actions(recording: Path) -> list[tuple[str, str]]:
    """(action, instance id) of the gate's and the resize's requests, in order."""
    wanted = {"DeregisterTargets", "RegisterTargets", *MUTATING - {"ModifyVolume"}}
    found = []
    for line in recording.read_text().splitlines():
        entry = json.loads(line)
        body = entry["body"] or ""
        text = base64.b64decode(body).decode() if entry["body_encoded"] else body
        form = {key: values[0] for key, values in parse_qs(text).items()}
        action = form.get("Action", "")
        if action in wanted:
            target = form.get("InstanceId") or form.get("InstanceId.1")
            found.append((action, target or form.get("Targets.member.1.Id", "")))
    return found


def test_the_playbook_resizes_host_by_host_through_the_load_balancer_gate(
    moto_endpoint, provider, fleet_spec, certificate, tmp_path, monkeypatch
):
    fleet = provider.ensure_fleet(fleet_spec(2))
    spec = LoadBalancerSpec(env=fleet_spec(2).env, certificate=certificate, drain_seconds=1)
    provider.ensure_load_balancer(spec, fleet)
    inventory = write_inventory(tmp_path / "inventory", spec.env, moto_endpoint, "t3.large")
    # moto's recorder writes to its working directory: this test's own.
    monkeypatch.chdir(tmp_path)
    requests.post(f"{moto_endpoint}/moto-api/recorder/start-recording", timeout=10)
    try:
        run = run_resize_playbook(inventory)
    finally:
        requests.post(f"{moto_endpoint}/moto-api/recorder/stop-recording", timeout=10)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    actions = recorded_actions(tmp_path / "moto_recording")
    by_name = sorted(fleet.instances, key=lambda i: i.name)
    expected = []
    for instance in by_name:
        expected += [
            ("DeregisterTargets", instance.id),
            ("StopInstances", instance.id),
            ("ModifyInstanceAttribute", instance.id),
            ("StartInstances", instance.id),
            ("RegisterTargets", instance.id),
        ]
    assert actions == expected
    assert {t.instance_id for t in provider.target_health(spec) if t.healthy} == {
        i.id for i in fleet.instances
    }
    again = run_resize_playbook(inventory)
    assert again.returncode == 0, again.stdout[-3000:]
    changed = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", again.stdout, re.M)
    assert {host for host, _ in changed} == {"localhost", *(i.name for i in fleet.instances)}
    assert {count for _, count in changed} == {"0"}
