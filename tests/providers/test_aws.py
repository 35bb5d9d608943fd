"""The AWS provider against moto in server mode (127.0.0.1, a free port).

One moto server per session, seeded with Debian 12 AMIs (MOTO_AMIS_PATH, set before
moto is imported) and reset before every test. What moto cannot show (real health
checks, booting, instance refresh) is covered by the boot test of mlops_vm.bootstrap
and by the Stubber tests in test_aws_errors.py.
"""

import base64
import gzip
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ConnectionClosedError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mlops_vm.provision import (
    AutoscalingSpec,
    CertificateSpec,
    ErrorCode,
    FleetResult,
    FleetSpec,
    InstanceSpec,
    InstanceStatus,
    LoadBalancerSpec,
    NetworkSpec,
    ProviderSettings,
    ProvisionError,
    get_provider,
)
from mlops_vm.provision.aws import AwsProvider
from mlops_vm.provision.aws import names as aws_names
from mlops_vm.provision.model import TAG_ENV, TAG_ROLE
from tests.fakes.aws.cloudwatch import extended_statistics
from tests.providers.cloud_fixtures import self_signed_certificate
from tests.providers.contract import ProviderContract

REGION = "eu-west-1"
DEBIAN_OWNER = "136693071363"
DEBIAN_OLD = "ami-0deb1200000000001"
DEBIAN_NEW = "ami-0deb1200000000002"
DEBIAN_11 = "ami-0deb1100000000001"
IMPOSTOR = "ami-0bad0000000000001"  # a "debian-12-amd64-*" name from another account
SSH_CIDR = "198.51.100.0/24"
FAST = {"poll_interval_s": 0.05, "retry_base_delay_s": 0.01, "wait_timeout_s": 20.0}

# 24 KB of random base64 text: gzip leaves it above 16 KB.
INCOMPRESSIBLE = base64.b64encode(random.Random(7).randbytes(18 * 1024)).decode()


def ami(ami_id: str, name: str, owner: str, created: str) -> dict:
    return {
        "ami_id": ami_id,
        "name": name,
        "description": name,
        "owner_id": owner,
        "public": True,
        "virtualization_type": "hvm",
        "architecture": "x86_64",
        "state": "available",
        "image_type": "machine",
        "hypervisor": "xen",
        "root_device_name": "/dev/xvda",
        "root_device_type": "ebs",
        "sriov": "simple",
        "creation_date": created,
    }


SEED_AMIS = [
    ami(DEBIAN_OLD, "debian-12-amd64-20240101-1600", DEBIAN_OWNER, "2024-01-01T16:00:00.000Z"),
    ami(DEBIAN_NEW, "debian-12-amd64-20250601-2100", DEBIAN_OWNER, "2025-06-01T21:00:00.000Z"),
    ami(DEBIAN_11, "debian-11-amd64-20260101-0000", DEBIAN_OWNER, "2026-01-01T00:00:00.000Z"),
    ami(IMPOSTOR, "debian-12-amd64-29990101-0000", "999999999999", "2029-01-01T00:00:00.000Z"),
]


# --- the moto server --------------------------------------------------------------------


def start_moto_server(ip_address: str, seed_dir: Path, patch: pytest.MonkeyPatch) -> Any:
    """moto in server mode on IP_ADDRESS (a free port), seeded with the Debian AMIs. Every
    module that starts moto starts it here: the first import of moto in the session must
    see MOTO_AMIS_PATH, whichever module comes first."""
    seed = seed_dir / "amis.json"
    seed.write_text(json.dumps(SEED_AMIS))
    # Read when moto's EC2 models are imported and when a backend is created.
    patch.setenv("MOTO_AMIS_PATH", str(seed))
    patch.setenv("MOTO_ACM_VALIDATION_WAIT", "0")
    from moto.ec2.models import amis
    from moto.server import ThreadedMotoServer

    assert {a["ami_id"] for a in amis.AMIS} >= {DEBIAN_NEW}, (
        "moto was imported before MOTO_AMIS_PATH was set: the Debian AMIs are missing"
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
    server = ThreadedMotoServer(ip_address=ip_address, port=0, verbose=False)
    server.start()
    return server


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    patch = pytest.MonkeyPatch()
    server = start_moto_server("127.0.0.1", tmp_path_factory.mktemp("moto"), patch)
    host, port = server.get_host_and_port()
    # CloudWatch's percentile statistics, which moto lacks (status and the canaries ask them).
    with extended_statistics():
        yield f"http://{host}:{port}"
    server.stop()
    patch.undo()


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> None:
    """Dummy credentials only, nothing from this machine's AWS config; a fresh moto."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()


@pytest.fixture
def boto(moto_endpoint: str) -> Callable:
    """A plain boto3 client on moto, to look at what the provider made."""
    import boto3

    def client(service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint)

    return client


def make_provider(endpoint: str, **options) -> AwsProvider:
    settings = ProviderSettings(
        name="aws", region=REGION, endpoint_url=endpoint, options={**FAST, **options}
    )
    provider = get_provider(settings)
    assert isinstance(provider, AwsProvider)
    return provider


# --- certificates -----------------------------------------------------------------------


def write_certificate(directory: Path, common_name: str) -> CertificateSpec:
    cert_file, key_file = self_signed_certificate(directory, common_name)
    return CertificateSpec(cert_file=cert_file, key_file=key_file)


# --- the contract fixtures --------------------------------------------------------------


@pytest.fixture
def env() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def provider(moto_endpoint: str) -> AwsProvider:
    return make_provider(moto_endpoint)


@pytest.fixture
def fleet_spec(env: str) -> Callable[..., FleetSpec]:
    def spec(count: int, **changes) -> FleetSpec:
        values = {
            "env": env,
            "instance": InstanceSpec(machine_type="t3.small", disk_gb=24),
            "count": count,
            "network": NetworkSpec(ssh_cidr=SSH_CIDR),
        }
        values.update(changes)
        return FleetSpec(**values)

    return spec


@pytest.fixture
def certificate(tmp_path: Path) -> CertificateSpec:
    return write_certificate(tmp_path, "model.example.test")


@pytest.fixture
def lb_spec(env: str, certificate: CertificateSpec) -> LoadBalancerSpec:
    return LoadBalancerSpec(env=env, certificate=certificate, drain_seconds=17)


class TestAwsContract(ProviderContract):
    """The contract every provider passes."""


# --- helpers to look at AWS -------------------------------------------------------------


def env_filter(env: str) -> list[dict]:
    return [{"Name": f"tag:{TAG_ENV}", "Values": [env]}]


def tag_map(items: list[dict] | None) -> dict[str, str]:
    return {item["Key"]: item["Value"] for item in items or []}


def env_resources(boto, env: str) -> dict[str, list]:
    """Everything of ENV that the provider could have made, by kind."""
    ec2 = boto("ec2")
    elbv2 = boto("elbv2")
    filters = env_filter(env)
    reservations = ec2.describe_instances(Filters=filters)["Reservations"]
    live = [
        i["InstanceId"]
        for r in reservations
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    balancers = elbv2.describe_load_balancers()["LoadBalancers"]
    groups = elbv2.describe_target_groups()["TargetGroups"]
    certs = boto("acm").list_certificates()["CertificateSummaryList"]
    return {
        "vpcs": ec2.describe_vpcs(Filters=filters)["Vpcs"],
        "subnets": ec2.describe_subnets(Filters=filters)["Subnets"],
        "gateways": ec2.describe_internet_gateways(Filters=filters)["InternetGateways"],
        "route_tables": ec2.describe_route_tables(Filters=filters)["RouteTables"],
        "security_groups": ec2.describe_security_groups(Filters=filters)["SecurityGroups"],
        "instances": live,
        "launch_templates": ec2.describe_launch_templates(Filters=filters)["LaunchTemplates"],
        "key_pairs": ec2.describe_key_pairs(Filters=filters)["KeyPairs"],
        "load_balancers": balancers,
        "target_groups": groups,
        "scaling_groups": boto("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"],
        "certificates": certs,
    }


def raw_instances(boto, instance_ids: list[str]) -> list[dict]:
    reservations = boto("ec2").describe_instances(InstanceIds=instance_ids)["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


# --- network ----------------------------------------------------------------------------


def test_network_is_two_public_subnets_behind_a_gateway(provider, fleet_spec, boto, env):
    result = provider.ensure_fleet(fleet_spec(2))
    ec2 = boto("ec2")
    net = result.network
    [vpc] = ec2.describe_vpcs(VpcIds=[net["vpc_id"]])["Vpcs"]
    assert vpc["CidrBlock"] == "10.42.0.0/16"
    subnets = ec2.describe_subnets(SubnetIds=net["subnet_ids"])["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    assert all(s["MapPublicIpOnLaunch"] for s in subnets)
    [gateway] = ec2.describe_internet_gateways(Filters=env_filter(env))["InternetGateways"]
    assert [a["VpcId"] for a in gateway["Attachments"]] == [vpc["VpcId"]]
    [table] = ec2.describe_route_tables(Filters=env_filter(env))["RouteTables"]
    default = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert default[0]["GatewayId"] == gateway["InternetGatewayId"]
    assert {a["SubnetId"] for a in table["Associations"]} == set(net["subnet_ids"])
    # Everything carries the environment and a role.
    for kind in ("vpcs", "subnets", "gateways", "route_tables", "security_groups"):
        for resource in env_resources(boto, env)[kind]:
            assert tag_map(resource["Tags"])[TAG_ROLE]


def ingress(boto, group_id: str) -> set[tuple]:
    [group] = boto("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    rules = set()
    for permission in group["IpPermissions"]:
        for ip_range in permission.get("IpRanges", []):
            rules.add((permission["FromPort"], ip_range["CidrIp"]))
        for pair in permission.get("UserIdGroupPairs", []):
            rules.add((permission["FromPort"], pair["GroupId"]))
    return rules


def test_instances_admit_only_the_load_balancer_and_ssh_from_its_cidr(provider, fleet_spec, boto):
    net = provider.ensure_fleet(fleet_spec(1)).network
    lb_group, instance_group = net["lb_security_group_id"], net["instance_security_group_id"]
    assert ingress(boto, instance_group) == {(443, lb_group), (22, SSH_CIDR)}
    # Closing SSH and moving the service port converge the rules exactly.
    closed = fleet_spec(1, network=NetworkSpec(ssh_cidr=None), service_port=8443)
    changes = provider.ensure_fleet(closed).changes
    assert {c.detail for c in changes} == {
        f"allow tcp/8443 from {lb_group}",
        f"revoke tcp/443 from {lb_group}",
        f"revoke tcp/22 from {SSH_CIDR}",
    }
    assert ingress(boto, instance_group) == {(8443, lb_group)}


def test_existing_network_is_used_and_never_deleted(provider, fleet_spec, boto, env):
    ec2 = boto("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet_ids = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for cidr, zone in (("10.9.1.0/24", f"{REGION}a"), ("10.9.2.0/24", f"{REGION}b"))
    ]
    group_id = ec2.create_security_group(
        GroupName="theirs", Description="their instances", VpcId=vpc_id
    )["GroupId"]
    network = NetworkSpec(existing={"subnet_ids": subnet_ids, "security_group_id": group_id})
    result = provider.ensure_fleet(fleet_spec(2, network=network))
    assert result.network["vpc_id"] == vpc_id
    assert env_resources(boto, env)["vpcs"] == []  # no VPC of its own
    launched = raw_instances(boto, [i.id for i in result.instances])
    assert {i["SubnetId"] for i in launched} == set(subnet_ids)
    assert {g["GroupId"] for i in launched for g in i["SecurityGroups"]} == {group_id}
    assert ingress(boto, group_id) == set()  # their group is theirs: untouched
    provider.destroy(env)
    assert ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]
    assert ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]


def test_existing_network_must_span_two_zones(provider, fleet_spec, boto):
    ec2 = boto("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.9.1.0/24", AvailabilityZone=f"{REGION}a")
    network = NetworkSpec(existing={"subnet_ids": [subnet["Subnet"]["SubnetId"]]})
    with pytest.raises(ProvisionError) as raised:
        provider.validate(fleet_spec(1, network=network), None)
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "zone" in raised.value.message


# --- instances --------------------------------------------------------------------------


def test_instances_boot_hardened_from_the_newest_debian_12(provider, fleet_spec, boto, env):
    user_data = "#cloud-config\nruncmd: [[touch, /configured]]\n"
    instance = InstanceSpec(
        machine_type="t3.small",
        disk_gb=24,
        user_data=user_data,
        tags={"team": "ml"},
        ssh_public_key=None,
    )
    result = provider.ensure_fleet(fleet_spec(1, instance=instance))
    [raw] = raw_instances(boto, [result.instances[0].id])
    assert raw["ImageId"] == DEBIAN_NEW  # newest of Debian's, not the impostor's or Debian 11
    assert raw["InstanceType"] == "t3.small"
    assert raw["MetadataOptions"]["HttpTokens"] == "required"
    tags = tag_map(raw["Tags"])
    assert (tags[TAG_ENV], tags[TAG_ROLE], tags["team"]) == (env, "model", "ml")
    ec2 = boto("ec2")
    sent = ec2.describe_instance_attribute(InstanceId=raw["InstanceId"], Attribute="userData")
    # gzip'd on the wire: cloud-init gunzips it.
    assert gzip.decompress(base64.b64decode(sent["UserData"]["Value"])).decode() == user_data
    [volume] = ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [raw["InstanceId"]]}]
    )["Volumes"]
    assert (volume["VolumeType"], volume["Encrypted"], volume["Size"]) == ("gp3", True, 24)
    assert tag_map(volume["Tags"])[TAG_ENV] == env


def test_image_given_by_id_or_pattern(provider, fleet_spec, boto):
    by_id = fleet_spec(1, instance=InstanceSpec(machine_type="t3.small", image=DEBIAN_OLD))
    [instance] = provider.ensure_fleet(by_id).instances
    assert raw_instances(boto, [instance.id])[0]["ImageId"] == DEBIAN_OLD
    missing = fleet_spec(1, instance=InstanceSpec(machine_type="t3.small", image="nope-*"))
    with pytest.raises(ProvisionError) as raised:
        provider.validate(missing, None)
    assert raised.value.code == ErrorCode.INVALID_INPUT


def test_key_name_option_and_imported_public_key(moto_endpoint, fleet_spec, boto, env):
    ec2 = boto("ec2")
    ec2.create_key_pair(KeyName="ops")
    with_option = make_provider(moto_endpoint, key_name="ops")
    [instance] = with_option.ensure_fleet(fleet_spec(1)).instances
    assert raw_instances(boto, [instance.id])[0]["KeyName"] == "ops"
    with_option.destroy(env)

    key = ed25519.Ed25519PrivateKey.generate()  # EC2 takes RSA and ED25519 keys
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    imported = make_provider(moto_endpoint)
    spec = fleet_spec(1, instance=InstanceSpec(machine_type="t3.small", ssh_public_key=public))
    [instance] = imported.ensure_fleet(spec).instances
    key_name = raw_instances(boto, [instance.id])[0]["KeyName"]
    assert key_name == f"mlops-vm-{env}"
    assert imported.ensure_fleet(spec).changes == []
    imported.destroy(env)
    assert [p["KeyName"] for p in ec2.describe_key_pairs()["KeyPairs"]] == ["ops"]


def test_fleet_spreads_over_both_zones(provider, fleet_spec):
    instances = provider.ensure_fleet(fleet_spec(4)).instances
    zones = [instance.zone for instance in instances]
    assert sorted(zones) == sorted([f"{REGION}a", f"{REGION}b"] * 2)
    assert [i.name for i in instances] == [f"{fleet_spec(1).env}-model-{n}" for n in range(1, 5)]


# --- load balancer ----------------------------------------------------------------------


def test_load_balancer_layout(provider, fleet_spec, lb_spec, boto):
    fleet = provider.ensure_fleet(fleet_spec(2))
    result = provider.ensure_load_balancer(lb_spec, fleet)
    elbv2 = boto("elbv2")
    [alb] = elbv2.describe_load_balancers(LoadBalancerArns=[result.resources["load_balancer_arn"]])[
        "LoadBalancers"
    ]
    assert (alb["Scheme"], alb["Type"]) == ("internet-facing", "application")
    assert result.endpoint == f"https://{alb['DNSName']}"
    assert {z["SubnetId"] for z in alb["AvailabilityZones"]} == set(fleet.network["subnet_ids"])
    assert alb["SecurityGroups"] == [fleet.network["lb_security_group_id"]]
    assert ingress(boto, fleet.network["lb_security_group_id"]) == {
        (443, "0.0.0.0/0"),
        (80, "0.0.0.0/0"),
    }
    [group] = elbv2.describe_target_groups(TargetGroupArns=[result.resources["target_group_arn"]])[
        "TargetGroups"
    ]
    assert (group["Protocol"], group["Port"], group["HealthCheckPath"]) == (
        "HTTPS",
        443,
        "/healthz",
    )
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=group["TargetGroupArn"])
    delay = {a["Key"]: a["Value"] for a in attributes["Attributes"]}
    assert delay["deregistration_delay.timeout_seconds"] == "17"
    listeners = {
        listener["Port"]: listener
        for listener in elbv2.describe_listeners(LoadBalancerArn=alb["LoadBalancerArn"])[
            "Listeners"
        ]
    }
    https, http = listeners[443], listeners[80]
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"][0]["CertificateArn"] == result.resources["certificate_arn"]
    assert https["DefaultActions"][0]["TargetGroupArn"] == group["TargetGroupArn"]
    redirect = http["DefaultActions"][0]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["StatusCode"] == "HTTP_301"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    # The certificate was imported from the files, once.
    cert = boto("acm").describe_certificate(CertificateArn=result.resources["certificate_arn"])
    assert cert["Certificate"]["Type"] == "IMPORTED"
    assert cert["Certificate"]["DomainName"] == "model.example.test"
    healthy = provider.wait_healthy(lb_spec, expected=2, timeout_s=5, poll_s=0.05)
    assert sorted(t.instance_id for t in healthy) == sorted(i.id for i in fleet.instances)


def test_dry_run_load_balancer_creates_nothing(provider, fleet_spec, lb_spec, boto, env):
    fleet = provider.ensure_fleet(fleet_spec(1))
    plan = provider.ensure_load_balancer(lb_spec, fleet, dry_run=True)
    kinds = {c.kind for c in plan.changes if c.action == "create"}
    assert {"load_balancer", "target_group", "listener", "certificate", "target"} <= kinds
    resources = env_resources(boto, env)
    assert resources["load_balancers"] == resources["target_groups"] == []
    assert resources["certificates"] == []
    assert ingress(boto, fleet.network["lb_security_group_id"]) == set()


def test_targets_follow_the_fleet(provider, fleet_spec, lb_spec, boto):
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(fleet_spec(3)))
    # Shrinking drains the surplus instances from the load balancer, then terminates them.
    shrunk = provider.ensure_fleet(fleet_spec(1))
    drained = [c for c in shrunk.changes if c.kind == "target"]
    assert [c.action for c in drained] == ["delete", "delete"]
    assert all(c.detail == "drain 17s" for c in drained)
    kinds = [c.kind for c in shrunk.changes]
    assert kinds.index("target") < kinds.index("instance")  # drained before terminated
    registered = [t.instance_id for t in provider.target_health(lb_spec)]
    assert registered == [shrunk.instances[0].id]
    assert provider.ensure_load_balancer(lb_spec, shrunk).changes == []
    # Growing registers the new instances.
    grown = provider.ensure_fleet(fleet_spec(2))
    result = provider.ensure_load_balancer(lb_spec, grown)
    assert [(c.action, c.kind) for c in result.changes] == [("create", "target")]
    assert len(provider.wait_healthy(lb_spec, expected=2, timeout_s=5, poll_s=0.05)) == 2
    # A target registered behind the provider's back is deregistered.
    stray = boto("ec2").run_instances(
        ImageId=DEBIAN_NEW, MinCount=1, MaxCount=1, SubnetId=grown.network["subnet_ids"][0]
    )["Instances"][0]["InstanceId"]
    boto("elbv2").register_targets(
        TargetGroupArn=result.resources["target_group_arn"], Targets=[{"Id": stray}]
    )
    result = provider.ensure_load_balancer(lb_spec, grown)
    assert [(c.action, c.kind, c.name) for c in result.changes] == [("delete", "target", stray)]


def test_an_unhealthy_target_keeps_wait_healthy_waiting(provider, fleet_spec, lb_spec, boto):
    fleet = provider.ensure_fleet(fleet_spec(2))
    provider.ensure_load_balancer(lb_spec, fleet)
    # moto reports a stopped instance as not serving: the one state it can show.
    boto("ec2").stop_instances(InstanceIds=[fleet.instances[0].id])
    health = {t.instance_id: t for t in provider.target_health(lb_spec)}
    assert not health[fleet.instances[0].id].healthy
    assert health[fleet.instances[0].id].reason
    with pytest.raises(ProvisionError) as raised:
        provider.wait_healthy(lb_spec, expected=2, timeout_s=0.3, poll_s=0.05)
    assert raised.value.code == ErrorCode.TIMEOUT
    assert fleet.instances[0].id in raised.value.message
    assert len(provider.wait_healthy(lb_spec, expected=1, timeout_s=5, poll_s=0.05)) == 2


def test_new_certificate_files_replace_the_imported_one(
    provider, fleet_spec, lb_spec, boto, tmp_path
):
    fleet = provider.ensure_fleet(fleet_spec(1))
    first = provider.ensure_load_balancer(lb_spec, fleet).resources["certificate_arn"]
    renewed = write_certificate(tmp_path, "renewed.example.test")
    spec = LoadBalancerSpec(env=lb_spec.env, certificate=renewed, drain_seconds=17)
    result = provider.ensure_load_balancer(spec, fleet)
    second = result.resources["certificate_arn"]
    assert second != first
    assert ("update", "listener") in {(c.action, c.kind) for c in result.changes}
    arns = [c["CertificateArn"] for c in boto("acm").list_certificates()["CertificateSummaryList"]]
    assert arns == [second]  # the replaced one is deleted


def test_certificate_by_arn(provider, fleet_spec, lb_spec, boto, certificate):
    acm = boto("acm")
    arn = acm.import_certificate(
        Certificate=Path(certificate.cert_file).read_bytes(),
        PrivateKey=Path(certificate.key_file).read_bytes(),
    )["CertificateArn"]
    spec = LoadBalancerSpec(env=lb_spec.env, certificate=CertificateSpec(arn=arn))
    provider.validate(fleet_spec(1), spec)
    fleet = provider.ensure_fleet(fleet_spec(1))
    imported = provider.ensure_load_balancer(lb_spec, fleet).resources["certificate_arn"]
    result = provider.ensure_load_balancer(spec, fleet)
    assert result.resources["certificate_arn"] == arn
    assert ("delete", "certificate", imported) in {
        (c.action, c.kind, c.name) for c in result.changes
    }
    listed = [c["CertificateArn"] for c in acm.list_certificates()["CertificateSummaryList"]]
    assert listed == [arn]
    provider.destroy(spec.env)
    # Not imported by the provider: not the provider's to delete.
    assert acm.describe_certificate(CertificateArn=arn)["Certificate"]


def test_health_check_and_drain_changes_converge(provider, fleet_spec, lb_spec, boto):
    fleet = provider.ensure_fleet(fleet_spec(1))
    provider.ensure_load_balancer(lb_spec, fleet)
    changed = LoadBalancerSpec(
        env=lb_spec.env, certificate=lb_spec.certificate, health_path="/ready", drain_seconds=5
    )
    result = provider.ensure_load_balancer(changed, fleet)
    assert {c.kind for c in result.changes} == {"target_group"}
    arn = result.resources["target_group_arn"]
    [group] = boto("elbv2").describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
    assert group["HealthCheckPath"] == "/ready"
    assert provider.ensure_load_balancer(changed, fleet).changes == []


# --- releases: one target out of the ALB and back ---------------------------------------


def record_elb_calls(provider: AwsProvider) -> list[str]:
    """ELBv2 operation names, in the order the provider sends them."""
    seen: list[str] = []
    # An event name without the operation catches every operation of the service.
    provider.ctx.client("elbv2").meta.events.register(
        "before-call.elastic-load-balancing-v2", lambda model, **_: seen.append(model.name)
    )
    return seen


def answer_draining(provider: AwsProvider, times: int, *, after: str | None = None) -> list[int]:
    """Answer the next TIMES DescribeTargetHealth calls that name one target with
    `draining`, as ALB does during the deregistration delay (moto skips it); with AFTER,
    only once that operation was sent. Returns [how many are left]."""
    left = [times]
    armed = [after is None]

    def arm(model, **_):
        armed[0] = armed[0] or model.name == after

    def answer(params, **_):
        target = params["body"].get("Targets.member.1.Id")
        if not target or not armed[0] or left[0] == 0:
            return None
        left[0] -= 1
        body = {
            "TargetHealthDescriptions": [
                {
                    "Target": {"Id": target, "Port": 443},
                    "TargetHealth": {
                        "State": "draining",
                        "Reason": "Target.DeregistrationInProgress",
                    },
                }
            ],
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }
        return Answer(200), body

    events = provider.ctx.client("elbv2").meta.events
    events.register("before-call.elastic-load-balancing-v2", arm)
    events.register("before-call.elastic-load-balancing-v2.DescribeTargetHealth", answer)
    return left


def released_fleet(provider, fleet_spec, lb_spec) -> tuple[LoadBalancerSpec, FleetResult]:
    spec = LoadBalancerSpec(env=lb_spec.env, certificate=lb_spec.certificate, drain_seconds=1)
    fleet = provider.ensure_fleet(fleet_spec(2))
    provider.ensure_load_balancer(spec, fleet)
    return spec, fleet


def test_release_cycle_calls_elb_in_order(provider, fleet_spec, lb_spec):
    spec, fleet = released_fleet(provider, fleet_spec, lb_spec)
    target = fleet.instances[0]
    calls = record_elb_calls(provider)
    provider.deregister_target(spec, target)
    provider.register_target(spec, target)
    provider.wait_target_healthy(spec, target.id, timeout_s=5, poll_s=0.05)
    lookups = {"DescribeTargetGroups", "DescribeTags", "DescribeTargetGroupAttributes"}
    assert [call for call in calls if call not in lookups] == [
        "DescribeTargetHealth",  # registered? (then deregister)
        "DeregisterTargets",
        "DescribeTargetHealth",  # waiting until unused
        "DescribeTargetHealth",  # registered? (then register)
        "RegisterTargets",
        "DescribeTargetHealth",  # waiting until healthy
    ]


def test_deregister_returns_only_once_the_target_has_drained(provider, fleet_spec, lb_spec):
    spec, fleet = released_fleet(provider, fleet_spec, lb_spec)
    left = answer_draining(provider, 3, after="DeregisterTargets")
    calls = record_elb_calls(provider)
    assert provider.deregister_target(spec, fleet.instances[0])
    # It kept polling through the three `draining` answers before it returned.
    assert left == [0]
    assert calls.index("DeregisterTargets") < len(calls) - 1


def test_a_target_already_draining_is_waited_for_not_deregistered_again(
    provider, fleet_spec, lb_spec, boto
):
    spec, fleet = released_fleet(provider, fleet_spec, lb_spec)
    arn = provider.ensure_load_balancer(spec, fleet).resources["target_group_arn"]
    target = fleet.instances[0]
    boto("elbv2").deregister_targets(TargetGroupArn=arn, Targets=[{"Id": target.id}])
    calls = record_elb_calls(provider)
    left = answer_draining(provider, 3)
    assert provider.deregister_target(spec, target) == []
    assert left == [0]
    assert "DeregisterTargets" not in calls


def test_a_target_that_never_drains_times_out(moto_endpoint, fleet_spec, lb_spec):
    provider = make_provider(moto_endpoint, drain_margin_s=0.3)
    spec, fleet = released_fleet(provider, fleet_spec, lb_spec)
    answer_draining(provider, 10_000, after="DeregisterTargets")
    with pytest.raises(ProvisionError) as raised:
        provider.deregister_target(spec, fleet.instances[1])
    assert raised.value.code == ErrorCode.TIMEOUT
    assert "drained" in raised.value.message


def test_deregister_sets_the_drain_to_drain_seconds(provider, fleet_spec, lb_spec, boto):
    spec, fleet = released_fleet(provider, fleet_spec, lb_spec)
    longer = LoadBalancerSpec(env=spec.env, certificate=spec.certificate, drain_seconds=2)
    changes = provider.deregister_target(longer, fleet.instances[0])
    assert ("update", "target_group", "drain 2s") in {(c.action, c.kind, c.detail) for c in changes}
    arn = provider.ensure_load_balancer(longer, fleet).resources["target_group_arn"]
    attributes = boto("elbv2").describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "2"} in attributes


def test_dry_run_deregister_keeps_the_target(provider, fleet_spec, lb_spec):
    spec, fleet = released_fleet(provider, fleet_spec, lb_spec)
    calls = record_elb_calls(provider)
    assert provider.deregister_target(spec, fleet.instances[0], dry_run=True)
    assert "DeregisterTargets" not in calls
    assert {t.instance_id for t in provider.target_health(spec) if t.healthy} == {
        i.id for i in fleet.instances
    }


def test_release_refuses_scaling_group_instances_and_a_missing_lb(
    moto_endpoint, fleet_spec, lb_spec
):
    provider = make_provider(moto_endpoint, instance_refresh=False)
    [member, *_] = provider.ensure_fleet(scaling_spec(fleet_spec)).instances
    for call in (provider.deregister_target, provider.register_target):
        with pytest.raises(ProvisionError) as raised:
            call(lb_spec, member)
        assert raised.value.code == ErrorCode.INVALID_INPUT
        assert "instance refresh" in raised.value.hint
    loose = replace(member, tags={})
    with pytest.raises(ProvisionError) as raised:
        provider.deregister_target(lb_spec, loose)
    assert raised.value.code == ErrorCode.NOT_FOUND


# --- scaling group ----------------------------------------------------------------------


def scaling_spec(fleet_spec, user_data: str = "#cloud-config\n# v1\n", **changes) -> FleetSpec:
    values = {
        "mode": "scaling_group",
        "instance": InstanceSpec(machine_type="t3.small", user_data=user_data),
        "count": 2,
        "autoscaling": AutoscalingSpec(
            min_size=1, max_size=4, target_cpu_percent=55.0, target_requests_per_instance=300.0
        ),
    }
    values.update(changes)
    return fleet_spec(values.pop("count"), **values)


def test_scaling_group_with_launch_template_and_policies(
    moto_endpoint, fleet_spec, lb_spec, boto, env
):
    # moto has no instance refresh; the call itself is checked in test_aws_errors.py.
    provider = make_provider(moto_endpoint, instance_refresh=False)
    spec = scaling_spec(fleet_spec)
    fleet = provider.ensure_fleet(spec)
    autoscaling = boto("autoscaling")
    [group] = autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[fleet.network["scaling_group"]]
    )["AutoScalingGroups"]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (1, 4, 2)
    assert set(group["VPCZoneIdentifier"].split(",")) == set(fleet.network["subnet_ids"])
    assert group["LaunchTemplate"]["Version"] == "$Default"
    assert len({instance.name for instance in fleet.instances}) == 2
    ec2 = boto("ec2")
    [version] = ec2.describe_launch_template_versions(
        LaunchTemplateId=group["LaunchTemplate"]["LaunchTemplateId"], Versions=["$Default"]
    )["LaunchTemplateVersions"]
    data = version["LaunchTemplateData"]
    assert gzip.decompress(base64.b64decode(data["UserData"])).decode() == spec.instance.user_data
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["ImageId"] == DEBIAN_NEW
    assert data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    policies = {
        p["PolicyName"]: p["TargetTrackingConfiguration"]
        for p in autoscaling.describe_policies(AutoScalingGroupName=group["AutoScalingGroupName"])[
            "ScalingPolicies"
        ]
    }
    assert [
        c["PredefinedMetricSpecification"]["PredefinedMetricType"] for c in policies.values()
    ] == ["ASGAverageCPUUtilization"]
    assert provider.ensure_fleet(spec).changes == []

    # The load balancer attaches the group and adds the request-count policy.
    result = provider.ensure_load_balancer(lb_spec, fleet)
    [group] = autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[fleet.network["scaling_group"]]
    )["AutoScalingGroups"]
    assert group["TargetGroupARNs"] == [result.resources["target_group_arn"]]
    requests_policy = [
        p["TargetTrackingConfiguration"]
        for p in autoscaling.describe_policies(AutoScalingGroupName=group["AutoScalingGroupName"])[
            "ScalingPolicies"
        ]
        if p["TargetTrackingConfiguration"]["PredefinedMetricSpecification"]["PredefinedMetricType"]
        == "ALBRequestCountPerTarget"
    ]
    label = requests_policy[0]["PredefinedMetricSpecification"]["ResourceLabel"]
    alb_part = result.resources["load_balancer_arn"].split(":loadbalancer/")[1]
    tg_part = result.resources["target_group_arn"].split(":")[-1]
    assert label == f"{alb_part}/{tg_part}"
    assert requests_policy[0]["TargetValue"] == 300.0
    # Its instances registered themselves (the provider registers none in this mode).
    assert not [c for c in result.changes if c.kind == "target"]
    assert len(provider.target_health(lb_spec)) == 2
    again = provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(spec))
    assert again.changes == []


def test_changed_user_data_becomes_the_default_template_version(moto_endpoint, fleet_spec, boto):
    provider = make_provider(moto_endpoint, instance_refresh=False)
    provider.ensure_fleet(scaling_spec(fleet_spec))
    changed = scaling_spec(fleet_spec, user_data="#cloud-config\n# v2\n")
    plan = provider.ensure_fleet(changed, dry_run=True)
    assert [(c.action, c.kind) for c in plan.changes] == [("update", "launch_template")]
    assert "UserData" in plan.changes[0].detail
    result = provider.ensure_fleet(changed)
    assert [(c.action, c.kind) for c in result.changes] == [("update", "launch_template")]
    [template] = boto("ec2").describe_launch_templates(Filters=env_filter(changed.env))[
        "LaunchTemplates"
    ]
    assert template["DefaultVersionNumber"] == 2
    [version] = boto("ec2").describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Default"]
    )["LaunchTemplateVersions"]
    user_data = gzip.decompress(base64.b64decode(version["LaunchTemplateData"]["UserData"]))
    assert user_data.decode().endswith("v2\n")
    assert provider.ensure_fleet(changed).changes == []


def test_scaling_group_size_follows_count_but_not_back_over_the_autoscaler(
    moto_endpoint, fleet_spec, boto
):
    provider = make_provider(moto_endpoint, instance_refresh=False)
    name = provider.ensure_fleet(scaling_spec(fleet_spec)).network["scaling_group"]
    autoscaling = boto("autoscaling")
    # The autoscaler scales out: a later run with the same count leaves that alone.
    autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=3)
    assert provider.ensure_fleet(scaling_spec(fleet_spec)).changes == []
    assert (
        autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][
            0
        ]["DesiredCapacity"]
        == 3
    )
    # A new count is applied.
    provider.ensure_fleet(scaling_spec(fleet_spec, count=1))
    assert (
        autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][
            0
        ]["DesiredCapacity"]
        == 1
    )


def test_scaling_group_count_outside_its_bounds_is_refused(provider, fleet_spec, boto, env):
    spec = scaling_spec(fleet_spec, count=9)
    with pytest.raises(ProvisionError) as raised:
        provider.validate(spec, None)
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert env_resources(boto, env)["vpcs"] == []


def test_switching_modes_replaces_the_instances(moto_endpoint, fleet_spec, boto, env):
    provider = make_provider(moto_endpoint, instance_refresh=False)
    fleet_ids = {i.id for i in provider.ensure_fleet(fleet_spec(2)).instances}
    scaled = provider.ensure_fleet(scaling_spec(fleet_spec))
    assert {c.kind for c in scaled.changes if c.action == "delete"} == {"instance"}
    assert not fleet_ids & {i.id for i in provider.list_instances(env)}
    back = provider.ensure_fleet(fleet_spec(1))
    assert ("delete", "scaling_group") in {(c.action, c.kind) for c in back.changes}
    assert env_resources(boto, env)["launch_templates"] == []


# --- destroy ----------------------------------------------------------------------------


def test_destroy_dry_run_lists_and_keeps_everything(provider, fleet_spec, lb_spec, boto, env):
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(fleet_spec(2)))
    before = env_resources(boto, env)
    plan = provider.destroy(env, dry_run=True)
    kinds = [c.kind for c in plan]
    # Dependency order: what uses a thing goes before the thing.
    order = [
        "listener",
        "load_balancer",
        "target_group",
        "instance",
        "security_group",
        "subnet",
        "route_table",
        "internet_gateway",
        "vpc",
        "certificate",
    ]
    assert [kind for kind in order if kind in kinds] == order
    assert sorted(order, key=kinds.index) == order
    assert env_resources(boto, env) == before


def test_destroy_removes_a_scaling_group_environment(moto_endpoint, fleet_spec, lb_spec, boto, env):
    provider = make_provider(moto_endpoint, instance_refresh=False)
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(scaling_spec(fleet_spec)))
    removed = provider.destroy(env)
    assert [c.kind for c in removed][:1] == ["scaling_group"]
    assert {"launch_template", "load_balancer", "certificate"} <= {c.kind for c in removed}
    assert all(not resources for resources in env_resources(boto, env).values())
    assert provider.destroy(env) == []


def test_a_list_filter_that_lets_others_through_deletes_only_our_resources(
    provider, fleet_spec, boto, env, monkeypatch
):
    provider.ensure_fleet(fleet_spec(2))
    other = f"{env}-eu"
    theirs = {i.id for i in provider.ensure_fleet(fleet_spec(1, env=other)).instances}
    # A filter the server gets wrong or ignores: every environment's resources come back.
    monkeypatch.setattr(aws_names, "env_filters", lambda env, role=None: [])
    provider.ensure_fleet(fleet_spec(1))  # shrinking terminates only our surplus
    provider.destroy(env)
    assert set(env_resources(boto, other)["instances"]) == theirs
    assert len(env_resources(boto, other)["vpcs"]) == 1
    assert env_resources(boto, env)["instances"] == []


# --- validate ---------------------------------------------------------------------------


def assert_invalid(call, *words: str) -> ProvisionError:
    with pytest.raises(ProvisionError) as raised:
        call()
    assert raised.value.code == ErrorCode.INVALID_INPUT, raised.value
    for word in words:
        assert word in str(raised.value)
    return raised.value


def test_validate_refuses_an_unknown_region(moto_endpoint, fleet_spec, boto, env):
    settings = ProviderSettings(
        name="aws", region="eu-wset-1", endpoint_url=moto_endpoint, options=FAST
    )
    error = assert_invalid(
        lambda: get_provider(settings).validate(fleet_spec(1), None), "eu-wset-1"
    )
    assert "eu-west-1" in error.hint  # a suggestion
    assert env_resources(boto, env)["vpcs"] == []


def test_validate_refuses_an_instance_type_the_region_lacks(provider, fleet_spec, boto):
    ec2_east = __import__("boto3").client(
        "ec2", region_name="us-east-1", endpoint_url=boto("ec2").meta.endpoint_url
    )

    def offered(client) -> set[str]:
        pages = client.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="region"
        )
        return {o["InstanceType"] for page in pages for o in page["InstanceTypeOfferings"]}

    only_elsewhere = sorted(offered(ec2_east) - offered(boto("ec2")))
    assert only_elsewhere, "moto lists a type offered in us-east-1 but not in eu-west-1"
    for machine_type in (only_elsewhere[0], "t3.enormous"):
        spec = fleet_spec(1, instance=InstanceSpec(machine_type=machine_type))
        assert_invalid(lambda spec=spec: provider.validate(spec, None), machine_type)
    provider.validate(fleet_spec(1), None)  # t3.small is offered


def test_validate_refuses_a_missing_certificate_arn(provider, fleet_spec, env, boto):
    arn = f"arn:aws:acm:{REGION}:123456789012:certificate/{uuid.uuid4()}"
    spec = LoadBalancerSpec(env=env, certificate=CertificateSpec(arn=arn))
    assert_invalid(lambda: provider.validate(fleet_spec(1), spec), arn)
    assert env_resources(boto, env)["vpcs"] == []


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"network": NetworkSpec(cidr="10.0.0.0/8")}, "cidr"),
        ({"network": NetworkSpec(ssh_cidr="everyone")}, "ssh_cidr"),
        ({"zones": (f"{REGION}a", f"{REGION}z")}, f"{REGION}z"),
        # Random text: what gzip cannot shrink below EC2's limit.
        ({"instance": InstanceSpec(machine_type="t3.small", user_data=INCOMPRESSIBLE)}, "16384"),
        ({"network": NetworkSpec(existing={"vpc": "vpc-1"})}, "vpc"),
    ],
)
def test_validate_refuses_bad_fleet_input(provider, fleet_spec, change, word):
    assert_invalid(lambda: provider.validate(fleet_spec(1, **change), None), word)


def test_validate_refuses_bad_load_balancer_input(provider, fleet_spec, lb_spec, tmp_path):
    spec = fleet_spec(1)
    wrong_port = LoadBalancerSpec(env=spec.env, certificate=lb_spec.certificate, backend_port=8443)
    assert_invalid(lambda: provider.validate(spec, wrong_port), "backend")
    no_cert = LoadBalancerSpec(env=spec.env, certificate=CertificateSpec())
    assert_invalid(lambda: provider.validate(spec, no_cert), "certificate")
    (tmp_path / "empty.crt").write_text("not a certificate")
    not_pem = LoadBalancerSpec(
        env=spec.env,
        certificate=CertificateSpec(
            cert_file=str(tmp_path / "empty.crt"), key_file=lb_spec.certificate.key_file
        ),
    )
    assert_invalid(lambda: provider.validate(spec, not_pem), "PEM")
    provider.validate(spec, lb_spec)


def test_unknown_options_are_refused(moto_endpoint):
    with pytest.raises(ProvisionError) as raised:
        make_provider(moto_endpoint, poll_intervall_s=1)
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "poll_intervall_s" in raised.value.message


def test_every_client_goes_to_the_endpoint(provider, moto_endpoint):
    for service in ("ec2", "elbv2", "autoscaling", "acm"):
        assert provider.ctx.client(service).meta.endpoint_url == moto_endpoint


def test_instance_status_maps_states(provider, fleet_spec, boto, env):
    [instance] = provider.ensure_fleet(fleet_spec(1)).instances
    boto("ec2").stop_instances(InstanceIds=[instance.id])
    [stopped] = provider.list_instances(env)
    assert stopped.status in (InstanceStatus.STOPPING, InstanceStatus.STOPPED)


# --- AWS errors on the way (injected into the real calls to moto) -----------------------


class Answer:
    """What botocore takes from a before-call hook in place of an HTTP exchange."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}


def inject(provider: AwsProvider, service: str, operation: str, *codes: str) -> list[dict]:
    """Answer the next len(CODES) OPERATION calls with those error codes (then go to
    moto); returns the list the calls' parameters are recorded in."""
    pending = list(codes)
    seen: list[dict] = []

    def answer(params, **_):
        seen.append(params)
        if not pending:
            return None
        code = pending.pop(0)
        status = 503 if code in ("Throttling", "RequestLimitExceeded") else 400
        return Answer(status), {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    client = provider.ctx.client(service)
    client.meta.events.register(
        f"before-call.{client.meta.service_model.service_id.hyphenize()}.{operation}", answer
    )
    return seen


# --- lost responses: the request did its work, the answer never came back ---------------


def event_name(client, stage: str, operation: str) -> str:
    return f"{stage}.{client.meta.service_model.service_id.hyphenize()}.{operation}"


def lose_answer_once(provider: AwsProvider, service: str, operation: str) -> None:
    """The next OPERATION reaches moto and is carried out, but the client sees the
    connection drop instead of the answer (and retries)."""
    client = provider.ctx.client(service)
    lost: list[bool] = []

    def drop(**_):
        if not lost:
            lost.append(True)
            raise ConnectionClosedError(endpoint_url=client.meta.endpoint_url)

    client.meta.events.register(event_name(client, "after-call", operation), drop)


def honour_client_tokens(provider: AwsProvider, service: str, operation: str) -> None:
    """What EC2 does and moto does not: a ClientToken seen before gets the first answer
    again, and nothing is made twice."""
    client = provider.ctx.client(service)
    answers: dict[str, tuple] = {}

    def replay(params, context, **_):
        token = params["body"].get("ClientToken")
        context["client_token"] = token
        return answers.get(token)

    def record(http_response, parsed, context, **_):
        if context.get("client_token"):
            answers.setdefault(context["client_token"], (http_response, parsed))

    client.meta.events.register(event_name(client, "before-call", operation), replay)
    client.meta.events.register(event_name(client, "after-call", operation), record)


@pytest.mark.parametrize(
    ("operation", "kind"),
    [
        ("CreateVpc", "vpcs"),  # no client token: the retry adopts the VPC by its tags
        ("CreateInternetGateway", "gateways"),
        ("CreateSubnet", "subnets"),
        ("CreateSecurityGroup", "security_groups"),  # by its name
        ("CreateRouteTable", "route_tables"),  # a ClientToken, the same on the retry
    ],
)
def test_a_lost_create_answer_leaves_one_resource(provider, fleet_spec, boto, env, operation, kind):
    honour_client_tokens(provider, "ec2", operation)
    lose_answer_once(provider, "ec2", operation)
    provider.ensure_fleet(fleet_spec(1))
    expected = {"subnets": 2, "security_groups": 2}.get(kind, 1)
    assert len(env_resources(boto, env)[kind]) == expected
    assert provider.ensure_fleet(fleet_spec(1)).changes == []


def test_a_lost_launch_template_answer_leaves_one_template(provider, fleet_spec, boto, env):
    honour_client_tokens(provider, "ec2", "CreateLaunchTemplate")
    lose_answer_once(provider, "ec2", "CreateLaunchTemplate")
    provider.ensure_fleet(scaling_spec(fleet_spec))
    assert len(env_resources(boto, env)["launch_templates"]) == 1


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (
            "We currently do not have sufficient t3.small capacity in the Availability Zone "
            "you requested (eu-west-1a).",
            ErrorCode.CAPACITY,
        ),
        (
            "You have requested more vCPU capacity than your current vCPU limit of 4 allows.",
            ErrorCode.QUOTA,
        ),
        ("The image id '[ami-0deb1200000000002]' does not exist.", ErrorCode.INVALID_INPUT),
    ],
)
def test_a_scaling_group_that_cannot_launch_fails_at_once_with_the_reason(
    moto_endpoint, fleet_spec, reason, expected
):
    provider = make_provider(moto_endpoint, wait_timeout_s=30)
    autoscaling = provider.ctx.client("autoscaling")
    launched: list[bool] = []

    def group_created(**_):
        launched.append(True)

    def failed_activity(parsed, **_):
        if launched:  # moto records no activities: the one AWS would show
            parsed["Activities"] = [
                {
                    "ActivityId": "a-1",
                    "AutoScalingGroupName": "x",
                    "Cause": "an instance was started in response to a difference",
                    "StartTime": "2026-01-01T00:00:00Z",
                    "StatusCode": "Failed",
                    "StatusMessage": f"Launching a new EC2 instance. Status Reason: {reason} "
                    "Launching EC2 instance failed.",
                }
            ]

    def never_in_service(parsed, **_):  # moto's instances are InService at once
        for group in parsed.get("AutoScalingGroups", []):
            for instance in group.get("Instances", []):
                instance["LifecycleState"] = "Pending"

    for operation, handler in (
        ("CreateAutoScalingGroup", group_created),
        ("DescribeScalingActivities", failed_activity),
        ("DescribeAutoScalingGroups", never_in_service),
    ):
        autoscaling.meta.events.register(event_name(autoscaling, "after-call", operation), handler)
    started = time.monotonic()
    with pytest.raises(ProvisionError) as raised:
        provider.ensure_fleet(scaling_spec(fleet_spec))
    assert time.monotonic() - started < 15  # not the whole wait (30 s)
    assert raised.value.code == expected
    assert reason in raised.value.message


def test_two_tagged_vpcs_are_a_conflict_naming_both(provider, fleet_spec, boto, env):
    ec2 = boto("ec2")
    tag_set = [{"Key": TAG_ENV, "Value": env}, {"Key": TAG_ROLE, "Value": "network"}]
    vpc_ids = [
        ec2.create_vpc(
            CidrBlock="10.42.0.0/16",
            TagSpecifications=[{"ResourceType": "vpc", "Tags": tag_set}],
        )["Vpc"]["VpcId"]
        for _ in range(2)
    ]
    with pytest.raises(ProvisionError) as raised:
        provider.ensure_fleet(fleet_spec(1))
    assert raised.value.code == ErrorCode.CONFLICT
    assert all(vpc_id in raised.value.message for vpc_id in vpc_ids)
    assert env_resources(boto, env)["instances"] == []


def test_throttled_launches_are_retried(provider, fleet_spec):
    calls = inject(provider, "ec2", "RunInstances", "RequestLimitExceeded", "Throttling")
    result = provider.ensure_fleet(fleet_spec(1))
    assert len(result.instances) == 1
    assert len(calls) == 3
    # The same client token each time: a retry never launches a second instance.
    assert len({call["body"]["ClientToken"] for call in calls}) == 1


@pytest.mark.parametrize(
    ("code", "expected", "hint_word"),
    [
        ("InsufficientInstanceCapacity", ErrorCode.CAPACITY, "zones"),
        ("VcpuLimitExceeded", ErrorCode.QUOTA, "Service Quotas"),
        ("UnauthorizedOperation", ErrorCode.PERMISSION, "IAM"),
        ("AuthFailure", ErrorCode.AUTH, "credentials"),
    ],
)
def test_launch_failures_are_classified(provider, fleet_spec, code, expected, hint_word):
    inject(provider, "ec2", "RunInstances", code)
    with pytest.raises(ProvisionError) as raised:
        provider.ensure_fleet(fleet_spec(1))
    assert raised.value.code == expected
    assert raised.value.operation.startswith("launch instance")
    assert hint_word in raised.value.hint


class FakeRefreshes:
    """Instance refreshes answered at the botocore level: moto 5.2.5 implements neither
    StartInstanceRefresh nor DescribeInstanceRefreshes (NotImplementedError). Every other
    call still goes to moto. ERRORS: codes the next StartInstanceRefresh calls answer."""

    def __init__(self, provider: AwsProvider) -> None:
        self.started: list[dict] = []
        self.refreshes: list[dict] = []  # newest first, as AWS lists them
        self.errors: list[str] = []
        # moto shows each instance on the template's current default version, whatever it
        # was launched from: BEHIND says which version the instances really run.
        self.behind: str | None = None
        events = provider.ctx.client("autoscaling").meta.events
        events.register("before-call.auto-scaling.StartInstanceRefresh", self.start)
        events.register("before-call.auto-scaling.DescribeInstanceRefreshes", self.describe)
        events.register("after-call.auto-scaling.DescribeAutoScalingGroups", self.versions)

    def versions(self, parsed, **_):
        for group in parsed.get("AutoScalingGroups", []) if self.behind else []:
            for instance in group.get("Instances", []):
                instance["LaunchTemplate"]["Version"] = self.behind

    def start(self, params, **_):
        if self.errors:
            code = self.errors.pop(0)
            status = 400 if code != "Throttling" else 503
            return Answer(status), {
                "Error": {"Code": code, "Message": f"injected {code}"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            }
        self.started.append(params["body"])
        refresh_id = f"r-{len(self.started)}"
        self.refreshes.insert(0, {"InstanceRefreshId": refresh_id, "Status": "Pending"})
        return Answer(200), {"InstanceRefreshId": refresh_id, "ResponseMetadata": {}}

    def describe(self, params, **_):
        return Answer(200), {"InstanceRefreshes": self.refreshes[:1], "ResponseMetadata": {}}

    def end(self, status: str, reason: str = "") -> None:
        self.refreshes[0].update(Status=status, StatusReason=reason, PercentageComplete=50)


def refresh_details(changes) -> list[str]:
    return [c.detail for c in changes if c.kind == "scaling_group" and "refresh" in c.detail]


V2 = "#cloud-config\n# v2\n"


def test_a_changed_template_rolls_out_by_instance_refresh(provider, fleet_spec):
    refreshes = FakeRefreshes(provider)
    provider.ensure_fleet(scaling_spec(fleet_spec))
    assert provider.ensure_fleet(scaling_spec(fleet_spec)).changes == []
    assert refreshes.started == []
    changed = provider.ensure_fleet(scaling_spec(fleet_spec, user_data=V2))
    assert refresh_details(changed.changes) == ["instance refresh"]
    [refresh] = refreshes.started
    assert refresh["AutoScalingGroupName"] == changed.network["scaling_group"]
    # Launch before terminate, skip what already matches, roll back on its own.
    assert refresh["Preferences.MinHealthyPercentage"] == 100
    assert refresh["Preferences.MaxHealthyPercentage"] == 200
    assert refresh["Preferences.SkipMatching"] == "true"
    assert refresh["Preferences.AutoRollback"] == "true"
    assert refresh["Preferences.InstanceWarmup"] == 900
    assert refresh["DesiredConfiguration.LaunchTemplate.Version"] == "$Default"

    running = provider.ensure_fleet(scaling_spec(fleet_spec, user_data=V2))
    assert refresh_details(running.changes) == ["instance refresh r-1 Pending"]
    refreshes.end("Successful")
    assert provider.ensure_fleet(scaling_spec(fleet_spec, user_data=V2)).changes == []
    # Instances still behind after a refresh that went well: the template moved on meanwhile.
    refreshes.behind = "1"
    again = provider.ensure_fleet(scaling_spec(fleet_spec, user_data=V2))
    assert refresh_details(again.changes) == [
        "instance refresh (2 instance(s) behind launch template version 2)"
    ]
    assert len(refreshes.started) == 2


@pytest.mark.parametrize("status", ["Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"])
def test_a_refresh_that_ended_badly_is_started_again(provider, fleet_spec, status):
    refreshes = FakeRefreshes(provider)
    provider.ensure_fleet(scaling_spec(fleet_spec))
    provider.ensure_fleet(scaling_spec(fleet_spec, user_data=V2))
    refreshes.end(status, "new instances failed their health checks")
    assert provider.ensure_fleet(scaling_spec(fleet_spec, user_data=V2)).changes == []
    refreshes.behind = "1"  # the refresh left (or rolled) instances on version 1
    again = provider.ensure_fleet(scaling_spec(fleet_spec, user_data=V2))
    [detail] = refresh_details(again.changes)
    assert detail.startswith(f"instance refresh restarted (instance refresh r-1 {status}")
    assert "2 instance(s) behind launch template version 2" in detail
    assert len(refreshes.started) == 2


def test_instances_left_behind_without_a_refresh_get_one(moto_endpoint, fleet_spec):
    # An earlier run changed the template and stopped before any refresh started.
    stopped = make_provider(moto_endpoint, instance_refresh=False)
    stopped.ensure_fleet(scaling_spec(fleet_spec))
    stopped.ensure_fleet(scaling_spec(fleet_spec, user_data=V2))
    provider = make_provider(moto_endpoint)
    refreshes = FakeRefreshes(provider)
    refreshes.behind = "1"
    assert provider.ensure_fleet(scaling_spec(fleet_spec, user_data=V2, count=2)).changes
    [refresh] = refreshes.started
    assert refresh["Preferences.SkipMatching"] == "true"
    dry = provider.ensure_fleet(scaling_spec(fleet_spec, user_data=V2), dry_run=True)
    assert refresh_details(dry.changes) == ["instance refresh r-1 Pending"]


def test_a_refresh_already_running_is_reported_not_raised(provider, fleet_spec):
    refreshes = FakeRefreshes(provider)
    provider.ensure_fleet(scaling_spec(fleet_spec))
    refreshes.errors = ["InstanceRefreshInProgress"]
    changed = provider.ensure_fleet(scaling_spec(fleet_spec, user_data=V2))
    assert refresh_details(changed.changes) == [
        "instance refresh already running: run provision again once it has ended"
    ]


@pytest.mark.parametrize(
    ("code", "expected"),
    [("AccessDenied", ErrorCode.PERMISSION), ("Throttling", ErrorCode.THROTTLED)],
)
def test_a_refresh_that_cannot_start_is_an_error(moto_endpoint, fleet_spec, code, expected):
    provider = make_provider(moto_endpoint, retry_attempts=2)
    refreshes = FakeRefreshes(provider)
    provider.ensure_fleet(scaling_spec(fleet_spec))
    refreshes.errors = [code] * 2
    with pytest.raises(ProvisionError) as raised:
        provider.ensure_fleet(scaling_spec(fleet_spec, user_data=V2))
    assert raised.value.code == expected
    assert "instance refresh" in raised.value.operation
    assert refreshes.started == []


def test_nothing_is_written_to_disk(provider, fleet_spec, lb_spec, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(fleet_spec(1)))
    provider.destroy(lb_spec.env)
    assert list(home.rglob("*")) == []


def test_load_balancer_finds_the_network_when_the_fleet_result_lacks_it(
    provider, fleet_spec, lb_spec
):
    fleet = provider.ensure_fleet(fleet_spec(2))
    bare = FleetResult(instances=provider.list_instances(fleet_spec(2).env))
    result = provider.ensure_load_balancer(lb_spec, bare)
    assert result.resources["security_group_id"] == fleet.network["lb_security_group_id"]
    assert len(provider.wait_healthy(lb_spec, expected=2, timeout_s=5, poll_s=0.05)) == 2
    assert provider.ensure_load_balancer(lb_spec, fleet).changes == []


# --- a failure part-way says what was already made --------------------------------------


def test_a_fleet_failing_after_the_vpc_reports_the_vpc(provider, fleet_spec, boto, env):
    inject(provider, "ec2", "CreateInternetGateway", "UnauthorizedOperation")
    with pytest.raises(ProvisionError) as raised:
        provider.ensure_fleet(fleet_spec(2))
    made = [str(change) for change in raised.value.changes_so_far]
    [vpc] = env_resources(boto, env)["vpcs"]  # it does exist
    assert made == [f"create vpc {tag_map(vpc['Tags'])['Name']} (10.42.0.0/16)"]


def test_a_load_balancer_failing_at_the_listener_reports_the_alb(
    provider, fleet_spec, lb_spec, boto
):
    fleet = provider.ensure_fleet(fleet_spec(1))
    inject(provider, "elbv2", "CreateListener", "AccessDenied")
    with pytest.raises(ProvisionError) as raised:
        provider.ensure_load_balancer(lb_spec, fleet)
    kinds = {(change.action, change.kind) for change in raised.value.changes_so_far}
    assert {("create", "target_group"), ("create", "load_balancer")} <= kinds
    assert boto("elbv2").describe_load_balancers()["LoadBalancers"]  # made, and reported


# --- validate: what AWS refuses (or accepts and breaks) only once things exist ----------


def test_validate_refuses_a_key_pair_that_does_not_exist(moto_endpoint, fleet_spec, boto, env):
    missing = make_provider(moto_endpoint, key_name="no-such-key")
    assert_invalid(lambda: missing.validate(fleet_spec(1), None), "key_name", "no-such-key")
    boto("ec2").create_key_pair(KeyName="no-such-key")
    missing.validate(fleet_spec(1), None)
    assert env_resources(boto, env)["vpcs"] == []


def reused_vpc(boto, *, gateway: bool = True) -> tuple[str, list[str]]:
    """A VPC of someone else's, with two subnets in two zones (and an internet gateway)."""
    ec2 = boto("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet_ids = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for cidr, zone in (("10.9.1.0/24", f"{REGION}a"), ("10.9.2.0/24", f"{REGION}b"))
    ]
    if gateway:
        gateway_id = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    return vpc_id, subnet_ids


def group_in(boto, vpc_id: str, name: str) -> str:
    return boto("ec2").create_security_group(GroupName=name, Description=name, VpcId=vpc_id)[
        "GroupId"
    ]


def test_validate_refuses_a_reused_vpc_without_an_internet_gateway(provider, fleet_spec, boto):
    vpc_id, subnet_ids = reused_vpc(boto, gateway=False)
    network = NetworkSpec(existing={"subnet_ids": subnet_ids})
    assert_invalid(
        lambda: provider.validate(fleet_spec(1, network=network), None), vpc_id, "internet gateway"
    )


def test_validate_refuses_a_security_group_of_another_vpc(provider, fleet_spec, boto):
    vpc_id, subnet_ids = reused_vpc(boto)
    other_vpc = boto("ec2").create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    elsewhere = group_in(boto, other_vpc, "elsewhere")
    for key in ("security_group_id", "lb_security_group_id"):
        network = NetworkSpec(existing={"subnet_ids": subnet_ids, key: elsewhere})
        assert_invalid(
            lambda network=network: provider.validate(fleet_spec(1, network=network), None),
            f"existing.{key}",
            elsewhere,
            other_vpc,
            vpc_id,
        )


def test_validate_refuses_a_security_group_that_does_not_admit_the_load_balancer(
    provider, fleet_spec, boto
):
    vpc_id, subnet_ids = reused_vpc(boto)
    lb_group = group_in(boto, vpc_id, "their-lb")
    instances_group = group_in(boto, vpc_id, "their-instances")
    network = NetworkSpec(
        existing={
            "subnet_ids": subnet_ids,
            "security_group_id": instances_group,
            "lb_security_group_id": lb_group,
        }
    )
    spec = fleet_spec(1, network=network)
    error = assert_invalid(lambda: provider.validate(spec, None), instances_group, "admit")
    assert lb_group in error.hint
    boto("ec2").authorize_security_group_ingress(
        GroupId=instances_group,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": spec.service_port,
                "ToPort": spec.service_port,
                "UserIdGroupPairs": [{"GroupId": lb_group}],
            }
        ],
    )
    provider.validate(spec, None)  # now it admits the load balancer's group


def test_validate_refuses_an_env_that_makes_an_internal_alb_name(provider, fleet_spec, lb_spec):
    spec = fleet_spec(1, env="internal-api")
    lb = replace(lb_spec, env="internal-api")
    error = assert_invalid(lambda: provider.validate(spec, lb), "env 'internal-api'", "internal-")
    assert error.operation == "check the names"
