"""Azure provider: VMs or a VM scale set behind an Application Gateway (Standard_v2).

    provider = AzureProvider(ProviderSettings(
        name="azure", region="westeurope", options={"subscription_id": "..."}))

Layout of this package (one concern per module):
  client.py         SDK clients (DefaultAzureCredential), the retry + error-translating wrapper
  errors.py         ARM error codes -> ErrorCode + hint
  names.py          names, ids and tags of an environment
  drift.py          desired body vs ARM's answer
  validate.py       checks before anything is created
  network.py        resource group, virtual network + subnets, NSG
  instances.py      fleet mode: VMs, NICs, OS disks
  scaling_group.py  scaling-group mode: scale set + autoscale setting
  boot_payload.py   scale sets that boot by identity: the payload's storage account and blob
  instance_identity.py  their user-assigned identity and its least-privilege role assignments
  blob.py, key_vault.py  the Blob storage and Key Vault data planes (operator's token)
  generic.py        ARM types with no typed SDK client, by id (storage, identities, roles)
  certificate.py    PFX from PEM, or Key Vault
  load_balancer.py  public IP, Application Gateway, backend registration, health
  targets.py        one VM out of the backend pool and back (releases)
  inventory.py      finding an environment's resource groups and instances again
  destroy.py        deletion in dependency order

Everything carries the tags mlops-vm-env / mlops-vm-role (Azure tags cannot hold "/").
Options (ProviderSettings.options): subscription_id (required), poll_interval_s,
operation_timeout_s, retry_attempts, retry_base_delay_s, retry_budget_s, gateway_identity_id,
backend_ca_file, backend_host_name, gateway_min_capacity, gateway_max_capacity, os_disk_type,
boot_storage_account (and, for emulators, boot_endpoint_url, boot_metadata_url).
The region may be a location name or its display name ("West Europe" is "westeurope").
Tests aim it at a fake ARM with endpoint_url, plus `credential` and `authentication_policy`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mlops_vm.metrics import Figures
from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision import model
from mlops_vm.provision.azure import (
    bake,
    boot_payload,
    destroy,
    group_release,
    group_status,
    instance_identity,
    instances,
    inventory,
    load_balancer,
    metrics,
    network,
    resize,
    scaling_group,
    targets,
    validate,
)
from mlops_vm.provision.azure.blob import BlobStore
from mlops_vm.provision.azure.client import Arm, AzureOptions
from mlops_vm.provision.azure.errors import PROVIDER
from mlops_vm.provision.azure.key_vault import KeyVaultSecrets
from mlops_vm.provision.base import Provider
from mlops_vm.provision.errors import ErrorCode, ProvisionError

__all__ = ["AzureProvider"]

# The data planes the instances' fetcher calls (under boot_endpoint_url in an emulator).
BOOT_SERVICES = ("blob", "keyvault", "acr")


class AzureProvider(Provider):
    name = "azure"

    def __init__(
        self,
        settings: model.ProviderSettings,
        *,
        credential: Any = None,
        authentication_policy: Any = None,
    ) -> None:
        """CREDENTIAL: a TokenCredential (default: DefaultAzureCredential).
        AUTHENTICATION_POLICY: replaces the SDK's bearer-token policy, which refuses plain
        http; tests use it to reach a local fake."""
        super().__init__(settings)
        self._credential = credential
        self._authentication_policy = authentication_policy
        self._arm: Arm | None = None

    @property
    def arm(self) -> Arm:
        """The SDK clients, built on first use (settings are checked then)."""
        if self._arm is None:
            self._arm = Arm.from_settings(
                self.settings,
                credential=self._credential,
                authentication_policy=self._authentication_policy,
            )
        return self._arm

    def check_offline(self, fleet: model.FleetSpec, lb: model.LoadBalancerSpec | None) -> None:
        validate.check_offline(AzureOptions.from_settings(self.settings), fleet, lb)

    def validate(self, fleet: model.FleetSpec, lb: model.LoadBalancerSpec | None) -> None:
        validate.validate(self.arm, fleet, lb, key_vault=self._data_plane(KeyVaultSecrets))

    def _data_plane(self, client: Any) -> Any:
        """A data-plane client (Key Vault, Blob storage) with the ARM clients' access."""
        return client(
            self.arm.credential,
            endpoint_url=self.settings.endpoint_url,
            authentication_policy=self._authentication_policy,
        )

    def ensure_fleet(self, spec: model.FleetSpec, *, dry_run: bool = False) -> model.FleetResult:
        validate.check_fleet_spec(spec)
        arm = self.arm
        layout = network.resolve_layout(arm, spec)
        disk_type = arm.options.os_disk_type
        group = layout.resource_group
        details: dict[str, Any] = {**layout.as_dict(), "mode": spec.mode}
        with self.change_log(dry_run=dry_run) as log:
            network.ensure_network(arm, layout, spec, log)
            if spec.mode == "fleet":
                # The load balancer step registers them (a dry run's exist only in the plan).
                details["new_instances"] = instances.converge_fleet(
                    arm, layout, spec, log, disk_type=disk_type
                )
                found = instances.fleet_instances(arm, group, spec.env, spec.role)
            else:
                spec = self.on_release_image(
                    spec,
                    lambda image: bake.ensure_release_image(arm, layout, spec, image, log),
                    bake.release_tags,
                )
                spec, identity_id = self._boot_by_identity(layout, spec, log)
                details["capacity"] = scaling_group.converge_scale_set(
                    arm, layout, spec, log, disk_type=disk_type, identity_id=identity_id
                )
                found = scaling_group.scale_set_instances(arm, group, spec.env, spec.role)
                details["scale_set_id"] = layout.ids.scale_set(layout.names.scale_set)
        return model.FleetResult(sorted(found, key=lambda i: i.name), log.changes, details)

    def ensure_release_image(
        self, fleet: model.FleetSpec, image: model.ImageSpec, *, dry_run: bool = False
    ) -> tuple[model.ImageResult, list[Change]]:
        validate.check_fleet_spec(fleet)
        layout = network.resolve_layout(self.arm, fleet)
        with self.change_log(dry_run=dry_run) as log:
            network.ensure_network(self.arm, layout, fleet, log)
            result = bake.ensure_release_image(self.arm, layout, fleet, image, log)
        return result, log.changes

    def _boot_by_identity(
        self, layout: Any, spec: model.FleetSpec, log: ChangeLog
    ) -> tuple[model.FleetSpec, str | None]:
        """With InstanceSpec.boot: the payload in Blob storage (none for a baked image), the
        instances' managed identity and its role assignments, and SPEC's customData what
        reads both with that identity: the fetcher, or a baked image's boot hook (nothing
        secret either way). The identity's id, or None."""
        plan = spec.instance.boot
        if plan is None:
            return spec, None
        arm = self.arm
        image = self.booting_image(spec)
        url, container = None, None
        if image is None:
            url, container = boot_payload.ensure_payload(
                arm, self._data_plane(BlobStore), layout, spec.env, spec.role, plan, log
            )
        identity = instance_identity.ensure_identity(arm, layout, log)
        wanted = instance_identity.grants(arm, plan, container)
        instance_identity.ensure_grants(arm, identity, wanted, log)
        endpoint = (arm.options.boot_endpoint_url or "").rstrip("/")
        source = plan.source(
            "azure",
            url,
            region=arm.location,
            identity_client_id=identity["properties"]["clientId"],
            metadata_url=arm.options.boot_metadata_url,
            endpoints={service: f"{endpoint}/{service}" for service in BOOT_SERVICES}
            if endpoint
            else {},
        )
        instance = replace(spec.instance, user_data=self.boot_user_data(image, source))
        return replace(spec, instance=instance), identity["id"]

    def list_instances(self, env: str, role: str | None = None) -> list[model.Instance]:
        return inventory.list_instances(self.arm, env, role)

    def group_status(self, env: str) -> model.GroupStatus | None:
        def health() -> list[model.TargetHealth]:
            found = inventory.find_gateway(self.arm, env)
            return load_balancer.health_of(self.arm, found[0], found[1]["name"]) if found else []

        return group_status.group_status(self.arm, env, health)

    def previous_release(self, env: str) -> str | None:
        found = group_status.find_scale_set(self.arm, env)
        return group_release.releases(found[1])[1] if found else None

    def surplus_instances(self, spec: model.FleetSpec) -> list[model.Instance]:
        if spec.mode != "fleet":
            return []
        layout = network.resolve_layout(self.arm, spec)
        return instances.surplus_instances(self.arm, layout, spec)

    def ensure_load_balancer(
        self, spec: model.LoadBalancerSpec, fleet: model.FleetResult, *, dry_run: bool = False
    ) -> model.LoadBalancerResult:
        if not fleet.network.get("resource_group"):
            raise ProvisionError(
                ErrorCode.INVALID_INPUT,
                "the fleet result carries no Azure network details",
                hint="pass the FleetResult that AzureProvider.ensure_fleet returned",
                provider=PROVIDER,
                operation="ensure load balancer",
            )
        validate.check_lb_spec(spec, self.arm.options)
        return load_balancer.ensure_load_balancer(self.arm, spec, fleet, dry_run=dry_run)

    def figures(self, env: str, window_s: float) -> dict[str, Figures]:
        """Per model host behind the Application Gateway (its BackendServer address; a
        backend that is no instance of ENV's is named by its address)."""
        found = inventory.find_gateway(self.arm, env)
        if found is None:
            return {}
        by_server = metrics.gateway_figures(self.arm, found[1]["id"], window_s)
        names = {i.private_ip: i.name for i in self.list_instances(env) if i.private_ip}
        return {
            f"host {names[server]}" if server in names else f"backend {server}": figures
            for server, figures in sorted(by_server.items())
        }

    def target_health(self, spec: model.LoadBalancerSpec) -> list[model.TargetHealth]:
        found = inventory.find_gateway(self.arm, spec.env)
        if found is None:
            raise ProvisionError(
                ErrorCode.NOT_FOUND,
                f"environment {spec.env!r} has no Application Gateway",
                hint="run provision first (it creates the load balancer)",
                provider=PROVIDER,
                operation="read backend health",
            )
        group, gateway = found
        return load_balancer.health_of(self.arm, group, gateway["name"])

    def deregister_step(
        self, spec: model.LoadBalancerSpec, instance: model.Instance, log: ChangeLog
    ) -> None:
        targets.deregister_target(self.arm, spec, instance, log)

    def register_step(
        self, spec: model.LoadBalancerSpec, instance: model.Instance, log: ChangeLog
    ) -> None:
        targets.register_target(self.arm, spec, instance, log)

    def resize_instance(
        self, spec: model.FleetSpec, instance: model.Instance, *, dry_run: bool = False
    ) -> list[Change]:
        return resize.resize_instance(self.arm, spec, instance, dry_run=dry_run)

    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        return destroy.destroy(self.arm, env, dry_run=dry_run)
