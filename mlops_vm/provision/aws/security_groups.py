"""Security groups: find or create them by tag, and converge their ingress rules exactly.

A rule is (protocol, port, source) where the source is a CIDR or another group; the
groups' ingress is made equal to the wanted set (missing rules authorized, others
revoked), so a closed SSH port or a changed service port really closes the old one.
"""

from dataclasses import dataclass
from typing import Any

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.aws import names
from mlops_vm.provision.aws.client import AwsContext, Lookup


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


SECURITY_GROUP = Lookup("ec2", "describe_security_groups", "SecurityGroups")


def find_group(ctx: AwsContext, vpc_id: str, name: str) -> dict[str, Any] | None:
    return ctx.first(
        SECURITY_GROUP,
        f"find security group {name}",
        Filters=names.filters({"vpc-id": vpc_id, "group-name": name}),
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
    vpc_id: str,
    name: str,
    description: str,
    tag_set: dict[str, str],
    log: ChangeLog,
) -> str:
    """The group's id (a stand-in when a dry run would create it)."""
    existing = None if names.is_planned(vpc_id) else find_group(ctx, vpc_id, name)
    if existing:
        return existing["GroupId"]
    return log.create(
        "security_group",
        name,
        lambda: create_group(ctx, vpc_id, name, description, tag_set),
        description,
        planned=names.planned("sg", name),
    )


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
    ctx: AwsContext, group_id: str | None, name: str, wanted: set[Rule], log: ChangeLog
) -> None:
    """Make GROUP's ingress exactly WANTED: the surplus rules revoked, the missing ones
    allowed, one call each way, one change per rule."""
    exists = group_id and not names.is_planned(group_id)
    group = describe_group(ctx, group_id) if exists else {}
    have = current_rules(group)
    missing, surplus = wanted - have, have - wanted
    for rules, verb, operation, doing in (
        (
            surplus,
            "revoke",
            "revoke_security_group_ingress",
            f"revoke rules of security group {name}",
        ),
        (
            missing,
            "allow",
            "authorize_security_group_ingress",
            f"allow traffic into security group {name}",
        ),
    ):
        log.apply_all(
            [Change("update", "security_group", name, f"{verb} {rule}") for rule in sorted(rules)],
            lambda rules=rules, operation=operation, doing=doing: ctx.call(
                "ec2",
                operation,
                doing,
                GroupId=group_id,
                IpPermissions=[rule.as_permission() for rule in sorted(rules)],
            ),
        )
