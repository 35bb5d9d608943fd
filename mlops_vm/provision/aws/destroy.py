"""Delete everything an environment's tags name, in dependency order.

Order: scaling groups (their instances go with them), listeners, load balancers, target
groups, instances, launch templates, key pairs, security groups, subnets, route tables,
internet gateways, VPCs, imported certificates. Only tagged resources are touched: a
reused VPC, subnet or security group (NetworkSpec.existing) is never deleted. Whatever
is already gone counts as deleted, so a second destroy finds nothing and changes nothing.
"""

from collections.abc import Callable
from typing import Any

from mlops_vm.plan import Change
from mlops_vm.provision.aws import (
    certificates,
    instances,
    load_balancer,
    names,
    scaling_group,
)
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ErrorCode, ProvisionError


def destroy(ctx: AwsContext, env: str, *, dry_run: bool) -> list[Change]:
    changes: list[Change] = []
    for step in (
        scaling_groups,
        load_balancers,
        target_groups,
        fleet_instances,
        launch_templates,
        key_pairs,
        security_groups,
        subnets,
        route_tables,
        internet_gateways,
        vpcs,
        imported_certificates,
    ):
        changes += step(ctx, env, dry_run)
    return changes


def delete_each(
    found: list[dict[str, Any]],
    change: Callable[[dict[str, Any]], Change],
    delete: Callable[[dict[str, Any]], object],
    dry_run: bool,
) -> list[Change]:
    """CHANGE of each of FOUND, and DELETE of each unless DRY_RUN, one after the other."""
    changes = []
    for item in found:
        changes.append(change(item))
        if not dry_run:
            delete(item)
    return changes


def scaling_groups(ctx: AwsContext, env: str, dry_run: bool) -> list[Change]:
    return delete_each(
        scaling_group.tagged_groups(ctx, env),
        lambda group: Change("delete", "scaling_group", group["AutoScalingGroupName"]),
        lambda group: scaling_group.delete_group(ctx, group["AutoScalingGroupName"]),
        dry_run,
    )


def load_balancers(ctx: AwsContext, env: str, dry_run: bool) -> list[Change]:
    changes = []
    for alb in load_balancer.tagged_load_balancers(ctx, env):
        arn = alb["LoadBalancerArn"]
        listeners = ctx.call(
            "elbv2",
            "describe_listeners",
            "list the listeners",
            missing_ok=True,
            LoadBalancerArn=arn,
        ).get("Listeners", [])
        for listener in listeners:
            changes.append(
                Change("delete", "listener", f"{alb['LoadBalancerName']}:{listener['Port']}")
            )
            if not dry_run:
                load_balancer.delete_listener(ctx, listener["ListenerArn"])
        changes.append(Change("delete", "load_balancer", alb["LoadBalancerName"]))
        if not dry_run:
            load_balancer.delete_load_balancer(ctx, arn)
    return changes


def target_groups(ctx: AwsContext, env: str, dry_run: bool) -> list[Change]:
    return delete_each(
        load_balancer.tagged_target_groups(ctx, env),
        lambda group: Change("delete", "target_group", group["TargetGroupName"]),
        lambda group: load_balancer.delete_target_group(ctx, group["TargetGroupArn"]),
        dry_run,
    )


def fleet_instances(ctx: AwsContext, env: str, dry_run: bool) -> list[Change]:
    states = (*instances.LIVE_STATES, "shutting-down")
    raws = instances.describe_instances(ctx, env, states=states)
    changes = [
        Change(
            "delete", "instance", names.as_dict(raw.get("Tags")).get("Name", ""), raw["InstanceId"]
        )
        for raw in raws
        if raw["State"]["Name"] != "shutting-down"
    ]
    if not dry_run and raws:
        ids = [raw["InstanceId"] for raw in raws]
        instances.terminate(ctx, ids)
        # Their network interfaces hold the security groups and subnets until then.
        instances.wait_terminated(ctx, ids)
    return changes


def launch_templates(ctx: AwsContext, env: str, dry_run: bool) -> list[Change]:
    return delete_each(
        scaling_group.tagged_templates(ctx, env),
        lambda template: Change("delete", "launch_template", template["LaunchTemplateName"]),
        lambda template: scaling_group.delete_template(ctx, template["LaunchTemplateId"]),
        dry_run,
    )


def key_pairs(ctx: AwsContext, env: str, dry_run: bool) -> list[Change]:
    return delete_each(
        names.tagged_ec2(ctx, env, "describe_key_pairs", "list the key pairs", "KeyPairs"),
        lambda pair: Change("delete", "key_pair", pair["KeyName"]),
        lambda pair: ctx.call(
            "ec2",
            "delete_key_pair",
            "delete the key pair",
            missing_ok=True,
            KeyName=pair["KeyName"],
        ),
        dry_run,
    )


def security_groups(ctx: AwsContext, env: str, dry_run: bool) -> list[Change]:
    groups = names.tagged_ec2(
        ctx, env, "describe_security_groups", "list the security groups", "SecurityGroups"
    )
    changes = [Change("delete", "security_group", group["GroupName"]) for group in groups]
    if dry_run:
        return changes
    # The instances' group refers to the load balancer's: drop the references first.
    for group in groups:
        if group.get("IpPermissions"):
            ctx.call(
                "ec2",
                "revoke_security_group_ingress",
                "revoke the rules before deleting the group",
                missing_ok=True,
                GroupId=group["GroupId"],
                IpPermissions=group["IpPermissions"],
            )
    for group in groups:
        delete_when_released(
            ctx,
            "delete_security_group",
            f"delete security group {group['GroupName']}",
            GroupId=group["GroupId"],
        )
    return changes


def subnets(ctx: AwsContext, env: str, dry_run: bool) -> list[Change]:
    return delete_each(
        names.tagged_ec2(ctx, env, "describe_subnets", "list the subnets", "Subnets"),
        lambda subnet: Change("delete", "subnet", subnet["SubnetId"], subnet["CidrBlock"]),
        lambda subnet: delete_when_released(
            ctx, "delete_subnet", f"delete subnet {subnet['SubnetId']}", SubnetId=subnet["SubnetId"]
        ),
        dry_run,
    )


def route_tables(ctx: AwsContext, env: str, dry_run: bool) -> list[Change]:
    tables = names.tagged_ec2(
        ctx, env, "describe_route_tables", "list the route tables", "RouteTables"
    )
    changes = []
    for table in tables:
        changes.append(Change("delete", "route_table", table["RouteTableId"]))
        if dry_run:
            continue
        for association in table.get("Associations", []):
            if not association.get("Main"):
                ctx.call(
                    "ec2",
                    "disassociate_route_table",
                    "disassociate the route table",
                    missing_ok=True,
                    AssociationId=association["RouteTableAssociationId"],
                )
        ctx.call(
            "ec2",
            "delete_route_table",
            "delete the route table",
            missing_ok=True,
            RouteTableId=table["RouteTableId"],
        )
    return changes


def internet_gateways(ctx: AwsContext, env: str, dry_run: bool) -> list[Change]:
    gateways = names.tagged_ec2(
        ctx, env, "describe_internet_gateways", "list the internet gateways", "InternetGateways"
    )
    changes = []
    for gateway in gateways:
        gateway_id = gateway["InternetGatewayId"]
        changes.append(Change("delete", "internet_gateway", gateway_id))
        if dry_run:
            continue
        for attachment in gateway.get("Attachments", []):
            ctx.call(
                "ec2",
                "detach_internet_gateway",
                "detach the internet gateway",
                missing_ok=True,
                InternetGatewayId=gateway_id,
                VpcId=attachment["VpcId"],
            )
        ctx.call(
            "ec2",
            "delete_internet_gateway",
            "delete the internet gateway",
            missing_ok=True,
            InternetGatewayId=gateway_id,
        )
    return changes


def vpcs(ctx: AwsContext, env: str, dry_run: bool) -> list[Change]:
    return delete_each(
        names.tagged_ec2(ctx, env, "describe_vpcs", "list the VPCs", "Vpcs"),
        lambda vpc: Change("delete", "vpc", vpc["VpcId"], vpc["CidrBlock"]),
        lambda vpc: delete_when_released(ctx, "delete_vpc", "delete the VPC", VpcId=vpc["VpcId"]),
        dry_run,
    )


def imported_certificates(ctx: AwsContext, env: str, dry_run: bool) -> list[Change]:
    return delete_each(
        certificates.imported_certificates(ctx, env),
        lambda certificate: Change("delete", "certificate", certificate["arn"]),
        lambda certificate: delete_when_released(
            ctx,
            "delete_certificate",
            "delete the imported certificate",
            service="acm",
            CertificateArn=certificate["arn"],
        ),
        dry_run,
    )


def delete_when_released(
    ctx: AwsContext, operation: str, doing: str, *, service: str = "ec2", **params: Any
) -> None:
    """Delete, retrying while AWS still holds the resource (network interfaces of deleted
    load balancers and instances are released a little after they are gone)."""

    def attempt() -> bool | None:
        try:
            ctx.call(service, operation, doing, missing_ok=True, **params)
        except ProvisionError as error:
            if error.code == ErrorCode.CONFLICT:
                return None
            raise
        return True

    ctx.wait_until(attempt, f"AWS lets go ({doing})")
