"""Delete everything an environment's tags name, in dependency order.

Order: scaling groups (their instances go with them), listeners, load balancers, target
groups, instances, launch templates, key pairs, security groups, subnets, route tables,
internet gateways, VPCs, imported certificates, the scaling-group instances' role and
instance profile, the boot payload bucket. Only tagged resources are touched: a
reused VPC, subnet or security group (NetworkSpec.existing) is never deleted. Whatever
is already gone counts as deleted, so a second destroy finds nothing and changes nothing.
"""

from collections.abc import Callable
from typing import Any

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.aws import (
    boot_payload,
    certificates,
    instance_identity,
    instances,
    load_balancer,
    names,
    scaling_group,
)
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import ROLE_MODEL


def destroy(ctx: AwsContext, env: str, *, dry_run: bool) -> list[Change]:
    log = ChangeLog(dry_run=dry_run)
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
        boot_identity,
        boot_payload.delete_bucket,
    ):
        step(ctx, env, log)
    return log.changes


def delete_each(
    log: ChangeLog,
    kind: str,
    found: list[dict[str, Any]],
    name: Callable[[dict[str, Any]], str],
    delete: Callable[[dict[str, Any]], object],
    detail: Callable[[dict[str, Any]], str] = lambda _item: "",
) -> None:
    """Delete each of FOUND (resources of KIND), one after the other."""
    for item in found:
        log.delete(kind, name(item), lambda item=item: delete(item), detail(item))


def scaling_groups(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    delete_each(
        log,
        "scaling_group",
        scaling_group.tagged_groups(ctx, env),
        lambda group: group["AutoScalingGroupName"],
        lambda group: scaling_group.delete_group(ctx, group["AutoScalingGroupName"]),
    )


def load_balancers(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    """Each load balancer after its listeners."""
    for alb in load_balancer.tagged_load_balancers(ctx, env):
        arn, name = alb["LoadBalancerArn"], alb["LoadBalancerName"]
        delete_each(
            log,
            "listener",
            ctx.call(
                "elbv2",
                "describe_listeners",
                "list the listeners",
                missing_ok=True,
                LoadBalancerArn=arn,
            ).get("Listeners", []),
            lambda listener, name=name: f"{name}:{listener['Port']}",
            lambda listener: load_balancer.delete_listener(ctx, listener["ListenerArn"]),
        )
        log.delete(
            "load_balancer", name, lambda arn=arn: load_balancer.delete_load_balancer(ctx, arn)
        )


def target_groups(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    delete_each(
        log,
        "target_group",
        load_balancer.tagged_target_groups(ctx, env),
        lambda group: group["TargetGroupName"],
        lambda group: load_balancer.delete_target_group(ctx, group["TargetGroupArn"]),
    )


def fleet_instances(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    states = (*instances.LIVE_STATES, "shutting-down")
    raws = instances.describe_instances(ctx, env, states=states)
    ids = [raw["InstanceId"] for raw in raws]

    def terminate() -> None:
        instances.terminate(ctx, ids)
        # Their network interfaces hold the security groups and subnets until then.
        instances.wait_terminated(ctx, ids)

    # A scaling group's instances go with their group (the step before): in a dry run
    # they are still listed, but are not this step's. Those already shutting down are
    # waited for, not reported. One call for all.
    groups = {group["AutoScalingGroupName"] for group in scaling_group.tagged_groups(ctx, env)}
    reported = [
        raw
        for raw in raws
        if raw["State"]["Name"] != "shutting-down"
        and names.as_dict(raw.get("Tags")).get(instances.ASG_TAG) not in groups
    ]
    log.apply_all(
        [
            Change(
                "delete",
                "instance",
                names.as_dict(raw.get("Tags")).get("Name", ""),
                raw["InstanceId"],
            )
            for raw in reported
        ],
        terminate,
    )


def boot_identity(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    instance_identity.delete_identity(ctx, env, ROLE_MODEL, log)


def launch_templates(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    delete_each(
        log,
        "launch_template",
        scaling_group.tagged_templates(ctx, env),
        lambda template: template["LaunchTemplateName"],
        lambda template: scaling_group.delete_template(ctx, template["LaunchTemplateId"]),
    )


def key_pairs(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    delete_each(
        log,
        "key_pair",
        names.tagged_ec2(ctx, env, "describe_key_pairs", "list the key pairs", "KeyPairs"),
        lambda pair: pair["KeyName"],
        lambda pair: ctx.delete(
            "ec2",
            "delete_key_pair",
            "delete the key pair",
            KeyName=pair["KeyName"],
        ),
    )


def security_groups(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    groups = names.tagged_ec2(
        ctx, env, "describe_security_groups", "list the security groups", "SecurityGroups"
    )

    def delete_all() -> None:
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

    log.apply_all(
        [Change("delete", "security_group", group["GroupName"]) for group in groups], delete_all
    )


def subnets(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    delete_each(
        log,
        "subnet",
        names.tagged_ec2(ctx, env, "describe_subnets", "list the subnets", "Subnets"),
        lambda subnet: subnet["SubnetId"],
        lambda subnet: delete_when_released(
            ctx, "delete_subnet", f"delete subnet {subnet['SubnetId']}", SubnetId=subnet["SubnetId"]
        ),
        lambda subnet: subnet["CidrBlock"],
    )


def delete_route_table(ctx: AwsContext, table: dict[str, Any]) -> None:
    for association in table.get("Associations", []):
        if not association.get("Main"):
            ctx.delete(
                "ec2",
                "disassociate_route_table",
                "disassociate the route table",
                AssociationId=association["RouteTableAssociationId"],
            )
    ctx.delete(
        "ec2",
        "delete_route_table",
        "delete the route table",
        RouteTableId=table["RouteTableId"],
    )


def route_tables(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    delete_each(
        log,
        "route_table",
        names.tagged_ec2(ctx, env, "describe_route_tables", "list the route tables", "RouteTables"),
        lambda table: table["RouteTableId"],
        lambda table: delete_route_table(ctx, table),
    )


def delete_internet_gateway(ctx: AwsContext, gateway: dict[str, Any]) -> None:
    gateway_id = gateway["InternetGatewayId"]
    for attachment in gateway.get("Attachments", []):
        ctx.delete(
            "ec2",
            "detach_internet_gateway",
            "detach the internet gateway",
            InternetGatewayId=gateway_id,
            VpcId=attachment["VpcId"],
        )
    ctx.delete(
        "ec2",
        "delete_internet_gateway",
        "delete the internet gateway",
        InternetGatewayId=gateway_id,
    )


def internet_gateways(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    delete_each(
        log,
        "internet_gateway",
        names.tagged_ec2(
            ctx, env, "describe_internet_gateways", "list the internet gateways", "InternetGateways"
        ),
        lambda gateway: gateway["InternetGatewayId"],
        lambda gateway: delete_internet_gateway(ctx, gateway),
    )


def vpcs(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    delete_each(
        log,
        "vpc",
        names.tagged_ec2(ctx, env, "describe_vpcs", "list the VPCs", "Vpcs"),
        lambda vpc: vpc["VpcId"],
        lambda vpc: delete_when_released(ctx, "delete_vpc", "delete the VPC", VpcId=vpc["VpcId"]),
        lambda vpc: vpc["CidrBlock"],
    )


def imported_certificates(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    delete_each(
        log,
        "certificate",
        certificates.imported_certificates(ctx, env),
        lambda certificate: certificate["arn"],
        lambda certificate: delete_when_released(
            ctx,
            "delete_certificate",
            "delete the imported certificate",
            service="acm",
            CertificateArn=certificate["arn"],
        ),
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
