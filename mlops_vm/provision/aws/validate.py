"""Checks made before anything is created: what AWS would refuse halfway through.

Region known, instance type offered in the region (and its zones, when given), image
resolvable, the named key pair existing, reused network IDs real (and usable: see
reused_network), certificate ARN existing, derived ELB names acceptable, sizes and ports
sane, user-data within EC2's 16 KB. Every failure is ProvisionError(INVALID_INPUT) naming the
value to fix. Only read calls are made here.
"""

import difflib
import ipaddress

from mlops_vm.bootstrap.user_data import user_data_bytes
from mlops_vm.provision.aws import (
    certificates,
    errors,
    images,
    load_balancer,
    names,
    network,
    reused_network,
    scaling_group,
    secret_refs,
)
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.aws.errors import invalid
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import FleetSpec, LoadBalancerSpec

USER_DATA_LIMIT_BYTES = 16 * 1024  # EC2: before base64 encoding
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")


def known_regions(ctx: AwsContext) -> set[str]:
    """The regions boto3 knows offline, plus those the endpoint lists (newer ones)."""
    regions: set[str] = set()
    for partition in PARTITIONS:
        regions.update(ctx.session.get_available_regions("ec2", partition_name=partition))
    return regions


def check_region(ctx: AwsContext) -> None:
    region = ctx.region
    known = known_regions(ctx)
    if region in known:
        return
    # Newer than this boto3, or an emulator's list: ask EC2 itself. An unknown region has
    # no endpoint, so the question goes to us-east-1 (or the configured endpoint as it).
    client = ctx.session.client(
        "ec2", region_name="us-east-1", endpoint_url=ctx.settings.endpoint_url
    )
    try:
        listed = client.describe_regions(AllRegions=True)["Regions"]
    except Exception as error:
        raise errors.translate(error, "list the regions") from error
    listed_names = {entry["RegionName"] for entry in listed}
    if region not in listed_names:
        close = difflib.get_close_matches(region, sorted(known | listed_names), n=3)
        raise invalid(
            f"unknown AWS region {region!r}",
            f"did you mean {' or '.join(close)}?" if close else "use a region like eu-west-1",
            "check the region",
        )


def offered_in(
    ctx: AwsContext, machine_type: str, locations: list[str], location_type: str
) -> set[str]:
    """Which of LOCATIONS (zones or regions: LOCATION_TYPE) offer the instance type."""
    offered = ctx.pages(
        "ec2",
        "describe_instance_type_offerings",
        "InstanceTypeOfferings",
        "check that the instance type is offered",
        LocationType=location_type,
        Filters=names.filters({"instance-type": machine_type, "location": locations}),
    )
    return {offer["Location"] for offer in offered}


def check_instance_type(ctx: AwsContext, spec: FleetSpec) -> None:
    machine_type = spec.instance.machine_type
    location_type, locations = (
        ("availability-zone", list(spec.zones)) if spec.zones else ("region", [ctx.region])
    )
    where = offered_in(ctx, machine_type, locations, location_type)
    missing = [location for location in locations if location not in where]
    if missing:
        raise invalid(
            f"instance type {machine_type!r} is not offered in {', '.join(missing)}",
            "choose an instance type this region offers (aws ec2 "
            "describe-instance-type-offerings), or other zones",
            "check the instance type",
        )


def check_zones(ctx: AwsContext, spec: FleetSpec) -> None:
    if not spec.zones:
        return
    available = set(network.available_zones(ctx))
    unknown = [zone for zone in spec.zones if zone not in available]
    if unknown:
        raise invalid(
            f"zone(s) {', '.join(unknown)} not available in {ctx.region}",
            f"use zones of {', '.join(sorted(available))}",
            "check the zones",
        )
    if len(set(spec.zones)) < network.ZONE_COUNT and not spec.network.existing:
        raise invalid(
            f"zones {', '.join(spec.zones)}: the load balancer needs two different zones",
            "list at least two availability zones, or leave zones empty",
            "check the zones",
        )


def check_network(spec: FleetSpec) -> None:
    try:
        cidr = ipaddress.ip_network(spec.network.cidr)
    except ValueError as error:
        raise invalid(f"network.cidr: {error}", "give a CIDR like 10.42.0.0/16") from None
    if cidr.version != 4 or not 16 <= cidr.prefixlen <= 24:
        raise invalid(
            f"network.cidr {cidr} must be IPv4 with a prefix from /16 to /24",
            "a VPC's CIDR is /16../28 and each zone gets a subnet of it",
        )
    if spec.network.ssh_cidr is not None:
        try:
            ipaddress.ip_network(spec.network.ssh_cidr)
        except ValueError as error:
            raise invalid(
                f"network.ssh_cidr: {error}", "give the admins' CIDR, like 203.0.113.0/24"
            ) from None


def check_sizes(spec: FleetSpec) -> None:
    if spec.count < 0:
        raise invalid(f"count {spec.count} is negative", "count is 0 or more")
    if spec.mode == "scaling_group":
        scaling = spec.autoscaling
        if not 0 <= scaling.min_size <= scaling.max_size:
            raise invalid(
                f"autoscaling min_size {scaling.min_size} / max_size {scaling.max_size}",
                "0 <= min_size <= max_size",
            )
        scaling_group.desired_size(spec)
    user_data = spec.instance.user_data or ""
    size = len(user_data_bytes(user_data, "aws"))
    if size > USER_DATA_LIMIT_BYTES:
        raise invalid(
            f"user-data is {size} bytes gzip'd; EC2 takes at most {USER_DATA_LIMIT_BYTES}",
            "compress it (mlops_vm.bootstrap renders compressed user-data) or move files out of it",
        )
    if not 8 <= spec.instance.disk_gb <= 16384:
        raise invalid(f"disk_gb {spec.instance.disk_gb}", "a gp3 volume is 8..16384 GiB here")


def check_load_balancer_spec(spec: FleetSpec, lb: LoadBalancerSpec) -> None:
    """The load balancer's settings, offline (its certificate's existence: below)."""
    if lb.env != spec.env:
        raise invalid(
            f"load balancer env {lb.env!r} differs from the fleet's {spec.env!r}",
            "use one environment name",
        )
    if lb.backend_port != spec.service_port or lb.https_port == lb.http_port:
        raise invalid(
            f"ports: https {lb.https_port}, http {lb.http_port}, backend {lb.backend_port}, "
            f"service {spec.service_port}",
            "backend_port must equal the fleet's service_port; https_port and http_port differ",
        )
    if not lb.health_path.startswith("/"):
        raise invalid(f"health_path {lb.health_path!r}", "a path starting with /")
    if not 0 <= lb.drain_seconds <= 3600:
        raise invalid(f"drain_seconds {lb.drain_seconds}", "ALB takes 0..3600 seconds")
    certificates.check_spec(lb.certificate)
    if lb.certificate.cert_file:
        certificates.read_bundle(lb.certificate.cert_file)


def check_certificate_exists(ctx: AwsContext, lb: LoadBalancerSpec) -> None:
    arn = lb.certificate.arn
    if arn and certificates.describe_certificate(ctx, arn) is None:
        raise invalid(
            f"certificate {arn} does not exist in {ctx.region}",
            "give the ARN of an ACM certificate in the load balancer's region",
            "check the certificate",
        )


def check_names(lb: LoadBalancerSpec) -> None:
    """The ALB and target group names come from the environment's name: ELB refuses some
    (CreateLoadBalancer would fail after the network and the instances exist)."""
    derived = {
        "load balancer": load_balancer.load_balancer_name(lb.env),
        "target group": load_balancer.target_group_name(lb),
    }
    for kind, name in derived.items():
        refusal = names.elb_name_refusal(name)
        if refusal:
            raise invalid(
                f"env {lb.env!r} makes the {kind} name {name!r}, which AWS refuses ({refusal})",
                "rename the environment (mlops_vm.env / the inventory folder), e.g. not "
                f"starting with {names.ELB_RESERVED_PREFIX!r}",
                "check the names",
            )


def check_key_pair(ctx: AwsContext) -> None:
    """The key_name option names a key pair that must exist (RunInstances refuses it only
    after the network is made)."""
    name = ctx.options.key_name
    if not name:
        return
    pairs = ctx.call(
        "ec2",
        "describe_key_pairs",
        "find the key pair",
        Filters=names.filters({"key-name": name}),
    )["KeyPairs"]
    if not pairs:
        raise invalid(
            f"provider.options.key_name: key pair {name!r} does not exist in {ctx.region}",
            "import the public key as that key pair (aws ec2 import-key-pair), or set "
            "fleet.ssh_public_key_file instead of key_name",
            "check the key pair",
        )


def check_existing_network(ctx: AwsContext, spec: FleetSpec) -> None:
    try:
        ids = network.existing_network(ctx, spec)
    except ProvisionError as error:
        if error.code == ErrorCode.NOT_FOUND:
            raise invalid(error.message, "check network.existing's IDs and the region") from None
        raise
    reused_network.check_reused_network(ctx, spec, ids)


def check_offline(spec: FleetSpec, lb: LoadBalancerSpec | None) -> None:
    """What needs no AWS call: the network's CIDRs, sizes, user-data, names, LB settings."""
    check_network(spec)
    check_sizes(spec)
    if lb is not None:
        check_names(lb)
        check_load_balancer_spec(spec, lb)


def validate(ctx: AwsContext, spec: FleetSpec, lb: LoadBalancerSpec | None) -> None:
    check_offline(spec, lb)
    check_region(ctx)
    check_zones(ctx, spec)
    check_instance_type(ctx, spec)
    images.resolve_image(ctx, spec.instance.image)
    check_key_pair(ctx)
    if spec.network.existing:
        check_existing_network(ctx, spec)
    if lb is not None:
        check_certificate_exists(ctx, lb)
    if spec.instance.boot is not None:
        # The instances read these at boot: one missing would fail every launch.
        secret_refs.check_secrets_exist(ctx, dict(spec.instance.boot.fields), "fleet.secrets")
