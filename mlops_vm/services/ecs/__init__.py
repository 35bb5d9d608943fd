"""AWS ECS on Fargate: the model image as an ECS service behind an HTTPS ALB.

What an environment owns (all tagged mlops-vm/env): an ECR repository with a lifecycle
policy, a cluster, a task execution role, a CloudWatch log group, the Fargate task
definition's revisions (one per release, tagged with it), the service (circuit breaker
with rollback, minimum healthy 100% / maximum 200%, health-check grace period),
Application Auto Scaling (CPU and ALB requests per task), and the AWS provider's network
and load balancer (mlops_vm/provision/aws), reused as they are. With canary.enabled a
release is judged on a weighted target-group pair first (services/ecs/canary.py).
"""

from mlops_vm.metrics import Figures
from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import metrics as aws_metrics
from mlops_vm.provision.aws import secret_refs as aws_secrets
from mlops_vm.provision.aws import validate as aws_validate
from mlops_vm.services.aws_target import AwsTarget
from mlops_vm.services.base import ServiceRecord, ServiceResult, ServiceSpec
from mlops_vm.services.ecs import (
    canary,
    destroy,
    domain,
    iam,
    logs,
    network,
    registry,
    scaling,
    service,
    status,
    task_definition,
    validate,
)
from mlops_vm.services.settings import EcsServiceConfig


class EcsTarget(AwsTarget[EcsServiceConfig]):
    name = "ecs"
    options_model = EcsServiceConfig
    has_canary = True

    def check_offline(self, spec: ServiceSpec) -> None:
        options = self._options(spec)
        validate.check_spec(spec)
        fleet, lb = network.fleet_spec(spec, options), network.lb_spec(spec, options)
        aws_validate.check_network(fleet)
        aws_validate.check_names(lb)
        aws_validate.check_load_balancer_spec(fleet, lb)

    def validate(self, spec: ServiceSpec) -> None:
        self.check_offline(spec)
        options = self._options(spec)
        fleet, lb = network.fleet_spec(spec, options), network.lb_spec(spec, options)
        aws_validate.check_region(self.ctx)
        if fleet.network.existing:
            aws_validate.check_existing_network(self.ctx, fleet)
        aws_validate.check_certificate_exists(self.ctx, lb)
        aws_secrets.check_secrets_exist(self.ctx, spec.secrets)

    def _push(self, log: ChangeLog, spec: ServiceSpec, options: EcsServiceConfig) -> str:
        repository = registry.ensure_repository(self.ctx, log, spec, options)
        return registry.push_image(self.ctx, log, spec, options, repository)

    def _converge(self, log: ChangeLog, spec: ServiceSpec) -> None:
        ctx, options = self.ctx, self._options(spec)
        canary.clear_leftover(ctx, log, spec.env)
        net, lb = network.ensure_network_and_lb(ctx, log, spec, options)
        image = self._push(log, spec, options)
        logs.ensure_log_group(ctx, log, spec, options)
        role_arn = iam.ensure_execution_role(ctx, log, spec)
        service.ensure_cluster(ctx, log, spec)
        found = service.find_service(ctx, spec.env)
        current = found["taskDefinition"] if found else None
        arn = task_definition.ensure_task_definition(
            ctx, log, spec, options, image, role_arn, current
        )
        target_group = lb.resources.get("target_group_arn")
        wanted = service.service_settings(spec, options, net, target_group)
        if found is None:
            service.create_service(ctx, log, spec, wanted, arn)
        else:
            service.update_settings(ctx, log, spec, found, wanted)
            domain.ensure_domain_tag(ctx, log, spec, found)
            release = canary.Release(ctx, spec, options, found, arn, net, lb)
            canary.roll_out(log, release, self.notes)
        scaling.ensure_scaling(
            ctx, log, spec, options, lb.resources.get("load_balancer_arn"), target_group
        )

    def rollback(self, env: str, *, dry_run: bool = False) -> ServiceResult:
        record = self.record_to_roll_back(env, "no service", "no previous revision")
        found = service.find_service(self.ctx, env)
        assert found is not None  # status found it a moment ago
        timeout = float(self.ctx.options.wait_timeout_s)
        log = ChangeLog(dry_run=dry_run)
        service.roll_out(self.ctx, log, env, found, record.previous.id, timeout)
        return ServiceResult(record=self.status(env), changes=log.changes)

    def status(self, env: str) -> ServiceRecord | None:
        return status.service_record(self.ctx, env)

    def figures(self, env: str, window_s: float) -> dict[str, Figures]:
        """The service's figures from CloudWatch, per target group of its ALB (a rolling
        deployment has one: ECS's figures are the service's, not per task definition;
        while a canary is judged, its own group too)."""
        return aws_metrics.load_balancer_figures(self.ctx, env, window_s)

    def logs(self, env: str, *, tail: int = 100) -> list[str]:
        return logs.tail(self.ctx, env, tail)

    def _destroy(self, log: ChangeLog, env: str) -> None:
        destroy.destroy(self.ctx, log, env)
