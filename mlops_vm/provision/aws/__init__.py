"""The AWS provider (boto3): VPC, EC2 fleet or Auto Scaling group, ALB with ACM.

    provider = AwsProvider(ProviderSettings(name="aws", region="eu-west-1"))
    provider.validate(fleet_spec, lb_spec)
    fleet = provider.ensure_fleet(fleet_spec)
    lb = provider.ensure_load_balancer(lb_spec, fleet)

One concern per module: client.py (clients, the call wrapper, waiters), errors.py
(classification), network.py and security_groups.py, images.py, instances.py (fleet),
scaling_group.py (launch template, ASG, policies), certificates.py (ACM),
load_balancer.py (ALB, target group, listeners, targets), targets.py (one target out
and back, for releases), destroy.py, validate.py.
Everything is found again by its mlops-vm/env and mlops-vm/role tags; no state file.

ProviderSettings.options: see client.AwsOptions (key_name, image_owner, poll_interval_s,
wait_timeout_s, retry_attempts, retry_budget_s, ...). Credentials: boto3's standard chain only.
"""

from mlops_vm.plan import Change
from mlops_vm.provision.aws import destroy as destroy_module
from mlops_vm.provision.aws import (
    images,
    instances,
    load_balancer,
    network,
    resize,
    scaling_group,
    targets,
)
from mlops_vm.provision.aws import validate as validate_module
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.base import Provider
from mlops_vm.provision.errors import reporting_changes
from mlops_vm.provision.model import (
    FleetResult,
    FleetSpec,
    Instance,
    LoadBalancerResult,
    LoadBalancerSpec,
    ProviderSettings,
    TargetHealth,
)

__all__ = ["AwsProvider"]


class AwsProvider(Provider):
    name = "aws"

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.ctx = AwsContext(settings)

    def check_offline(self, fleet: FleetSpec, lb: LoadBalancerSpec | None) -> None:
        validate_module.check_offline(fleet, lb)

    def validate(self, fleet: FleetSpec, lb: LoadBalancerSpec | None) -> None:
        validate_module.validate(self.ctx, fleet, lb)

    def ensure_fleet(self, spec: FleetSpec, *, dry_run: bool = False) -> FleetResult:
        changes: list[Change] = []
        # A failure part-way still reports what the steps before it made.
        with reporting_changes(changes):
            return self._ensure_fleet(spec, changes, dry_run=dry_run)

    def _ensure_fleet(
        self, spec: FleetSpec, changes: list[Change], *, dry_run: bool
    ) -> FleetResult:
        """ensure_fleet's steps; each appends what it made to CHANGES as it returns."""
        ctx = self.ctx
        ids, more = network.ensure_network(ctx, spec, dry_run=dry_run)
        changes += more
        image = images.resolve_image(ctx, spec.instance.image)
        key_name, more = instances.ensure_key_pair(ctx, spec, dry_run=dry_run)
        changes += more
        settings = instances.launch_settings(spec, image, key_name)
        result_network = {
            **ids.as_dict(),
            "service_port": spec.service_port,
            "lb_security_group_owned": not spec.network.existing.get("lb_security_group_id"),
            "mode": spec.mode,
            "scaling_group": None,
            "target_requests_per_instance": None,
        }
        if spec.mode == "scaling_group":
            changes += self._retire_fleet(spec, dry_run=dry_run)
            changes += self._ensure_scaling_group(spec, ids, settings, dry_run=dry_run)
            result_network["scaling_group"] = scaling_group.group_name(spec.env, spec.role)
            result_network["target_requests_per_instance"] = (
                spec.autoscaling.target_requests_per_instance
            )
        else:
            changes += self._retire_scaling_group(spec, dry_run=dry_run)
            changes += instances.ensure_fleet_instances(
                ctx,
                spec,
                ids.subnet_ids,
                ids.instance_security_group_id,
                settings,
                dry_run=dry_run,
            )
        found = [] if ids.vpc_id is None else instances.list_instances(ctx, spec.env, spec.role)
        return FleetResult(instances=found, changes=changes, network=result_network)

    def _ensure_scaling_group(
        self, spec: FleetSpec, ids: network.NetworkIds, settings: dict, *, dry_run: bool
    ) -> list[Change]:
        ctx = self.ctx
        name = scaling_group.group_name(spec.env, spec.role)
        # What went wrong before this run is not this run's failure.
        earlier = set() if dry_run else scaling_group.activity_ids(ctx, name)
        data = scaling_group.template_data(spec, settings, ids.instance_security_group_id)
        template_id, refresh, changes = scaling_group.ensure_launch_template(
            ctx, spec, data, dry_run=dry_run
        )
        changes += scaling_group.ensure_group(
            ctx, spec, template_id, ids.subnet_ids, refresh=refresh, dry_run=dry_run
        )
        if dry_run and template_id is None:
            if spec.autoscaling.target_cpu_percent is not None:
                changes.append(Change("create", "scaling_policy", scaling_group.CPU_POLICY))
            return changes
        changes += scaling_group.ensure_cpu_policy(
            ctx, name, spec.autoscaling.target_cpu_percent, dry_run=dry_run
        )
        if not dry_run and ctx.options.wait_for_scaling_group:
            group = scaling_group.find_group(ctx, name)
            scaling_group.wait_in_service(
                ctx,
                name,
                min(spec.count, (group or {}).get("DesiredCapacity", spec.count)),
                known_activities=earlier,
            )
        return changes

    def _retire_scaling_group(self, spec: FleetSpec, *, dry_run: bool) -> list[Change]:
        """Switching to fleet mode: the environment's scaling group and template go."""
        name = scaling_group.group_name(spec.env, spec.role)
        changes: list[Change] = []
        if scaling_group.find_group(self.ctx, name):
            changes.append(Change("delete", "scaling_group", name, "fleet mode"))
            if not dry_run:
                scaling_group.delete_group(self.ctx, name)
        template = scaling_group.find_template(self.ctx, name)
        if template:
            changes.append(Change("delete", "launch_template", name, "fleet mode"))
            if not dry_run:
                scaling_group.delete_template(self.ctx, template["LaunchTemplateId"])
        return changes

    def _retire_fleet(self, spec: FleetSpec, *, dry_run: bool) -> list[Change]:
        """Switching to scaling-group mode: the fleet's own instances go."""
        members = instances.fleet_members(self.ctx, spec)
        ids = [raw["InstanceId"] for raw in members]
        changes = load_balancer.drain_targets(self.ctx, spec.env, ids, dry_run=dry_run)
        if not dry_run:
            instances.terminate(self.ctx, ids)
        return changes + [
            Change("delete", "instance", instances.to_instance(raw).name, "scaling-group mode")
            for raw in members
        ]

    def list_instances(self, env: str, role: str | None = None) -> list[Instance]:
        return instances.list_instances(self.ctx, env, role)

    def ensure_load_balancer(
        self, spec: LoadBalancerSpec, fleet: FleetResult, *, dry_run: bool = False
    ) -> LoadBalancerResult:
        return load_balancer.ensure_load_balancer(self.ctx, spec, fleet, dry_run=dry_run)

    def target_health(self, spec: LoadBalancerSpec) -> list[TargetHealth]:
        return load_balancer.target_health(self.ctx, spec)

    def deregister_target(
        self, spec: LoadBalancerSpec, instance: Instance, *, dry_run: bool = False
    ) -> list[Change]:
        return targets.deregister_target(self.ctx, spec, instance, dry_run=dry_run)

    def register_target(
        self, spec: LoadBalancerSpec, instance: Instance, *, dry_run: bool = False
    ) -> list[Change]:
        return targets.register_target(self.ctx, spec, instance, dry_run=dry_run)

    def resize_instance(
        self, spec: FleetSpec, instance: Instance, *, dry_run: bool = False
    ) -> list[Change]:
        return resize.resize_instance(self.ctx, spec, instance, dry_run=dry_run)

    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        return destroy_module.destroy(self.ctx, env, dry_run=dry_run)
