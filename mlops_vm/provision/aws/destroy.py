"""Delete everything an environment's tags name, in dependency order.

Order: scaling groups (their instances go with them), listeners, load balancers, target
groups, instances, launch templates, baked images (with their snapshots), key pairs,
security groups, subnets, route tables, internet gateways, VPCs, imported certificates,
the scaling-group instances' role and instance profile, the boot payload bucket.
Only tagged resources are touched: a reused VPC, subnet or security group
(NetworkSpec.existing) is never deleted. Whatever is already gone counts as deleted, so a
second destroy finds nothing and changes nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Any

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.aws import (
    bake,
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

Step = Callable[[AwsContext, str, ChangeLog], None]


@dataclass(frozen=True)
class EachTagged:
    """A step that deletes each of the environment's resources of one KIND: FIND lists
    them, the field NAME names one in the plan (DETAIL adds one), DELETE removes one."""

    kind: str
    find: Callable[[AwsContext, str], list[dict[str, Any]]]
    name: str
    delete: Callable[[AwsContext, dict[str, Any]], object]
    detail: str | None = None

    def __call__(self, ctx: AwsContext, env: str, log: ChangeLog) -> None:
        detail = self.detail
        log.delete_each(
            self.kind,
            self.find(ctx, env),
            itemgetter(self.name),
            partial(self.delete, ctx),
            itemgetter(detail) if detail else "",
        )


def tagged_ec2(kind: str) -> Callable[[AwsContext, str], list[dict[str, Any]]]:
    """The lister of the EC2 resources of KIND ("key_pair": describe_key_pairs, KeyPairs)."""
    plural = f"{kind}s"
    key = "".join(word.capitalize() for word in plural.split("_"))
    return lambda ctx, env: names.tagged_ec2(
        ctx, env, f"describe_{plural}", f"list the {plural.replace('_', ' ')}", key
    )


def by_field(field: str, delete: Callable[[AwsContext, str], object]) -> Callable[..., object]:
    """DELETE(ctx, the resource's FIELD): the deletes that take one id or name."""
    return lambda ctx, item: delete(ctx, item[field])


def when_released(
    operation: str, param: str, field: str | None = None, *, service: str = "ec2"
) -> Callable[[AwsContext, dict[str, Any]], None]:
    """OPERATION(PARAM=the resource's FIELD, by default PARAM), retried while AWS still
    holds the resource."""

    def delete(ctx: AwsContext, item: dict[str, Any]) -> None:
        value = item[field or param]
        doing = f"{operation.replace('_', ' ')} {value}"
        delete_when_released(ctx, operation, doing, service=service, **{param: value})

    return delete


def load_balancers(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    """Each load balancer after its listeners."""
    for alb in load_balancer.tagged_load_balancers(ctx, env):
        arn, name = alb["LoadBalancerArn"], alb["LoadBalancerName"]
        log.delete_each(
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


def security_groups(ctx: AwsContext, env: str, log: ChangeLog) -> None:
    groups = tagged_ec2("security_group")(ctx, env)

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


# In dependency order: each step deletes what the steps after it wait for.
STEPS: tuple[Step, ...] = (
    EachTagged(
        "scaling_group",
        scaling_group.tagged_groups,
        "AutoScalingGroupName",
        by_field("AutoScalingGroupName", scaling_group.delete_group),
    ),
    load_balancers,
    EachTagged(
        "target_group",
        load_balancer.tagged_target_groups,
        "TargetGroupName",
        by_field("TargetGroupArn", load_balancer.delete_target_group),
    ),
    fleet_instances,
    EachTagged(
        "launch_template",
        scaling_group.tagged_templates,
        "LaunchTemplateName",
        by_field("LaunchTemplateId", scaling_group.delete_template),
    ),
    EachTagged("image", bake.environment_images, "Name", bake.deregister),  # and snapshots
    EachTagged(
        "key_pair",
        tagged_ec2("key_pair"),
        "KeyName",
        lambda ctx, pair: ctx.delete(
            "ec2", "delete_key_pair", "delete the key pair", KeyName=pair["KeyName"]
        ),
    ),
    security_groups,
    EachTagged(
        "subnet",
        tagged_ec2("subnet"),
        "SubnetId",
        when_released("delete_subnet", "SubnetId"),
        "CidrBlock",
    ),
    EachTagged("route_table", tagged_ec2("route_table"), "RouteTableId", delete_route_table),
    EachTagged(
        "internet_gateway",
        tagged_ec2("internet_gateway"),
        "InternetGatewayId",
        delete_internet_gateway,
    ),
    EachTagged(
        "vpc", tagged_ec2("vpc"), "VpcId", when_released("delete_vpc", "VpcId"), "CidrBlock"
    ),
    EachTagged(
        "certificate",
        certificates.imported_certificates,
        "arn",
        when_released("delete_certificate", "CertificateArn", "arn", service="acm"),
    ),
    boot_identity,
    boot_payload.delete_bucket,
)


def destroy(ctx: AwsContext, env: str, *, dry_run: bool) -> list[Change]:
    log = ChangeLog(dry_run=dry_run)
    for step in STEPS:
        step(ctx, env, log)
    return log.changes


def delete_when_released(
    ctx: AwsContext, operation: str, doing: str, *, service: str = "ec2", **params: Any
) -> None:
    """Delete, retrying while AWS still holds the resource (network interfaces of deleted
    load balancers and instances are released a little after they are gone)."""

    def attempt() -> bool:
        try:
            ctx.call(service, operation, doing, missing_ok=True, **params)
        except ProvisionError as error:
            if error.code == ErrorCode.CONFLICT:
                return False
            raise
        return True

    ctx.wait_for(attempt, f"AWS lets go ({doing})")
