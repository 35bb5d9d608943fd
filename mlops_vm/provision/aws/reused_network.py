"""Checks of a reused network (NetworkSpec.existing) that AWS itself would not make.

AWS accepts an internet-facing ALB in a VPC without an internet gateway, and instances in a
security group that does not admit the ALB: both "work" and leave every target unhealthy.
So these are refused up front, naming the network.existing key to fix. Read calls only.
"""

import ipaddress
from functools import partial
from typing import Any

from mlops_vm.provision.aws import errors, names
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.aws.network import NetworkIds
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import FleetSpec

FIELD = "fleet.network.existing"


invalid = partial(errors.invalid, operation="check the reused network")


def check_internet_gateway(ctx: AwsContext, vpc_id: str) -> None:
    gateways = ctx.call(
        "ec2",
        "describe_internet_gateways",
        "find the VPC's internet gateway",
        Filters=names.filters({"attachment.vpc-id": vpc_id}),
    )["InternetGateways"]
    if not gateways:
        raise invalid(
            f"{FIELD}: VPC {vpc_id} has no internet gateway attached; an internet-facing "
            "load balancer cannot be reached without one",
            f"attach an internet gateway to {vpc_id} (and route 0.0.0.0/0 to it), or leave "
            "network.existing empty to let mlops-vm create the network",
        )


def read_group(ctx: AwsContext, key: str, group_id: str) -> dict[str, Any]:
    try:
        found = ctx.call(
            "ec2",
            "describe_security_groups",
            f"read security group {group_id}",
            GroupIds=[group_id],
        )["SecurityGroups"]
    except ProvisionError as error:
        if error.code != ErrorCode.NOT_FOUND:
            raise
        found = []
    if not found:
        raise invalid(
            f"{FIELD}.{key}: security group {group_id} does not exist in {ctx.region}",
            "give the id of a security group in the reused VPC",
        )
    return found[0]


def check_group_vpc(key: str, group: dict[str, Any], vpc_id: str) -> None:
    if group.get("VpcId") != vpc_id:
        raise invalid(
            f"{FIELD}.{key}: security group {group['GroupId']} belongs to VPC "
            f"{group.get('VpcId') or '(none)'}, not to the reused VPC {vpc_id}",
            "give a security group of the VPC the subnets are in",
        )


def covers_port(permission: dict[str, Any], port: int) -> bool:
    if permission.get("IpProtocol") == "-1":
        return True
    if permission.get("IpProtocol") not in ("tcp", "6"):
        return False
    return permission.get("FromPort", 0) <= port <= permission.get("ToPort", -1)


def admits_load_balancer(
    group: dict[str, Any], port: int, lb_group_id: str | None, subnet_cidrs: list[str]
) -> bool:
    """GROUP lets the ALB reach PORT: from the ALB's group, or from addresses covering every
    subnet the ALB has its nodes in."""
    subnets = [ipaddress.ip_network(cidr) for cidr in subnet_cidrs]
    for permission in group.get("IpPermissions", []):
        if not covers_port(permission, port):
            continue
        sources = {pair.get("GroupId") for pair in permission.get("UserIdGroupPairs", [])}
        if lb_group_id and lb_group_id in sources:
            return True
        ranges = [ipaddress.ip_network(r["CidrIp"]) for r in permission.get("IpRanges", [])]
        if subnets and all(any(s.subnet_of(r) for r in ranges) for s in subnets):
            return True
    return False


def subnet_cidrs(ctx: AwsContext, subnet_ids: list[str]) -> list[str]:
    subnets = ctx.call("ec2", "describe_subnets", "read the given subnets", SubnetIds=subnet_ids)[
        "Subnets"
    ]
    return [subnet["CidrBlock"] for subnet in subnets]


def check_reused_network(ctx: AwsContext, spec: FleetSpec, ids: NetworkIds) -> None:
    """IDS: the reused VPC and subnets, as network.existing_network found them."""
    existing = spec.network.existing
    vpc_id = ids.vpc_id or ""
    check_internet_gateway(ctx, vpc_id)
    lb_group_id = existing.get("lb_security_group_id")
    if lb_group_id:
        check_group_vpc(
            "lb_security_group_id", read_group(ctx, "lb_security_group_id", lb_group_id), vpc_id
        )
    group_id = existing.get("security_group_id")
    if not group_id:
        return  # mlops-vm makes the instances' group, with the rule the ALB needs
    group = read_group(ctx, "security_group_id", group_id)
    check_group_vpc("security_group_id", group, vpc_id)
    cidrs = subnet_cidrs(ctx, ids.subnet_ids)
    if not admits_load_balancer(group, spec.service_port, lb_group_id, cidrs):
        source = f"security group {lb_group_id}" if lb_group_id else "the subnets' CIDRs"
        raise invalid(
            f"{FIELD}.security_group_id: security group {group_id} does not admit the load "
            f"balancer on port {spec.service_port}/tcp; every target would be unhealthy",
            f"add an ingress rule for tcp/{spec.service_port} from {source}"
            + ("" if lb_group_id else " (or give network.existing.lb_security_group_id)"),
        )
