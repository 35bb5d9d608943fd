"""The GCP provider: Compute Engine (compute v1 through google-api-python-client).

    provider = GcpProvider(ProviderSettings(name="gcp", region="europe-west1",
                                            options={"project": "my-project"}))

Credentials come from Application Default Credentials (google.auth.default()); tests pass
`credentials=` (or options["credentials"]) and aim the same client at a fake with
ProviderSettings.endpoint_url. Options (ProviderSettings.options):

    project              the project id (required)
    service_account      instances' service account email ("default")
    scopes               its OAuth scopes (cloud-platform)
    external_ip          give instances an ephemeral public IP (True)
    poll_interval_s      between operation polls (2.0)
    operation_timeout_s  per operation (900)
    running_timeout_s    instance STAGING -> RUNNING (600)
    stable_timeout_s     managed instance group until stable (1200)
    retry_attempts, retry_base_delay_s, http_timeout_s   transport tuning
    retry_budget_s       seconds of retry waits one call may spend (300): a longer
                         Retry-After fails at once with THROTTLED
    credentials          a google.auth Credentials object (instead of ADC)
    boot_bucket          scaling groups' payload bucket (mlops-vm-<env>-boot-<project>)
    boot_metadata_url    emulators only: the metadata server the instances' fetcher asks
    boot_endpoint_url    emulators only: the Storage / Secret Manager root it calls

One module per concern: client (calls, retries, requestIds, operations), errors
(classification), names (names, labels, links), network, instances (fleet), scaling_group
(template, MIG, autoscaler), converge (get-or-create-then-fix of the load balancer's global
parts), load_balancer, targets (one target out and back, for releases), destroy, validate;
a scaling group's boot by identity: boot_apis, boot_payload, instance_identity, secret_refs.
"""

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from mlops_vm.metrics import Figures
from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision import model
from mlops_vm.provision.base import Provider
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp import (
    bake,
    boot_payload,
    group_status,
    instance_identity,
    instances,
    load_balancer,
    metrics,
    network,
    resize,
    scaling_group,
    secret_refs,
    targets,
)
from mlops_vm.provision.gcp import destroy as teardown
from mlops_vm.provision.gcp import validate as checks
from mlops_vm.provision.gcp.boot_apis import BootApis, emulator_endpoints
from mlops_vm.provision.gcp.client import ClientOptions, ComputeClient, build_service
from mlops_vm.provision.gcp.context import Context, InstanceOptions
from mlops_vm.provision.gcp.converge import get_global
from mlops_vm.provision.gcp.errors import PROVIDER, reporting_partial
from mlops_vm.provision.gcp.names import Names
from mlops_vm.provision.retry import DEFAULT_BUDGET_S

KNOWN_OPTIONS = {
    "project",
    "credentials",
    "service_account",
    "scopes",
    "external_ip",
    "poll_interval_s",
    "operation_timeout_s",
    "running_timeout_s",
    "stable_timeout_s",
    "retry_attempts",
    "retry_base_delay_s",
    "retry_budget_s",
    "http_timeout_s",
    "boot_bucket",
    "boot_metadata_url",
    "boot_endpoint_url",
}
DEFAULT_ZONE_COUNT = 2


class GcpProvider(Provider):
    name = "gcp"

    def __init__(
        self,
        settings: model.ProviderSettings,
        *,
        credentials: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(settings)
        options = dict(settings.options)
        unknown = sorted(set(options) - KNOWN_OPTIONS)
        if unknown:
            raise self._invalid(
                f"unknown provider options: {', '.join(unknown)}",
                f"use only: {', '.join(sorted(KNOWN_OPTIONS))}",
            )
        self._credentials = credentials if credentials is not None else options.get("credentials")
        self._sleep = sleep
        self._client: ComputeClient | None = None
        self._boot_apis: BootApis | None = None

    # -- plumbing ------------------------------------------------------------------------

    def reporting(self, changes: list[Change]) -> AbstractContextManager[None]:
        return reporting_partial(changes)

    def _invalid(self, message: str, hint: str) -> ProvisionError:
        return ProvisionError(
            ErrorCode.INVALID_INPUT, message, hint=hint, provider=PROVIDER, operation="configure"
        )

    def _option(self, key: str, default: Any) -> Any:
        return self.settings.options.get(key, default)

    def compute_client(self) -> ComputeClient:
        """The client, built on first use (building it reads credentials)."""
        if self._client is None:
            project = self._option("project", None)
            if not project:
                raise self._invalid(
                    "ProviderSettings.options['project'] is not set",
                    "set the GCP project id in the inventory",
                )
            service = build_service(
                endpoint_url=self.settings.endpoint_url,
                credentials=self._credentials,
                http_timeout_s=float(self._option("http_timeout_s", 60.0)),
            )
            options = ClientOptions(
                poll_interval_s=float(self._option("poll_interval_s", 2.0)),
                operation_timeout_s=float(self._option("operation_timeout_s", 900.0)),
                retry_attempts=int(self._option("retry_attempts", 6)),
                retry_base_delay_s=float(self._option("retry_base_delay_s", 0.5)),
                retry_budget_s=float(self._option("retry_budget_s", DEFAULT_BUDGET_S)),
            )
            self._client = ComputeClient(service, project, options, sleep=self._sleep)
        return self._client

    def boot_apis(self) -> BootApis:
        """IAM, Storage, Secret Manager and Artifact Registry, built on first use."""
        if self._boot_apis is None:
            compute = self.compute_client()
            self._boot_apis = BootApis(
                project=compute.project,
                options=compute.options,
                endpoint_url=self.settings.endpoint_url,
                credentials=self._credentials,
                http_timeout_s=float(self._option("http_timeout_s", 60.0)),
                sleep=self._sleep,
            )
        return self._boot_apis

    def _boot_bucket(self, ctx: Context, env: str) -> str:
        return boot_payload.bucket_name(ctx.project, env, self._option("boot_bucket", None))

    def figures(self, env: str, window_s: float) -> dict[str, Figures]:
        """Per backend of ENV's HTTPS load balancer (its instance groups: Cloud Monitoring
        counts a load balancer's requests per backend, not per instance)."""
        compute = self.compute_client()
        service = build_service(
            endpoint_url=self.settings.endpoint_url,
            credentials=self._credentials,
            http_timeout_s=float(self._option("http_timeout_s", 60.0)),
            api="monitoring",
            version="v3",
        )
        client = ComputeClient(service, compute.project, compute.options, sleep=self._sleep)
        labels = {"url_map_name": Names(env).url_map}
        found = metrics.figures(client, metrics.HTTPS_LOAD_BALANCER, labels, window_s)
        return {f"backend {name}": figures for name, figures in sorted(found.items())}

    def _context(self, env: str) -> Context:
        if not self.settings.region:
            raise self._invalid(
                "ProviderSettings.region is not set", "set the GCP region, e.g. europe-west1"
            )
        client = self.compute_client()
        scopes = self._option("scopes", InstanceOptions.scopes)
        return Context(
            client=client,
            project=client.project,
            region=self.settings.region,
            names=Names(env),
            instance_options=InstanceOptions(
                service_account=str(self._option("service_account", "default")),
                scopes=tuple(scopes),
                external_ip=bool(self._option("external_ip", True)),
            ),
            running_timeout_s=float(self._option("running_timeout_s", 600.0)),
            stable_timeout_s=float(self._option("stable_timeout_s", 1200.0)),
        )

    def _zones(self, ctx: Context, spec: model.FleetSpec) -> list[str]:
        """FleetSpec.zones, or the region's first two zones (not every region has -a)."""
        zones = checks.region_zones(ctx)
        return list(spec.zones) if spec.zones else zones[:DEFAULT_ZONE_COUNT]

    # -- the interface -------------------------------------------------------------------

    def check_offline(self, fleet: model.FleetSpec, lb: model.LoadBalancerSpec | None) -> None:
        if not self.settings.region:
            raise self._invalid(
                "ProviderSettings.region is not set", "set the GCP region, e.g. europe-west1"
            )
        checks.check_local(Names(fleet.env), fleet, lb)

    def validate(self, fleet: model.FleetSpec, lb: model.LoadBalancerSpec | None) -> None:
        self.check_offline(fleet, lb)
        ctx = self._context(fleet.env)
        checks.check_remote(ctx, fleet, self._zones(ctx, fleet))
        plan = fleet.instance.boot
        if plan is not None:
            # The instances read these at boot: one missing would fail every instance.
            apis = self.boot_apis()
            secret_refs.check_secrets_exist(apis, dict(plan.fields), "fleet.secrets")
            repository = instance_identity.repository_of(plan)
            if repository:
                secret_refs.check_repository_exists(apis, repository, "model.image")

    def ensure_fleet(self, spec: model.FleetSpec, *, dry_run: bool = False) -> model.FleetResult:
        ctx = self._context(spec.env)
        with self.change_log(dry_run=dry_run) as log:
            zones = self._zones(ctx, spec)
            refs = network.ensure_network(ctx, spec.network, log)
            network.ensure_firewalls(ctx, spec, refs, log)
            details: dict[str, Any] = {
                "project": ctx.project,
                "region": ctx.region,
                "zones": zones,
                "network": refs.network,
                "subnetwork": refs.subnetwork,
                "network_tag": ctx.names.network_tag,
                "service_port": spec.service_port,
                "role": spec.role,
                "mode": spec.mode,
            }
            if spec.mode == "scaling_group":
                spec = self.on_release_image(
                    spec,
                    lambda image: bake.ensure_release_image(ctx, spec, image, refs, zones[0], log),
                    bake.release_labels,
                )
                spec, group_ctx = self._boot_by_identity(ctx, spec, log)
                details.update(
                    scaling_group.ensure_scaling_group(group_ctx, spec, refs, zones, log)
                )
                details["max_rate_per_instance"] = scaling_group.backend_rate_per_instance(
                    spec.autoscaling
                )
            else:
                created = instances.ensure_count(ctx, spec, refs, zones, log)
                # The LB's groups take them (in a dry run too, where no list shows them yet).
                details["created"] = [{"name": name, "zone": zone} for name, zone in created]
        return model.FleetResult(
            instances=self.list_instances(spec.env, spec.role),
            changes=log.changes,
            network=details,
        )

    def ensure_release_image(
        self, fleet: model.FleetSpec, image: model.ImageSpec, *, dry_run: bool = False
    ) -> tuple[model.ImageResult, list[Change]]:
        ctx = self._context(fleet.env)
        with self.change_log(dry_run=dry_run) as log:
            zones = self._zones(ctx, fleet)
            refs = network.ensure_network(ctx, fleet.network, log)
            network.ensure_firewalls(ctx, fleet, refs, log)
            result = bake.ensure_release_image(ctx, fleet, image, refs, zones[0], log)
        return result, log.changes

    def _boot_by_identity(
        self, ctx: Context, spec: model.FleetSpec, log: ChangeLog
    ) -> tuple[model.FleetSpec, Context]:
        """With InstanceSpec.boot: the payload in Cloud Storage (none for a baked image), the
        instances' service account and its grants, SPEC's user-data what reads both with it:
        the fetcher, or a baked image's boot hook (nothing secret either way), and a context
        whose templates run as that account."""
        plan = spec.instance.boot
        if plan is None:
            return spec, ctx
        apis = self.boot_apis()
        bucket = self._boot_bucket(ctx, spec.env)
        image = self.booting_image(spec)
        url = None
        if image is None:
            url = boot_payload.ensure_payload(
                apis, spec.env, spec.role, ctx.region, bucket, plan, log
            )
        else:  # the bucket keeps the grant record only (destroy takes the grants back)
            boot_payload.ensure_bucket(apis, spec.env, spec.role, ctx.region, bucket, log)
        email = instance_identity.ensure_identity(apis, spec.env, spec.role, plan, bucket, log)
        root = self._option("boot_endpoint_url", None)
        source = plan.source(
            "gcp",
            url,
            region=ctx.region,
            metadata_url=self._option("boot_metadata_url", None),
            endpoints=emulator_endpoints(root) if root else {},
        )
        instance = replace(spec.instance, user_data=self.boot_user_data(image, source))
        options = replace(ctx.instance_options, service_account=email)
        return replace(spec, instance=instance), replace(ctx, instance_options=options)

    def list_instances(self, env: str, role: str | None = None) -> list[model.Instance]:
        ctx = self._context(env)
        found = [instances.to_instance(r) for r in instances.list_resources(ctx, env, role)]
        return sorted(found, key=lambda instance: instance.name)

    def group_status(self, env: str) -> model.GroupStatus | None:
        # Only the environment matters to the backend service's health.
        lb = model.LoadBalancerSpec(env=env, certificate=model.CertificateSpec())
        return group_status.group_status(
            self._context(env), env, lambda: {t.instance_id: t for t in self.target_health(lb)}
        )

    def previous_release(self, env: str) -> str | None:
        return group_status.releases_of(self._context(env), env)[1]

    def ensure_load_balancer(
        self, spec: model.LoadBalancerSpec, fleet: model.FleetResult, *, dry_run: bool = False
    ) -> model.LoadBalancerResult:
        ctx = self._context(spec.env)
        with self.change_log(dry_run=dry_run) as log:
            resources = load_balancer.ensure(ctx, spec, fleet, log)
        return model.LoadBalancerResult(
            endpoint=load_balancer.endpoint(spec, resources["address"]),
            changes=log.changes,
            targets=self.target_health(spec),
            resources=resources,
        )

    def target_health(self, spec: model.LoadBalancerSpec) -> list[model.TargetHealth]:
        ctx = self._context(spec.env)
        service_name = ctx.names.backend_service
        service = get_global(ctx, "backend_service", service_name)
        if service is None:
            return []
        ids = {instance.name: instance.id for instance in self.list_instances(spec.env)}
        health = []
        for backend in service.get("backends", []):
            answer = ctx.client.execute(
                f"read health of backend service {service_name}",
                lambda s, g=backend["group"]: s.backendServices().getHealth(
                    project=ctx.project, backendService=service_name, body={"group": g}
                ),
            )
            for status in answer.get("healthStatus", []):
                name = status["instance"].rsplit("/", 1)[-1]
                state = status.get("healthState", "UNKNOWN")
                health.append(
                    model.TargetHealth(
                        instance_id=ids.get(name, name),
                        healthy=state == "HEALTHY",
                        reason="" if state == "HEALTHY" else state,
                    )
                )
        return sorted(health, key=lambda target: target.instance_id)

    def surplus_instances(self, spec: model.FleetSpec) -> list[model.Instance]:
        ctx = self._context(spec.env)
        existing = instances.list_resources(ctx, spec.env, spec.role)
        return [instances.to_instance(r) for r in instances.surplus_resources(ctx, spec, existing)]

    def deregister_step(
        self, spec: model.LoadBalancerSpec, instance: model.Instance, log: ChangeLog
    ) -> None:
        targets.deregister_target(self._context(spec.env), spec, instance, log)

    def register_step(
        self, spec: model.LoadBalancerSpec, instance: model.Instance, log: ChangeLog
    ) -> None:
        targets.register_target(self._context(spec.env), spec, instance, log)

    def resize_instance(
        self, spec: model.FleetSpec, instance: model.Instance, *, dry_run: bool = False
    ) -> list[Change]:
        return resize.resize_instance(self._context(spec.env), spec, instance, dry_run=dry_run)

    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        ctx = self._context(env)
        with self.change_log(dry_run=dry_run) as log:
            teardown.destroy(ctx, log)
            # After the templates that run as the service account. Provision makes the
            # bucket first and destroy deletes it last: without it there is nothing here.
            apis, bucket = self.boot_apis(), self._boot_bucket(ctx, env)
            if boot_payload.is_environments(boot_payload.find_bucket(apis, bucket), env):
                instance_identity.delete_identity(apis, env, model.ROLE_MODEL, bucket, log)
                boot_payload.delete_bucket(apis, bucket, env, log)
        return log.changes


__all__ = ["GcpProvider"]
