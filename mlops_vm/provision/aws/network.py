"""The environment's network: a VPC with public subnets in two zones, or one it reuses.

Owned network (NetworkSpec.existing empty): VPC, internet gateway, one public subnet per
zone (two zones unless FleetSpec.zones says otherwise), a route table with the default
route to the gateway, and two security groups: the load balancer's and the instances'.
The instances' group admits the load balancer's group on the service port and SSH from
NetworkSpec.ssh_cidr only; the load balancer's ingress is converged by load_balancer.py,
which knows its ports.

Reused network (NetworkSpec.existing): vpc_id (or derived from the subnets), subnet_ids,
and optionally security_group_id (the instances' group, left as it is: it must admit the
load balancer) and lb_security_group_id. Whatever is not given is created and owned.
"""

import ipaddress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.aws import errors, names
from mlops_vm.provision.aws import security_groups as sg
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ErrorCode, reporting_changes
from mlops_vm.provision.model import ROLE_LB, ROLE_NETWORK, FleetSpec

EXISTING_KEYS = frozenset({"vpc_id", "subnet_ids", "security_group_id", "lb_security_group_id"})
ZONE_COUNT = 2
SSH_PORT = 22
# Each zone's subnet gets this many more prefix bits than the VPC (a /16 gives /20s).
SUBNET_EXTRA_BITS = 4
invalid = partial(errors.invalid, operation="check the network")


@dataclass
class NetworkIds:
    """What the fleet lives in; ids are stand-ins (names.planned) where a dry run would
    create the resource."""

    vpc_id: str | None
    subnet_ids: list[str] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    instance_security_group_id: str | None = None
    lb_security_group_id: str | None = None
    owned: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "vpc_id": self.vpc_id,
            "subnet_ids": list(self.subnet_ids),
            "zones": list(self.zones),
            "security_group_ids": [self.instance_security_group_id],
            "instance_security_group_id": self.instance_security_group_id,
            "lb_security_group_id": self.lb_security_group_id,
            "owned_network": self.owned,
        }


def network_name(env: str) -> str:
    return names.base_name(env, ROLE_NETWORK)


def network_tags(spec: FleetSpec, name: str) -> dict[str, str]:
    return names.tag_dict(spec.env, ROLE_NETWORK, name, spec.instance.tags)


def subnet_cidrs(vpc_cidr: str) -> list[str]:
    network = ipaddress.ip_network(vpc_cidr)
    new_prefix = min(network.prefixlen + SUBNET_EXTRA_BITS, 28)
    return [str(subnet) for subnet in network.subnets(new_prefix=new_prefix)]


def available_zones(ctx: AwsContext) -> list[str]:
    zones = ctx.call(
        "ec2",
        "describe_availability_zones",
        "list the availability zones",
        Filters=names.filters({"state": "available", "zone-type": "availability-zone"}),
    )["AvailabilityZones"]
    return sorted(zone["ZoneName"] for zone in zones)


def choose_zones(ctx: AwsContext, wanted: tuple[str, ...]) -> list[str]:
    if wanted:
        return list(wanted)
    zones = available_zones(ctx)
    if len(zones) < ZONE_COUNT:
        raise errors.failure(
            ErrorCode.CAPACITY,
            f"region {ctx.region} offers {len(zones)} availability zone(s); the load "
            f"balancer needs {ZONE_COUNT}",
            "choose another region",
            "choose availability zones",
        )
    return zones[:ZONE_COUNT]


# --- VPC, gateway, subnets, routes ------------------------------------------------------


def find_vpc(ctx: AwsContext, env: str) -> dict[str, Any] | None:
    vpcs = names.tagged_ec2(ctx, env, "describe_vpcs", "find the VPC", "Vpcs", ROLE_NETWORK)
    return names.only_one(vpcs, "VPC", "VpcId", env)


def adopted(key: str, resource: dict[str, Any] | None) -> dict[str, Any] | None:
    """RESOURCE found after a failed create, shaped like the create's answer."""
    return None if resource is None else {key: resource}


def create_vpc(ctx: AwsContext, spec: FleetSpec, name: str) -> str:
    # CreateVpc takes no client token: a retry first adopts what a lost answer made.
    vpc_id = ctx.create(
        "ec2",
        "create_vpc",
        "create the VPC",
        adopt=lambda: adopted("Vpc", find_vpc(ctx, spec.env)),
        CidrBlock=spec.network.cidr,
        TagSpecifications=names.tag_specifications("vpc", network_tags(spec, name)),
    )["Vpc"]["VpcId"]
    ctx.wait_for(lambda: vpc_state(ctx, vpc_id) == "available", f"VPC {vpc_id} is available")
    # Instances get public DNS names, which the load balancer's health checks do not need
    # but people debugging an instance do.
    for attribute in ("EnableDnsSupport", "EnableDnsHostnames"):
        ctx.call(
            "ec2",
            "modify_vpc_attribute",
            "turn on DNS in the VPC",
            VpcId=vpc_id,
            **{attribute: {"Value": True}},
        )
    return vpc_id


def vpc_state(ctx: AwsContext, vpc_id: str) -> str:
    vpcs = ctx.call("ec2", "describe_vpcs", "read the VPC", VpcIds=[vpc_id])["Vpcs"]
    return vpcs[0]["State"] if vpcs else ""


def ensure_vpc(ctx: AwsContext, spec: FleetSpec, log: ChangeLog) -> str:
    name = network_name(spec.env)
    vpc = find_vpc(ctx, spec.env)
    if vpc:
        if vpc["CidrBlock"] != spec.network.cidr:
            raise errors.failure(
                ErrorCode.CONFLICT,
                f"the environment's VPC {vpc['VpcId']} has CIDR {vpc['CidrBlock']}, the "
                f"spec asks for {spec.network.cidr}",
                "a VPC's CIDR cannot change: keep network.cidr, or destroy the environment first",
                "check the VPC",
            )
        return vpc["VpcId"]
    return log.create(
        "vpc",
        name,
        lambda: create_vpc(ctx, spec, name),
        spec.network.cidr,
        planned=names.planned("vpc", name),
    )


def find_internet_gateway(ctx: AwsContext, env: str) -> dict[str, Any] | None:
    gateways = names.tagged_ec2(
        ctx,
        env,
        "describe_internet_gateways",
        "find the internet gateway",
        "InternetGateways",
        ROLE_NETWORK,
    )
    return names.only_one(gateways, "internet gateway", "InternetGatewayId", env)


def create_internet_gateway(ctx: AwsContext, spec: FleetSpec, name: str, vpc_id: str) -> str:
    """A new gateway, attached to VPC_ID (the attachment is part of its creation)."""
    gateway_id = ctx.create(
        "ec2",
        "create_internet_gateway",
        "create the internet gateway",
        adopt=lambda: adopted("InternetGateway", find_internet_gateway(ctx, spec.env)),
        TagSpecifications=names.tag_specifications("internet-gateway", network_tags(spec, name)),
    )["InternetGateway"]["InternetGatewayId"]
    attach_internet_gateway(ctx, gateway_id, vpc_id)
    return gateway_id


def attach_internet_gateway(ctx: AwsContext, gateway_id: str, vpc_id: str) -> None:
    ctx.call(
        "ec2",
        "attach_internet_gateway",
        "attach the internet gateway to the VPC",
        InternetGatewayId=gateway_id,
        VpcId=vpc_id,
    )


def ensure_internet_gateway(ctx: AwsContext, spec: FleetSpec, vpc_id: str, log: ChangeLog) -> str:
    name = network_name(spec.env)
    gateway = find_internet_gateway(ctx, spec.env)
    if gateway is None:
        return log.create(
            "internet_gateway",
            name,
            lambda: create_internet_gateway(ctx, spec, name, vpc_id),
            planned=names.planned("igw", name),
        )
    gateway_id = gateway["InternetGatewayId"]
    if vpc_id not in {a["VpcId"] for a in gateway.get("Attachments", [])}:
        log.update(
            "internet_gateway",
            name,
            lambda: attach_internet_gateway(ctx, gateway_id, vpc_id),
            f"attach to {vpc_id}",
        )
    return gateway_id


def find_subnets(ctx: AwsContext, env: str) -> list[dict[str, Any]]:
    return names.tagged_ec2(
        ctx, env, "describe_subnets", "find the subnets", "Subnets", ROLE_NETWORK
    )


def subnets_by_zone(ctx: AwsContext, env: str) -> dict[str, dict[str, Any]]:
    """The environment's subnet in each zone (two in one zone: CONFLICT, naming both)."""
    zones: dict[str, list[dict[str, Any]]] = {}
    for subnet in find_subnets(ctx, env):
        zones.setdefault(subnet["AvailabilityZone"], []).append(subnet)
    return {
        zone: subnet
        for zone, found in zones.items()
        if (subnet := names.only_one(found, f"subnet in {zone}", "SubnetId", env)) is not None
    }


def create_subnet(
    ctx: AwsContext, spec: FleetSpec, vpc_id: str, name: str, cidr: str, zone: str
) -> str:
    subnet_id = ctx.create(
        "ec2",
        "create_subnet",
        f"create a subnet in {zone}",
        adopt=lambda: adopted("Subnet", subnets_by_zone(ctx, spec.env).get(zone)),
        VpcId=vpc_id,
        CidrBlock=cidr,
        AvailabilityZone=zone,
        TagSpecifications=names.tag_specifications("subnet", network_tags(spec, name)),
    )["Subnet"]["SubnetId"]
    # Public subnets: instances get a public address (the ALB reaches them privately,
    # but they need the internet for packages and the model image).
    ctx.call(
        "ec2",
        "modify_subnet_attribute",
        "give the subnet's instances public addresses",
        SubnetId=subnet_id,
        MapPublicIpOnLaunch={"Value": True},
    )
    return subnet_id


def ensure_subnets(
    ctx: AwsContext, spec: FleetSpec, vpc_id: str, zones: list[str], log: ChangeLog
) -> list[str]:
    """One public subnet per zone, in zone order."""
    existing = subnets_by_zone(ctx, spec.env)
    used = {subnet["CidrBlock"] for subnet in existing.values()}
    free_cidrs = [cidr for cidr in subnet_cidrs(spec.network.cidr) if cidr not in used]
    subnet_ids: list[str] = []
    for zone in zones:
        subnet = existing.get(zone)
        if subnet:
            subnet_ids.append(subnet["SubnetId"])
            continue
        cidr = free_cidrs.pop(0)
        name = f"{network_name(spec.env)}-{zone}"
        subnet_ids.append(
            log.create(
                "subnet",
                name,
                lambda name=name, cidr=cidr, zone=zone: create_subnet(
                    ctx, spec, vpc_id, name, cidr, zone
                ),
                f"{cidr} in {zone}",
                planned=names.planned("subnet", name),
            )
        )
    return subnet_ids


def find_route_table(ctx: AwsContext, env: str) -> dict[str, Any] | None:
    tables = names.tagged_ec2(
        ctx, env, "describe_route_tables", "find the route table", "RouteTables", ROLE_NETWORK
    )
    return names.only_one(tables, "route table", "RouteTableId", env)


def set_default_route(
    ctx: AwsContext, table_id: str, gateway_id: str, *, replace: bool = False
) -> None:
    ctx.call(
        "ec2",
        "replace_route" if replace else "create_route",
        "route the subnets to the internet gateway",
        RouteTableId=table_id,
        DestinationCidrBlock="0.0.0.0/0",
        GatewayId=gateway_id,
    )


def associate(ctx: AwsContext, table_id: str, subnet_id: str) -> None:
    ctx.call(
        "ec2",
        "associate_route_table",
        "associate the route table with a subnet",
        RouteTableId=table_id,
        SubnetId=subnet_id,
    )


def create_route_table(
    ctx: AwsContext,
    spec: FleetSpec,
    name: str,
    vpc_id: str,
    gateway_id: str,
    subnet_ids: list[str],
) -> str:
    """A new table with its default route and subnets (all part of its creation)."""
    # CreateRouteTable takes a ClientToken: ctx.call gives it one its retries share.
    table_id = ctx.call(
        "ec2",
        "create_route_table",
        "create the route table",
        VpcId=vpc_id,
        TagSpecifications=names.tag_specifications("route-table", network_tags(spec, name)),
    )["RouteTable"]["RouteTableId"]
    set_default_route(ctx, table_id, gateway_id)
    for subnet_id in subnet_ids:
        associate(ctx, table_id, subnet_id)
    return table_id


def ensure_routes(
    ctx: AwsContext,
    spec: FleetSpec,
    vpc_id: str,
    gateway_id: str,
    subnet_ids: list[str],
    log: ChangeLog,
) -> None:
    """A route table with the default route to the gateway, associated with every subnet."""
    name = network_name(spec.env)
    table = find_route_table(ctx, spec.env)
    if table is None:
        log.create(
            "route_table",
            name,
            lambda: create_route_table(ctx, spec, name, vpc_id, gateway_id, subnet_ids),
            "0.0.0.0/0 -> internet gateway",
        )
        return
    table_id = table["RouteTableId"]
    default_route = [
        route
        for route in table.get("Routes", [])
        if route.get("DestinationCidrBlock") == "0.0.0.0/0"
    ]
    if not default_route or default_route[0].get("GatewayId") != gateway_id:
        log.update(
            "route_table",
            name,
            lambda: set_default_route(ctx, table_id, gateway_id, replace=bool(default_route)),
            "route 0.0.0.0/0 -> gateway",
        )
    associated = {a.get("SubnetId") for a in table.get("Associations", [])}
    for subnet_id in subnet_ids:
        if subnet_id not in associated:
            log.update(
                "route_table",
                name,
                lambda subnet_id=subnet_id: associate(ctx, table_id, subnet_id),
                f"associate {subnet_id}",
            )


# --- security groups --------------------------------------------------------------------


def instance_rules(spec: FleetSpec, lb_group_id: str) -> set[sg.Rule]:
    rules = {sg.Rule.tcp(spec.service_port, lb_group_id)}
    if spec.network.ssh_cidr:
        rules.add(sg.Rule.tcp(SSH_PORT, spec.network.ssh_cidr))
    return rules


def ensure_security_groups(
    ctx: AwsContext, spec: FleetSpec, ids: NetworkIds, log: ChangeLog
) -> None:
    """The load balancer's and the instances' groups (those not given), ids into IDS."""
    existing = spec.network.existing
    assert ids.vpc_id is not None
    lb_name = names.base_name(spec.env, ROLE_LB)
    ids.lb_security_group_id = existing.get("lb_security_group_id") or sg.ensure_group(
        ctx,
        ids.vpc_id,
        lb_name,
        f"mlops-vm {spec.env}: load balancer",
        names.tag_dict(spec.env, ROLE_LB, lb_name, spec.instance.tags),
        log,
    )
    if existing.get("security_group_id"):
        ids.instance_security_group_id = existing["security_group_id"]
        return
    name = names.base_name(spec.env, spec.role)
    ids.instance_security_group_id = sg.ensure_group(
        ctx,
        ids.vpc_id,
        name,
        f"mlops-vm {spec.env}: {spec.role} instances",
        names.tag_dict(spec.env, spec.role, name, spec.instance.tags),
        log,
    )
    sg.converge_ingress(
        ctx,
        ids.instance_security_group_id,
        name,
        instance_rules(spec, ids.lb_security_group_id),
        log,
    )


# --- the whole network ------------------------------------------------------------------


def ensure_network(
    ctx: AwsContext, spec: FleetSpec, *, dry_run: bool
) -> tuple[NetworkIds, list[Change]]:
    """converge_network with a log of its own: (ids, changes); a failure part-way still
    reports what the steps before it made."""
    log = ChangeLog(dry_run=dry_run)
    with reporting_changes(log.changes):
        return converge_network(ctx, spec, log), log.changes


def converge_network(ctx: AwsContext, spec: FleetSpec, log: ChangeLog) -> NetworkIds:
    """The fleet's network, owned or reused; ids are stand-ins where a dry run would
    create the resource."""
    if spec.network.existing:
        ids = existing_network(ctx, spec)
    else:
        zones = choose_zones(ctx, spec.zones)
        vpc_id = ensure_vpc(ctx, spec, log)
        gateway_id = ensure_internet_gateway(ctx, spec, vpc_id, log)
        subnet_ids = ensure_subnets(ctx, spec, vpc_id, zones, log)
        ensure_routes(ctx, spec, vpc_id, gateway_id, subnet_ids, log)
        ids = NetworkIds(vpc_id=vpc_id, subnet_ids=list(subnet_ids), zones=zones)
    ensure_security_groups(ctx, spec, ids, log)
    return ids


def existing_network(ctx: AwsContext, spec: FleetSpec) -> NetworkIds:
    """The reused VPC and subnets, checked to exist and to belong together."""
    existing = spec.network.existing
    unknown = set(existing) - EXISTING_KEYS
    if unknown:
        raise invalid(
            f"unknown network.existing key(s): {', '.join(sorted(unknown))}",
            f"use {', '.join(sorted(EXISTING_KEYS))}",
        )
    subnet_ids = list(existing.get("subnet_ids") or [])
    if not subnet_ids:
        raise invalid(
            "network.existing needs subnet_ids (two or more, in different zones)",
            "list the public subnets the instances and the load balancer go into",
        )
    subnets = ctx.call("ec2", "describe_subnets", "read the given subnets", SubnetIds=subnet_ids)[
        "Subnets"
    ]
    by_id = {subnet["SubnetId"]: subnet for subnet in subnets}
    vpcs = {subnet["VpcId"] for subnet in subnets}
    vpc_id = existing.get("vpc_id") or (vpcs.pop() if len(vpcs) == 1 else None)
    if vpc_id is None or any(subnet["VpcId"] != vpc_id for subnet in subnets):
        raise invalid(
            f"subnets {', '.join(subnet_ids)} are not all in VPC {vpc_id or '(several)'}",
            "give subnets of one VPC (network.existing.vpc_id)",
        )
    zones = [by_id[subnet_id]["AvailabilityZone"] for subnet_id in subnet_ids]
    if len(set(zones)) < ZONE_COUNT:
        raise invalid(
            f"subnets {', '.join(subnet_ids)} span {len(set(zones))} zone(s)",
            f"the load balancer needs subnets in at least {ZONE_COUNT} availability zones",
        )
    return NetworkIds(vpc_id=vpc_id, subnet_ids=subnet_ids, zones=zones, owned=False)


def find_owned_network(ctx: AwsContext, env: str) -> NetworkIds | None:
    """ENV's own network as it is now, found by its tags (None: not created yet)."""
    vpc = find_vpc(ctx, env)
    if vpc is None:
        return None
    subnets = sorted(find_subnets(ctx, env), key=lambda subnet: subnet["AvailabilityZone"])
    return NetworkIds(
        vpc_id=vpc["VpcId"],
        subnet_ids=[subnet["SubnetId"] for subnet in subnets],
        zones=[subnet["AvailabilityZone"] for subnet in subnets],
        lb_security_group_id=_group_id(ctx, vpc["VpcId"], names.base_name(env, ROLE_LB)),
    )


def _group_id(ctx: AwsContext, vpc_id: str, name: str) -> str | None:
    group = sg.find_group(ctx, vpc_id, name)
    return group["GroupId"] if group else None
