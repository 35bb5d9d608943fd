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

from mlops_vm.plan import Change
from mlops_vm.provision.aws import errors, names
from mlops_vm.provision.aws import security_groups as sg
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ErrorCode, ProvisionError, reporting_changes
from mlops_vm.provision.model import ROLE_LB, ROLE_NETWORK, FleetSpec

EXISTING_KEYS = frozenset({"vpc_id", "subnet_ids", "security_group_id", "lb_security_group_id"})
ZONE_COUNT = 2
SSH_PORT = 22
# Each zone's subnet gets this many more prefix bits than the VPC (a /16 gives /20s).
SUBNET_EXTRA_BITS = 4
invalid = partial(errors.invalid, operation="check the network")


@dataclass
class NetworkIds:
    """What the fleet lives in; ids are None where a dry run would create the resource."""

    vpc_id: str | None
    subnet_ids: list[str | None] = field(default_factory=list)
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
        Filters=[
            {"Name": "state", "Values": ["available"]},
            {"Name": "zone-type", "Values": ["availability-zone"]},
        ],
    )["AvailabilityZones"]
    return sorted(zone["ZoneName"] for zone in zones)


def choose_zones(ctx: AwsContext, wanted: tuple[str, ...]) -> list[str]:
    if wanted:
        return list(wanted)
    zones = available_zones(ctx)
    if len(zones) < ZONE_COUNT:
        raise ProvisionError(
            ErrorCode.CAPACITY,
            f"region {ctx.region} offers {len(zones)} availability zone(s); the load "
            f"balancer needs {ZONE_COUNT}",
            hint="choose another region",
            provider=errors.PROVIDER,
            operation="choose availability zones",
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
    ctx.wait_until(
        lambda: True if vpc_state(ctx, vpc_id) == "available" else None,
        f"VPC {vpc_id} is available",
    )
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


def ensure_vpc(ctx: AwsContext, spec: FleetSpec, *, dry_run: bool) -> tuple[str | None, list]:
    name = network_name(spec.env)
    vpc = find_vpc(ctx, spec.env)
    if vpc:
        if vpc["CidrBlock"] != spec.network.cidr:
            raise ProvisionError(
                ErrorCode.CONFLICT,
                f"the environment's VPC {vpc['VpcId']} has CIDR {vpc['CidrBlock']}, the "
                f"spec asks for {spec.network.cidr}",
                hint="a VPC's CIDR cannot change: keep network.cidr, or destroy the "
                "environment first",
                provider=errors.PROVIDER,
                operation="check the VPC",
            )
        return vpc["VpcId"], []
    change = Change("create", "vpc", name, spec.network.cidr)
    if dry_run:
        return None, [change]
    return create_vpc(ctx, spec, name), [change]


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


def ensure_internet_gateway(
    ctx: AwsContext, spec: FleetSpec, vpc_id: str | None, *, dry_run: bool
) -> tuple[str | None, list[Change]]:
    name = network_name(spec.env)
    gateway = find_internet_gateway(ctx, spec.env)
    changes: list[Change] = []
    if gateway is None:
        changes.append(Change("create", "internet_gateway", name))
        if dry_run:
            return None, changes
        gateway = ctx.create(
            "ec2",
            "create_internet_gateway",
            "create the internet gateway",
            adopt=lambda: adopted("InternetGateway", find_internet_gateway(ctx, spec.env)),
            TagSpecifications=names.tag_specifications(
                "internet-gateway", network_tags(spec, name)
            ),
        )["InternetGateway"]
    gateway_id = gateway["InternetGatewayId"]
    attached = {a["VpcId"] for a in gateway.get("Attachments", [])}
    if vpc_id not in attached:
        # A new gateway's attachment is part of its creation.
        changes += ctx.apply(
            None if changes else Change("update", "internet_gateway", name, f"attach to {vpc_id}"),
            "ec2",
            "attach_internet_gateway",
            "attach the internet gateway to the VPC",
            dry_run=dry_run,
            InternetGatewayId=gateway_id,
            VpcId=vpc_id,
        )
    return gateway_id, changes


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


def ensure_subnets(
    ctx: AwsContext, spec: FleetSpec, vpc_id: str | None, zones: list[str], *, dry_run: bool
) -> tuple[list[str | None], list[Change]]:
    """One public subnet per zone, in zone order."""
    existing = subnets_by_zone(ctx, spec.env)
    used = {subnet["CidrBlock"] for subnet in existing.values()}
    free_cidrs = [cidr for cidr in subnet_cidrs(spec.network.cidr) if cidr not in used]
    subnet_ids: list[str | None] = []
    changes: list[Change] = []
    for zone in zones:
        subnet = existing.get(zone)
        if subnet:
            subnet_ids.append(subnet["SubnetId"])
            continue
        cidr = free_cidrs.pop(0)
        name = f"{network_name(spec.env)}-{zone}"
        changes.append(Change("create", "subnet", name, f"{cidr} in {zone}"))
        if dry_run:
            subnet_ids.append(None)
            continue
        subnet_id = ctx.create(
            "ec2",
            "create_subnet",
            f"create a subnet in {zone}",
            adopt=lambda zone=zone: adopted("Subnet", subnets_by_zone(ctx, spec.env).get(zone)),
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
        subnet_ids.append(subnet_id)
    return subnet_ids, changes


def find_route_table(ctx: AwsContext, env: str) -> dict[str, Any] | None:
    tables = names.tagged_ec2(
        ctx, env, "describe_route_tables", "find the route table", "RouteTables", ROLE_NETWORK
    )
    return names.only_one(tables, "route table", "RouteTableId", env)


def ensure_routes(
    ctx: AwsContext,
    spec: FleetSpec,
    vpc_id: str | None,
    gateway_id: str | None,
    subnet_ids: list[str | None],
    *,
    dry_run: bool,
) -> list[Change]:
    """A route table with the default route to the gateway, associated with every subnet."""
    name = network_name(spec.env)
    table = find_route_table(ctx, spec.env)
    changes: list[Change] = []
    if table is None:
        changes.append(Change("create", "route_table", name, "0.0.0.0/0 -> internet gateway"))
        if dry_run:
            return changes
        # CreateRouteTable takes a ClientToken: ctx.call gives it one its retries share.
        table = ctx.call(
            "ec2",
            "create_route_table",
            "create the route table",
            VpcId=vpc_id,
            TagSpecifications=names.tag_specifications("route-table", network_tags(spec, name)),
        )["RouteTable"]
    table_id = table["RouteTableId"]
    created = bool(changes)
    default_route = [
        route
        for route in table.get("Routes", [])
        if route.get("DestinationCidrBlock") == "0.0.0.0/0"
    ]
    updates: list[Change] = []
    if not default_route or default_route[0].get("GatewayId") != gateway_id:
        updates += ctx.apply(
            Change("update", "route_table", name, "route 0.0.0.0/0 -> gateway"),
            "ec2",
            "replace_route" if default_route else "create_route",
            "route the subnets to the internet gateway",
            dry_run=dry_run,
            RouteTableId=table_id,
            DestinationCidrBlock="0.0.0.0/0",
            GatewayId=gateway_id,
        )
    associated = {a.get("SubnetId") for a in table.get("Associations", [])}
    for subnet_id in subnet_ids:
        if subnet_id not in associated:
            updates += ctx.apply(
                Change("update", "route_table", name, f"associate {subnet_id}"),
                "ec2",
                "associate_route_table",
                "associate the route table with a subnet",
                dry_run=dry_run,
                RouteTableId=table_id,
                SubnetId=subnet_id,
            )
    # A new table's route and associations are part of its creation.
    return changes if created else changes + updates


# --- security groups --------------------------------------------------------------------


def instance_rules(spec: FleetSpec, lb_group_id: str | None) -> set[sg.Rule]:
    rules = {sg.Rule.tcp(spec.service_port, lb_group_id or "sg-(new lb group)")}
    if spec.network.ssh_cidr:
        rules.add(sg.Rule.tcp(SSH_PORT, spec.network.ssh_cidr))
    return rules


def ensure_security_groups(
    ctx: AwsContext, spec: FleetSpec, ids: NetworkIds, *, dry_run: bool
) -> list[Change]:
    changes: list[Change] = []
    existing = spec.network.existing
    lb_name = names.base_name(spec.env, ROLE_LB)
    if existing.get("lb_security_group_id"):
        ids.lb_security_group_id = existing["lb_security_group_id"]
    else:
        ids.lb_security_group_id, created = sg.ensure_group(
            ctx,
            ids.vpc_id,
            lb_name,
            f"mlops-vm {spec.env}: load balancer",
            names.tag_dict(spec.env, ROLE_LB, lb_name, spec.instance.tags),
            dry_run=dry_run,
        )
        changes += created
    if existing.get("security_group_id"):
        ids.instance_security_group_id = existing["security_group_id"]
        return changes
    name = names.base_name(spec.env, spec.role)
    ids.instance_security_group_id, created = sg.ensure_group(
        ctx,
        ids.vpc_id,
        name,
        f"mlops-vm {spec.env}: {spec.role} instances",
        names.tag_dict(spec.env, spec.role, name, spec.instance.tags),
        dry_run=dry_run,
    )
    changes += created
    changes += sg.converge_ingress(
        ctx,
        ids.instance_security_group_id,
        name,
        instance_rules(spec, ids.lb_security_group_id),
        dry_run=dry_run,
    )
    return changes


# --- the whole network ------------------------------------------------------------------


def ensure_network(
    ctx: AwsContext, spec: FleetSpec, *, dry_run: bool
) -> tuple[NetworkIds, list[Change]]:
    if spec.network.existing:
        ids = existing_network(ctx, spec)
        return ids, ensure_security_groups(ctx, spec, ids, dry_run=dry_run)
    zones = choose_zones(ctx, spec.zones)
    changes: list[Change] = []
    # A failure part-way (say after the VPC) still reports what the steps before it made.
    with reporting_changes(changes):
        vpc_id, more = ensure_vpc(ctx, spec, dry_run=dry_run)
        changes += more
        gateway_id, more = ensure_internet_gateway(ctx, spec, vpc_id, dry_run=dry_run)
        changes += more
        subnet_ids, more = ensure_subnets(ctx, spec, vpc_id, zones, dry_run=dry_run)
        changes += more
        changes += ensure_routes(ctx, spec, vpc_id, gateway_id, subnet_ids, dry_run=dry_run)
        ids = NetworkIds(vpc_id=vpc_id, subnet_ids=subnet_ids, zones=zones)
        changes += ensure_security_groups(ctx, spec, ids, dry_run=dry_run)
    return ids, changes


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
