"""The CloudWatch log group the containers write to (mlops_vm/services/aws_logs.py, named
for the environment), and reading it back (`logs`)."""

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import names as tags
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.services import aws_logs
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs import names
from mlops_vm.services.settings import EcsServiceConfig

STREAM_PREFIX = "model"  # awslogs-stream-prefix: streams are model/<container>/<task id>


def ensure_log_group(
    ctx: AwsContext, log: ChangeLog, spec: ServiceSpec, options: EcsServiceConfig
) -> None:
    name = names.log_group_name(spec.env)
    tag_dict = tags.tag_dict(spec.env, names.ROLE_SERVICE, name)
    aws_logs.ensure_log_group(ctx, log, name, options.log_retention_days, tag_dict)


def delete_log_group(ctx: AwsContext, log: ChangeLog, env: str) -> None:
    aws_logs.delete_log_group(ctx, log, names.log_group_name(env), env)


def tail(ctx: AwsContext, env: str, lines: int) -> list[str]:
    """The last LINES events of the environment's containers, oldest first, each
    prefixed with its task id."""
    events = aws_logs.last_events(ctx, names.log_group_name(env), lines, STREAM_PREFIX)
    return [f"{event['logStreamName'].rsplit('/', 1)[-1]} | {event['message']}" for event in events]
