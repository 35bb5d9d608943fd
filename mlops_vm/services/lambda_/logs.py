"""The function's CloudWatch log group (Lambda writes /aws/lambda/<function> by itself; we
create it first to own its retention and tags) and reading it back (`logs`)."""

from mlops_vm.plan import Change
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import TAG_ENV
from mlops_vm.services.lambda_ import names


def find_log_group(ctx: AwsContext, function: str) -> dict | None:
    name = names.log_group_name(function)
    groups = ctx.call("logs", "describe_log_groups", "find the log group", logGroupNamePrefix=name)[
        "logGroups"
    ]
    return next((group for group in groups if group["logGroupName"] == name), None)


def ensure_log_group(
    ctx: AwsContext, env: str, function: str, retention_days: int, *, dry_run: bool
) -> list[Change]:
    name = names.log_group_name(function)
    group = find_log_group(ctx, function)
    if group is not None and group.get("retentionInDays") == retention_days:
        return []
    change = Change(
        "create" if group is None else "update", "log_group", name, f"{retention_days} days"
    )
    if dry_run:
        return [change]
    if group is None:
        ctx.call(
            "logs",
            "create_log_group",
            "create the log group",
            logGroupName=name,
            tags=names.tag_dict(env, name),
        )
    ctx.call(
        "logs",
        "put_retention_policy",
        "set the log retention",
        logGroupName=name,
        retentionInDays=retention_days,
    )
    return [change]


def delete_log_group(ctx: AwsContext, env: str, function: str, *, dry_run: bool) -> list[Change]:
    group = find_log_group(ctx, function)
    if group is None:
        return []
    name = group["logGroupName"]
    found = ctx.call(
        "logs",
        "list_tags_for_resource",
        "read the log group's tags",
        resourceArn=group["arn"].removesuffix(":*"),
    ).get("tags", {})
    if found.get(TAG_ENV) != env:
        return []
    if not dry_run:
        ctx.call(
            "logs", "delete_log_group", "delete the log group", missing_ok=True, logGroupName=name
        )
    return [Change("delete", "log_group", name)]


def tail(ctx: AwsContext, function: str, lines: int) -> list[str]:
    """The last LINES events the function wrote, oldest first, each prefixed with its
    stream (one per Lambda instance)."""
    if find_log_group(ctx, function) is None or lines <= 0:
        return []
    events = ctx.pages(
        "logs",
        "filter_log_events",
        "events",
        "read the function's logs",
        logGroupName=names.log_group_name(function),
    )
    events = sorted(events, key=lambda event: event["timestamp"])[-lines:]
    return [
        f"{event['logStreamName'].rsplit(']', 1)[-1]} | {event['message'].rstrip()}"
        for event in events
    ]
