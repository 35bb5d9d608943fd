"""Tags and names: how the provider marks what it creates and finds it again.

Every resource carries mlops-vm/env and mlops-vm/role (and a Name); that is the only
state there is. Load balancer and target group names are limited to 32 characters, so
long environment names are shortened with a hash that keeps them unique.
"""

import hashlib
import re
from typing import TYPE_CHECKING, Any

from mlops_vm.provision.aws.errors import failure
from mlops_vm.provision.errors import ErrorCode
from mlops_vm.provision.model import TAG_ENV, TAG_ROLE

if TYPE_CHECKING:  # the client's modules import this one
    from mlops_vm.provision.aws.client import AwsContext

# Tags that are the provider's own bookkeeping, on top of env and role.
TAG_SSH_USER = "mlops-vm/ssh-user"
TAG_CERT_SHA256 = "mlops-vm/cert-sha256"
TAG_DESIRED = "mlops-vm/desired-count"
TAG_KEY_SHA256 = "mlops-vm/key-sha256"

ELB_NAME_MAX = 32


def tag_dict(env: str, role: str, name: str, extra: dict[str, str] | None = None) -> dict:
    tags = dict(extra or {})
    tags.update({TAG_ENV: env, TAG_ROLE: role, "Name": name})
    return tags


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def as_dict(tag_items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {item["Key"]: item["Value"] for item in tag_items or []}


def tag_specifications(resource_type: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": tag_list(tags)}]


def filters(values: dict[str, str | list[str]]) -> list[dict[str, Any]]:
    """EC2 and Auto Scaling Filters: each filter name with its value (a string) or values."""
    return [
        {"Name": name, "Values": [value] if isinstance(value, str) else list(value)}
        for name, value in values.items()
    ]


def env_filters(env: str, role: str | None = None) -> list[dict[str, Any]]:
    """Filters that select the environment's resources (of ROLE)."""
    wanted = {f"tag:{TAG_ENV}": env}
    if role is not None:
        wanted[f"tag:{TAG_ROLE}"] = role
    return filters(wanted)


def has_tags(tag_items: list[dict[str, Any]] | None, env: str, role: str | None = None) -> bool:
    """Whether TAG_ITEMS (a resource's Tags) say it belongs to ENV (and ROLE)."""
    found = as_dict(tag_items)
    return found.get(TAG_ENV) == env and (role is None or found.get(TAG_ROLE) == role)


def tagged_ec2(
    ctx: "AwsContext", env: str, operation: str, doing: str, key: str, role: str | None = None
) -> list[dict[str, Any]]:
    """The EC2 resources of one kind that carry ENV's tags (and ROLE's): OPERATION (a
    describe_*) lists them under KEY."""
    return tagged(ctx, "ec2", env, operation, doing, key, role)


def tagged(
    ctx: "AwsContext",
    service: str,
    env: str,
    operation: str,
    doing: str,
    key: str,
    role: str | None = None,
) -> list[dict[str, Any]]:
    """The resources OPERATION of SERVICE lists under KEY, filtered by ENV's tags (and
    ROLE's) the way EC2 and Auto Scaling take tag Filters. The tags are checked here again:
    a server-side filter that is wrong or ignored must never hand another environment's
    resources to a delete."""
    found = ctx.pages(service, operation, key, doing, Filters=env_filters(env, role))
    return [item for item in found if has_tags(item.get("Tags"), env, role)]


def tagged_for(ctx: "AwsContext", service: str, arn: str, env: str, what: str) -> bool:
    """Whether the resource ARN of SERVICE carries ENV's tag (list_tags_for_resource, whose
    answer is a Key/Value list for some services and a dict for others): a delete by name
    must leave another environment's resource of that name alone."""
    found = ctx.call(
        service, "list_tags_for_resource", f"read the {what}'s tags", resourceArn=arn
    ).get("tags")
    found = found if isinstance(found, dict) else as_dict(found)
    return found.get(TAG_ENV) == env


def only_one(
    found: list[dict[str, Any]], kind: str, id_key: str, env: str
) -> dict[str, Any] | None:
    """The one resource of KIND the environment has, None without one. Several (a create
    retried after its answer was lost, or made by hand) is an error that names them all:
    picking one silently would build on a guess and leave the others behind."""
    if len(found) <= 1:
        return found[0] if found else None
    ids = ", ".join(sorted(str(item[id_key]) for item in found))
    raise failure(
        ErrorCode.CONFLICT,
        f"environment {env} has {len(found)} {kind}s where it owns one: {ids}",
        f"delete the {kind}s that are not in use (their {TAG_ENV} tag says {env}), then run again",
        f"find the {kind}",
    )


def base_name(env: str, role: str) -> str:
    """Name of per-role resources (security groups, launch template, scaling group)."""
    return f"mlops-vm-{env}-{role}"


# What ELB accepts as a load balancer or target group name (CreateLoadBalancer's rules).
ELB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?")
ELB_RESERVED_PREFIX = "internal-"  # ELB's own prefix for internal load balancers' DNS names


def elb_name_refusal(name: str) -> str | None:
    """Why ELB would refuse NAME (None: it takes it)."""
    if len(name) > ELB_NAME_MAX:
        return f"longer than {ELB_NAME_MAX} characters"
    if not ELB_NAME.fullmatch(name):
        return "only letters, digits and '-', not at the start or the end"
    if name.lower().startswith(ELB_RESERVED_PREFIX):
        return f"begins with {ELB_RESERVED_PREFIX!r}"
    return None


def elb_name(env: str, suffix: str) -> str:
    """An ALB / target group name: at most 32 of [A-Za-z0-9-], not ending in '-'."""
    name = re.sub(r"[^A-Za-z0-9-]", "-", f"{env}-{suffix}").strip("-")
    if len(name) <= ELB_NAME_MAX:
        return name
    digest = hashlib.sha256(env.encode()).hexdigest()[:6]
    room = ELB_NAME_MAX - len(suffix) - len(digest) - 2
    short_env = re.sub(r"[^A-Za-z0-9-]", "-", env)[:room].strip("-")
    return f"{short_env}-{digest}-{suffix}"


# A dry run plans against stand-ins for the ids of what it would create (ChangeLog's
# planned=): shaped like the real id (prefix "vpc", "sg", "arn", ...), never one AWS made.
PLANNED_MARK = "(new "


def planned(prefix: str, name: str) -> str:
    """The stand-in id of NAME, which a dry run would create."""
    return f"{prefix}-{PLANNED_MARK}{name})"


def is_planned(value: str | None) -> bool:
    """Whether VALUE is a dry run's stand-in (nothing to read: it does not exist yet)."""
    return value is not None and PLANNED_MARK in value


def existing(value: str | None) -> str | None:
    """VALUE, or None for a dry run's stand-in (for results: None is "not made yet")."""
    return None if is_planned(value) else value
