"""AWS ECS on Fargate: the model image as an ECS service behind an HTTPS ALB.

What an environment owns (all tagged mlops-vm/env): an ECR repository with a lifecycle
policy, a cluster, a task execution role, a CloudWatch log group, the Fargate task
definition's revisions (one per release, tagged with it), the service (circuit breaker
with rollback, minimum healthy 100% / maximum 200%, health-check grace period),
Application Auto Scaling (CPU and ALB requests per task), and the AWS provider's network
and load balancer (mlops_vm/provision/aws), reused as they are.
"""

from mlops_vm.plan import Change
from mlops_vm.provision.aws import validate as aws_validate
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ErrorCode, ProvisionError, reporting_changes
from mlops_vm.provision.model import ProviderSettings
from mlops_vm.services.base import (
    PushResult,
    ServiceRecord,
    ServiceResult,
    ServiceSpec,
    ServiceTarget,
)
from mlops_vm.services.ecs import (
    destroy,
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
from mlops_vm.services.ecs.options import EcsOptions


class EcsTarget(ServiceTarget):
    name = "ecs"
    cloud = "aws"

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.ctx = AwsContext(settings)

    def check_offline(self, spec: ServiceSpec) -> None:
        options = EcsOptions.from_spec(spec.options)
        validate.check_spec(spec)
        fleet, lb = network.fleet_spec(spec, options), network.lb_spec(spec, options)
        aws_validate.check_network(fleet)
        aws_validate.check_names(lb)
        aws_validate.check_load_balancer_spec(fleet, lb)

    def validate(self, spec: ServiceSpec) -> None:
        self.check_offline(spec)
        options = EcsOptions.from_spec(spec.options)
        fleet, lb = network.fleet_spec(spec, options), network.lb_spec(spec, options)
        aws_validate.check_region(self.ctx)
        if fleet.network.existing:
            aws_validate.check_existing_network(self.ctx, fleet)
        aws_validate.check_certificate_exists(self.ctx, lb)
        validate.check_secrets_exist(self.ctx, spec)

    def push_image(self, spec: ServiceSpec, *, dry_run: bool = False) -> PushResult:
        options = EcsOptions.from_spec(spec.options)
        repository, changes = registry.ensure_repository(self.ctx, spec, options, dry_run=dry_run)
        with reporting_changes(changes):
            image, more = registry.push_image(self.ctx, spec, options, repository, dry_run=dry_run)
        return PushResult(image=image, changes=[*changes, *more])

    def ensure_service(self, spec: ServiceSpec, *, dry_run: bool = False) -> ServiceResult:
        changes: list[Change] = []
        with reporting_changes(changes):
            self._converge(spec, changes, dry_run=dry_run)
        return ServiceResult(
            record=None if dry_run and changes else self.status(spec.env), changes=changes
        )

    def _converge(self, spec: ServiceSpec, changes: list[Change], *, dry_run: bool) -> None:
        """ensure_service's steps; each appends what it made to CHANGES as it returns."""
        ctx, options = self.ctx, EcsOptions.from_spec(spec.options)
        net, lb, more = network.ensure_network_and_lb(ctx, spec, options, dry_run=dry_run)
        changes += more
        pushed = self.push_image(spec, dry_run=dry_run)
        changes += pushed.changes
        changes += logs.ensure_log_group(ctx, spec, options, dry_run=dry_run)
        role_arn, more = iam.ensure_execution_role(ctx, spec, dry_run=dry_run)
        changes += more
        changes += service.ensure_cluster(ctx, spec, dry_run=dry_run)
        found = service.find_service(ctx, spec.env)
        current = found["taskDefinition"] if found else None
        arn, more = task_definition.ensure_task_definition(
            ctx, spec, options, pushed.image, role_arn, current, dry_run=dry_run
        )
        changes += more
        target_group = lb.resources.get("target_group_arn")
        if found is None:
            changes += service.create_service(
                ctx, spec, options, net, target_group, arn, dry_run=dry_run
            )
            if not dry_run:
                # Settings a control plane did not take at creation (moto ignores some)
                # are set now, so that the next run finds nothing to change.
                created = service.find_service(ctx, spec.env) or {}
                wanted = service.service_settings(spec, options, net, target_group)
                service.update_settings(ctx, spec, created, wanted, dry_run=False)
                healthy, state = service.wait_deployed(ctx, spec.env, arn, spec.healthy_timeout_s)
                if not healthy:
                    raise ProvisionError(
                        ErrorCode.TIMEOUT,
                        f"the service's first revision never became healthy: {state}",
                        hint="look at `mlops-vm logs ENV` and service.readiness_path",
                        provider="aws",
                        operation="start the service",
                    )
        else:
            wanted = service.service_settings(spec, options, net, target_group)
            changes += service.update_settings(ctx, spec, found, wanted, dry_run=dry_run)
            changes += service.roll_out(
                ctx, spec.env, found, arn, spec.healthy_timeout_s, dry_run=dry_run
            )
        changes += scaling.ensure_scaling(
            ctx,
            spec,
            options,
            lb.resources.get("load_balancer_arn"),
            target_group,
            dry_run=dry_run,
        )

    def release(self, spec: ServiceSpec, *, dry_run: bool = False) -> ServiceResult:
        """A release converges like `provision`: only the task definition (a new revision)
        and the service's deployment change when the release is the only difference."""
        return self.ensure_service(spec, dry_run=dry_run)

    def rollback(self, env: str, *, dry_run: bool = False) -> ServiceResult:
        record = self.record_to_roll_back(env, "no service", "no previous revision")
        found = service.find_service(self.ctx, env)
        assert found is not None  # status found it a moment ago
        timeout = float(self.ctx.options.wait_timeout_s)
        changes = service.roll_out(
            self.ctx, env, found, record.previous.id, timeout, dry_run=dry_run
        )
        return ServiceResult(record=self.status(env), changes=changes)

    def status(self, env: str) -> ServiceRecord | None:
        return status.service_record(self.ctx, env)

    def logs(self, env: str, *, tail: int = 100) -> list[str]:
        return logs.tail(self.ctx, env, tail)

    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        return destroy.destroy(self.ctx, env, dry_run=dry_run)
