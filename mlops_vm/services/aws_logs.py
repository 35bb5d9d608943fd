"""The CloudWatch log group an AWS managed target's containers write to (ECS's awslogs
driver, Lambda's /aws/lambda/<function>): made by us to own its retention and tags,
deleted only when tagged with the environment, and read back for `mlops-vm logs`."""

from collections import deque
from typing import Any

from mlops_vm.plan import ChangeLog, Fix
from mlops_vm.provision.aws import names
from mlops_vm.provision.aws.client import AwsContext

MAX_PAGES = 100  # a `logs` call reads at most this many pages (each up to 1 MB)


def find_log_group(ctx: AwsContext, name: str) -> dict[str, Any] | None:
    groups = ctx.call("logs", "describe_log_groups", "find the log group", logGroupNamePrefix=name)[
        "logGroups"
    ]
    return next((group for group in groups if group["logGroupName"] == name), None)


def ensure_log_group(
    ctx: AwsContext, log: ChangeLog, name: str, retention_days: int, tags: dict[str, str]
) -> None:
    """The group NAME, tagged with TAGS, keeping RETENTION_DAYS days of logs."""

    def set_retention() -> None:
        ctx.call(
            "logs",
            "put_retention_policy",
            "set the log retention",
            logGroupName=name,
            retentionInDays=retention_days,
        )

    def create() -> None:
        ctx.call("logs", "create_log_group", "create the log group", logGroupName=name, tags=tags)
        set_retention()

    detail = f"{retention_days} days"
    log.ensure(
        "log_group",
        name,
        current=find_log_group(ctx, name),
        create=create,
        fixes=lambda group: (
            [Fix(detail, set_retention)] if group.get("retentionInDays") != retention_days else []
        ),
        detail=detail,
    )


def delete_log_group(ctx: AwsContext, log: ChangeLog, name: str, env: str) -> None:
    """The group NAME with its logs, when it is ENV's (tagged)."""
    group = find_log_group(ctx, name)
    if group is None:
        return
    if not names.tagged_for(ctx, "logs", group["arn"].removesuffix(":*"), env, "log group"):
        return
    log.delete(
        "log_group",
        name,
        lambda: ctx.delete("logs", "delete_log_group", "delete the log group", logGroupName=name),
    )


def last_events(
    ctx: AwsContext, name: str, lines: int, stream_prefix: str | None = None
) -> list[dict[str, Any]]:
    """The last LINES events of the group NAME (streams starting with STREAM_PREFIX),
    oldest first; [] when the group does not exist."""
    if lines <= 0 or find_log_group(ctx, name) is None:
        return []
    last: deque[dict[str, Any]] = deque(maxlen=lines)
    token = None
    for _ in range(MAX_PAGES):  # events come oldest first, a page at a time
        page = ctx.call(
            "logs",
            "filter_log_events",
            "read the containers' logs",
            logGroupName=name,
            **({"logStreamNamePrefix": stream_prefix} if stream_prefix else {}),
            **({"nextToken": token} if token else {}),
        )
        last.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token:
            break
    return sorted(last, key=lambda event: event["timestamp"])  # streams interleave
