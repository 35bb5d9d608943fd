"""The CloudWatch log group the containers write to, and reading it back (`logs`)."""

from collections import deque

from mlops_vm.plan import Change
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs import names
from mlops_vm.services.ecs.options import EcsOptions

STREAM_PREFIX = "model"  # awslogs-stream-prefix: streams are model/<container>/<task id>
MAX_PAGES = 100  # a `logs` call reads at most this many pages (each up to 1 MB)


def find_log_group(ctx: AwsContext, env: str) -> dict | None:
    name = names.log_group_name(env)
    groups = ctx.call("logs", "describe_log_groups", "find the log group", logGroupNamePrefix=name)[
        "logGroups"
    ]
    return next((group for group in groups if group["logGroupName"] == name), None)


def ensure_log_group(
    ctx: AwsContext, spec: ServiceSpec, options: EcsOptions, *, dry_run: bool
) -> list[Change]:
    name = names.log_group_name(spec.env)
    group = find_log_group(ctx, spec.env)
    changes: list[Change] = []
    if group is None:
        changes.append(Change("create", "log_group", name, f"{options.log_retention_days} days"))
        if dry_run:
            return changes
        ctx.call(
            "logs",
            "create_log_group",
            "create the log group",
            logGroupName=name,
            tags={item["key"]: item["value"] for item in names.tag_list(spec.env, name)},
        )
    elif group.get("retentionInDays") != options.log_retention_days:
        changes.append(Change("update", "log_group", name, f"{options.log_retention_days} days"))
    if changes and not dry_run:
        ctx.call(
            "logs",
            "put_retention_policy",
            "set the log retention",
            logGroupName=name,
            retentionInDays=options.log_retention_days,
        )
    return changes


def tail(ctx: AwsContext, env: str, lines: int) -> list[str]:
    """The last LINES events of the environment's containers, oldest first, each
    prefixed with its task id."""
    if lines <= 0 or find_log_group(ctx, env) is None:
        return []
    last: deque[dict] = deque(maxlen=lines)
    token = None
    for _ in range(MAX_PAGES):  # events come oldest first, a page at a time
        page = ctx.call(
            "logs",
            "filter_log_events",
            "read the containers' logs",
            logGroupName=names.log_group_name(env),
            logStreamNamePrefix=STREAM_PREFIX,
            **({"nextToken": token} if token else {}),
        )
        last.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token:
            break
    ordered = sorted(last, key=lambda event: event["timestamp"])  # streams interleave
    return [
        f"{event['logStreamName'].rsplit('/', 1)[-1]} | {event['message']}" for event in ordered
    ]
