"""Security groups: find or create them by tag, and converge their ingress rules exactly.

A rule is (protocol, port, source) where the source is a CIDR or another group; the
groups' ingress is made equal to the wanted set (missing rules authorized, others
revoked), so a closed SSH port or a changed service port really closes the old one.
"""

from dataclasses import dataclass
from typing import Any

from mlops_vm.plan import Change
from mlops_vm.provision.aws import names
from mlops_vm.provision.aws.client import AwsContext


@dataclass(frozen=True, order=True)
class Rule:
    """One ingress rule: PROTOCOL ports FROM_PORT..TO_PORT from SOURCE."""

    from_port: int
    to_port: int
    source: str  # a CIDR ("0.0.0.0/0") or a security group id ("sg-...")
    protocol: str = "tcp"  # "-1" is every protocol (ports -1)

    @classmethod
    def tcp(cls, port: int, source: str) -> "Rule":
        return cls(port, port, source)

    @property
    def from_group(self) -> bool:
        return self.source.startswith("sg-")

    def as_permission(self) -> dict[str, Any]:
        permission: dict[str, Any] = {"IpProtocol": self.protocol}
        if self.protocol != "-1":
            permission.update(FromPort=self.from_port, ToPort=self.to_port)
        if self.from_group:
            permission["UserIdGroupPairs"] = [{"GroupId": self.source}]
        elif ":" in self.source:
            permission["Ipv6Ranges"] = [{"CidrIpv6": self.source}]
        else:
            permission["IpRanges"] = [{"CidrIp": self.source}]
        return permission

    def __str__(self) -> str:
        ports = (
            str(self.from_port)
            if self.from_port == self.to_port
            else (f"{self.from_port}-{self.to_port}")
        )
        return f"{self.protocol}/{ports} from {self.source}"


def find_group(ctx: AwsContext, vpc_id: str, name: str) -> dict[str, Any] | None:
    return ctx.first(
        "ec2",
        "describe_security_groups",
        f"find security group {name}",
        "SecurityGroups",
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": [name]},
        ],
    )


def describe_group(ctx: AwsContext, group_id: str) -> dict[str, Any]:
    return ctx.call(
        "ec2",
        "describe_security_groups",
        f"read security group {group_id}",
        GroupIds=[group_id],
    )["SecurityGroups"][0]


def create_group(
    ctx: AwsContext, vpc_id: str, name: str, description: str, tag_set: dict[str, str]
) -> str:
    # No client token: a retry after a lost answer would meet InvalidGroup.Duplicate, so it
    # adopts the group by its name (unique in the VPC) first.
    def adopt() -> dict[str, Any] | None:
        group = find_group(ctx, vpc_id, name)
        return None if group is None else {"GroupId": group["GroupId"]}

    return ctx.create(
        "ec2",
        "create_security_group",
        f"create security group {name}",
        adopt=adopt,
        GroupName=name,
        Description=description,
        VpcId=vpc_id,
        TagSpecifications=names.tag_specifications("security-group", tag_set),
    )["GroupId"]


def ensure_group(
    ctx: AwsContext,
    vpc_id: str | None,
    name: str,
    description: str,
    tag_set: dict[str, str],
    *,
    dry_run: bool,
) -> tuple[str | None, list[Change]]:
    """The group's id (None when a dry run would create it) and the changes made."""
    existing = find_group(ctx, vpc_id, name) if vpc_id else None
    if existing:
        return existing["GroupId"], []
    change = Change("create", "security_group", name, description)
    if dry_run:
        return None, [change]
    assert vpc_id is not None
    return create_group(ctx, vpc_id, name, description, tag_set), [change]


def current_rules(group: dict[str, Any]) -> set[Rule]:
    rules: set[Rule] = set()
    for permission in group.get("IpPermissions", []):
        protocol = str(permission.get("IpProtocol", "-1"))
        from_port = int(permission.get("FromPort", -1))
        to_port = int(permission.get("ToPort", -1))
        sources = [r["CidrIp"] for r in permission.get("IpRanges", [])]
        sources += [r["CidrIpv6"] for r in permission.get("Ipv6Ranges", [])]
        sources += [p["GroupId"] for p in permission.get("UserIdGroupPairs", [])]
        rules.update(Rule(from_port, to_port, source, protocol) for source in sources)
    return rules


def converge_ingress(
    ctx: AwsContext,
    group_id: str | None,
    name: str,
    wanted: set[Rule],
    *,
    dry_run: bool,
) -> list[Change]:
    """Make GROUP's ingress exactly WANTED."""
    group = describe_group(ctx, group_id) if group_id else {"IpPermissions": []}
    have = current_rules(group)
    missing, surplus = wanted - have, have - wanted
    changes = [
        Change("update", "security_group", name, f"allow {rule}") for rule in sorted(missing)
    ]
    changes += [
        Change("update", "security_group", name, f"revoke {rule}") for rule in sorted(surplus)
    ]
    if dry_run or not changes:
        return changes
    assert group_id is not None
    for rules, operation, doing in (
        (surplus, "revoke_security_group_ingress", f"revoke rules of security group {name}"),
        (missing, "authorize_security_group_ingress", f"allow traffic into security group {name}"),
    ):
        if rules:
            ctx.call(
                "ec2",
                operation,
                doing,
                GroupId=group_id,
                IpPermissions=[rule.as_permission() for rule in sorted(rules)],
            )
    return changes
