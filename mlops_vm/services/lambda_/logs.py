"""The function's CloudWatch log group (mlops_vm/services/aws_logs.py: Lambda writes
/aws/lambda/<function> by itself; we create it first to own its retention and tags) and
reading it back (`logs`)."""

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.services import aws_logs
from mlops_vm.services.lambda_ import names


def ensure_log_group(
    ctx: AwsContext, log: ChangeLog, env: str, function: str, retention_days: int
) -> None:
    name = names.log_group_name(function)
    aws_logs.ensure_log_group(ctx, log, name, retention_days, names.tag_dict(env, name))


def delete_log_group(ctx: AwsContext, log: ChangeLog, env: str, function: str) -> None:
    aws_logs.delete_log_group(ctx, log, names.log_group_name(function), env)


def tail(ctx: AwsContext, function: str, lines: int) -> list[str]:
    """The last LINES events the function wrote, oldest first, each prefixed with its
    stream (one per Lambda instance)."""
    events = aws_logs.last_events(ctx, names.log_group_name(function), lines)
    return [
        f"{event['logStreamName'].rsplit(']', 1)[-1]} | {event['message'].rstrip()}"
        for event in events
    ]
