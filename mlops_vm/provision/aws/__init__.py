"""The AWS provider (boto3): VPC, EC2 fleet or Auto Scaling group, ALB with ACM.

    provider = AwsProvider(ProviderSettings(name="aws", region="eu-west-1"))
    provider.validate(fleet_spec, lb_spec)
    fleet = provider.ensure_fleet(fleet_spec)
    lb = provider.ensure_load_balancer(lb_spec, fleet)

One concern per module: client.py (clients, the call wrapper, waiters), errors.py
(classification), names.py (tags, names, a dry run's stand-in ids), network.py and
security_groups.py, images.py, instances.py (fleet),
scaling_group.py (launch template, ASG, policies), group_release.py (the release a group
serves and the one it replaced), group_status.py (`status`), certificates.py (ACM),
load_balancer.py (ALB, target group, listeners, targets), targets.py (one target out
and back, for releases), destroy.py, validate.py.
Everything is found again by its mlops-vm/env and mlops-vm/role tags; no state file.
Every create, update and delete goes through one ChangeLog (mlops_vm.plan) handed down the
steps: a dry run skips the calls and plans against stand-ins for the ids it would get.

ProviderSettings.options: see client.AwsOptions (key_name, image_owner, poll_interval_s,
wait_timeout_s, retry_attempts, retry_budget_s, ...). Credentials: boto3's standard chain only.
"""

from dataclasses import replace

from mlops_vm.metrics import Figures
from mlops_vm.plan import Change, ChangeLog, changes_of
from mlops_vm.provision.aws import (
    bake,
    boot_payload,
    group_release,
    group_status,
    images,
    instance_identity,
    instances,
    load_balancer,
    metrics,
    network,
    resize,
    scaling_group,
    targets,
)
from mlops_vm.provision.aws import destroy as destroy_module
from mlops_vm.provision.aws import validate as validate_module
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.base import Provider
from mlops_vm.provision.model import (
    TAG_FINGERPRINT,
    TAG_RELEASE,
    FleetResult,
    FleetSpec,
    GroupStatus,
    ImageResult,
    ImageSpec,
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

    def figures(self, env: str, window_s: float) -> dict[str, Figures]:
        return metrics.load_balancer_figures(self.ctx, env, window_s)

    def validate(self, fleet: FleetSpec, lb: LoadBalancerSpec | None) -> None:
        validate_module.validate(self.ctx, fleet, lb)

    def ensure_fleet(self, spec: FleetSpec, *, dry_run: bool = False) -> FleetResult:
        with self.change_log(dry_run=dry_run) as log:
            return self._ensure_fleet(spec, log)

    def ensure_release_image(
        self, fleet: FleetSpec, image: ImageSpec, *, dry_run: bool = False
    ) -> tuple[ImageResult, list[Change]]:
        with self.change_log(dry_run=dry_run) as log:
            ids, settings = self._launch_basis(fleet, log)
            result = bake.ensure_release_image(self.ctx, fleet, image, ids, settings, log)
        return result, log.changes

    def _launch_basis(self, spec: FleetSpec, log: ChangeLog) -> tuple[network.NetworkIds, dict]:
        """The network, and the launch settings (base image, type, disk, key) instances and
        image builders boot with."""
        ids = network.converge_network(self.ctx, spec, log)
        image = images.resolve_image(self.ctx, spec.instance.image)
        key_name = instances.ensure_key_pair(self.ctx, spec, log)
        return ids, instances.launch_settings(spec, image, key_name)

    def _ensure_fleet(self, spec: FleetSpec, log: ChangeLog) -> FleetResult:
        """ensure_fleet's steps; each writes what it makes (or plans) to LOG."""
        ctx = self.ctx
        ids, settings = self._launch_basis(spec, log)
        result_network = {
            **ids.as_dict(),
            "service_port": spec.service_port,
            "lb_security_group_owned": not spec.network.existing.get("lb_security_group_id"),
            "mode": spec.mode,
            "scaling_group": None,
            "target_requests_per_instance": None,
            # What this run launched (stand-ins in a dry run, which lists none of them
            # yet): the load balancer step registers them too, so its plan names them.
            "launched_instance_ids": [],
        }
        assert ids.instance_security_group_id is not None
        if spec.mode == "scaling_group":
            self._retire_fleet(spec, log)
            self._ensure_scaling_group(spec, ids, settings, log)
            result_network["scaling_group"] = scaling_group.group_name(spec.env, spec.role)
            result_network["target_requests_per_instance"] = (
                spec.autoscaling.target_requests_per_instance
            )
        else:
            self._retire_scaling_group(spec, log)
            result_network["launched_instance_ids"] = instances.ensure_fleet_instances(
                ctx, spec, ids.subnet_ids, ids.instance_security_group_id, settings, log
            )
        found = instances.list_instances(ctx, spec.env, spec.role)
        return FleetResult(instances=found, changes=log.changes, network=result_network)

    def _ensure_scaling_group(
        self, spec: FleetSpec, ids: network.NetworkIds, settings: dict, log: ChangeLog
    ) -> None:
        ctx = self.ctx
        name = scaling_group.group_name(spec.env, spec.role)
        # What went wrong before this run is not this run's failure.
        earlier = scaling_group.activity_ids(ctx, name)
        assert ids.instance_security_group_id is not None
        template_spec = spec
        if spec.release_image is not None:
            # The release's image (reused or baked now); the template's instances carry
            # its release and fingerprint, so each template version says what it runs.
            baked = bake.ensure_release_image(ctx, spec, spec.release_image, ids, settings, log)
            settings = {**settings, "ImageId": baked.image_id}
            release_tags = {
                TAG_RELEASE: spec.release_image.release,
                TAG_FINGERPRINT: spec.release_image.fingerprint,
            }
            template_spec = replace(
                spec, instance=replace(spec.instance, tags={**spec.instance.tags, **release_tags})
            )
        template_spec, settings = self._boot_by_identity(template_spec, settings, log)
        data = scaling_group.template_data(template_spec, settings, ids.instance_security_group_id)
        template_id, refresh = scaling_group.ensure_launch_template(ctx, spec, data, log)
        scaling_group.ensure_group(ctx, spec, template_id, ids.subnet_ids, refresh=refresh, log=log)
        group_release.record_release(ctx, spec, log)
        scaling_group.ensure_cpu_policy(ctx, name, spec.autoscaling.target_cpu_percent, log)
        if ctx.options.wait_for_scaling_group:
            # A real run's only: the instances of the group it made or changed.
            log.follow_up(lambda: self._wait_in_service(spec, earlier))

    def _boot_by_identity(
        self, spec: FleetSpec, settings: dict, log: ChangeLog
    ) -> tuple[FleetSpec, dict]:
        """With InstanceSpec.boot: the payload in S3 (none for a baked image), the
        instances' role and profile, and SPEC's user-data what reads both with that profile:
        the fetcher, or a baked image's boot hook (nothing secret either way)."""
        plan = spec.instance.boot
        if plan is None:
            return spec, settings
        ctx = self.ctx
        image = self.booting_image(spec)
        url = None if image else boot_payload.ensure_payload(ctx, spec.env, spec.role, plan, log)
        bucket = url.removeprefix("s3://").split("/", 1)[0] if url else None
        profile_arn = instance_identity.ensure_identity(ctx, spec.env, spec.role, plan, bucket, log)
        endpoint = ctx.options.boot_endpoint_url
        source = plan.source(
            "aws",
            url,
            region=ctx.region,
            metadata_url=ctx.options.boot_metadata_url,
            endpoints=dict.fromkeys(instance_identity.BOOT_SERVICES, endpoint) if endpoint else {},
        )
        instance = replace(spec.instance, user_data=self.boot_user_data(image, source))
        return replace(spec, instance=instance), {
            **settings,
            "IamInstanceProfile": {"Arn": profile_arn},
        }

    def _wait_in_service(self, spec: FleetSpec, earlier: set[str]) -> None:
        """Until the group's instances (as many as it wants, at most count) are InService;
        a scaling activity failed since EARLIER ends the wait with its reason."""
        name = scaling_group.group_name(spec.env, spec.role)
        group = scaling_group.find_group(self.ctx, name)
        scaling_group.wait_in_service(
            self.ctx,
            name,
            min(spec.count, (group or {}).get("DesiredCapacity", spec.count)),
            known_activities=earlier,
        )

    def _retire_scaling_group(self, spec: FleetSpec, log: ChangeLog) -> None:
        """Switching to fleet mode: the environment's scaling group and template go."""
        name = scaling_group.group_name(spec.env, spec.role)
        if scaling_group.find_group(self.ctx, name):
            log.delete(
                "scaling_group",
                name,
                lambda: scaling_group.delete_group(self.ctx, name),
                "fleet mode",
            )
        template = scaling_group.find_template(self.ctx, name)
        if template:
            log.delete(
                "launch_template",
                name,
                lambda: scaling_group.delete_template(self.ctx, template["LaunchTemplateId"]),
                "fleet mode",
            )

    def _retire_fleet(self, spec: FleetSpec, log: ChangeLog) -> None:
        """Switching to scaling-group mode: the fleet's own instances go, drained first."""
        members = instances.fleet_members(self.ctx, spec)
        ids = [raw["InstanceId"] for raw in members]
        load_balancer.drain_targets(self.ctx, spec.env, ids, log)
        log.apply_all(
            [
                Change("delete", "instance", instances.to_instance(raw).name, "scaling-group mode")
                for raw in members
            ],
            lambda: instances.terminate(self.ctx, ids),
        )

    def list_instances(self, env: str, role: str | None = None) -> list[Instance]:
        return instances.list_instances(self.ctx, env, role)

    def group_status(self, env: str) -> GroupStatus | None:
        return group_status.group_status(self.ctx, env)

    def previous_release(self, env: str) -> str | None:
        return group_release.previous_release(self.ctx, env)

    def surplus_instances(self, spec: FleetSpec) -> list[Instance]:
        if spec.mode != "fleet":
            return []
        _, surplus = instances.plan_fleet(instances.fleet_members(self.ctx, spec), spec.count)
        return [instances.to_instance(raw) for raw in surplus]

    def ensure_load_balancer(
        self, spec: LoadBalancerSpec, fleet: FleetResult, *, dry_run: bool = False
    ) -> LoadBalancerResult:
        return load_balancer.ensure_load_balancer(self.ctx, spec, fleet, dry_run=dry_run)

    def target_health(self, spec: LoadBalancerSpec) -> list[TargetHealth]:
        return load_balancer.target_health(self.ctx, spec)

    def deregister_step(self, spec: LoadBalancerSpec, instance: Instance, log: ChangeLog) -> None:
        targets.deregister_target(self.ctx, spec, instance, log)

    def register_step(self, spec: LoadBalancerSpec, instance: Instance, log: ChangeLog) -> None:
        targets.register_target(self.ctx, spec, instance, log)

    def resize_instance(
        self, spec: FleetSpec, instance: Instance, *, dry_run: bool = False
    ) -> list[Change]:
        return changes_of(
            lambda log: resize.resize_instance(self.ctx, spec, instance, log), dry_run=dry_run
        )

    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        return destroy_module.destroy(self.ctx, env, dry_run=dry_run)
