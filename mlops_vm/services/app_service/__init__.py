"""Azure App Service (Web App for Containers): the model image as a Linux web app.

What an environment owns, in the Azure provider's resource group mlops-vm-<env> (tagged
mlops-vm-env): an Azure Container Registry holding a copy of the image (registry: acr) or
none (registry: source), a Linux plan with an autoscale setting (CPU rules), the web app
(HTTPS only, TLS 1.2, always on, health check path, system identity) and its `staging`
slot. A release is set up on staging, health-checked there and swapped into production
(with canary.enabled, first given canary_percent of production's traffic by App Service's
traffic routing and judged on Azure Monitor's figures of both slots: services/canary.py);
the release a slot carries is recorded in its app settings, which move with the swap.
With service.domain, the production site also has that host name bound with SNI to a
managed or an uploaded certificate (domain.py).
"""

import json
import urllib.error
import urllib.request
from typing import Any

from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.web import WebSiteManagementClient

from mlops_vm.metrics import Figures
from mlops_vm.plan import Change, ChangeLog, Fix
from mlops_vm.provision.azure import destroy as azure_destroy
from mlops_vm.provision.azure import metrics
from mlops_vm.provision.azure.client import Arm
from mlops_vm.provision.azure.drift import converge, differences, shown
from mlops_vm.provision.azure.key_vault import KeyVaultSecrets
from mlops_vm.provision.azure.names import tags
from mlops_vm.provision.azure.network import get_resource_group, put_resource_group
from mlops_vm.provision.azure.scaling_group import cpu_rule
from mlops_vm.provision.errors import ErrorCode, ProvisionError, reporting_changes
from mlops_vm.provision.model import ROLE_MODEL, ProviderSettings
from mlops_vm.services import canary
from mlops_vm.services.app_service import registry, validate, web
from mlops_vm.services.app_service.domain import (
    AZURE_HOST_SUFFIX,
    Domains,
    converge_domain,
    dns_records,
    domain_endpoint,
    domain_resources,
)
from mlops_vm.services.app_service.names import STAGING, AppNames
from mlops_vm.services.app_service.options import options_of
from mlops_vm.services.base import (
    PushResult,
    ServiceRecord,
    ServiceResult,
    ServiceSpec,
    ServiceTarget,
)
from mlops_vm.services.settings import AppServiceConfig


def slot_figures(arm: Arm, site_id: str, slot: str | None, window_s: float) -> Figures:
    """A slot's figures (None: production) over the window, from Azure Monitor."""
    return metrics.app_service_figures(arm, metrics.slot_id(site_id, slot), window_s)


def https_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


class AppServiceTarget(ServiceTarget):
    name = "app_service"
    has_canary = True
    cloud = "azure"

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        credential: Any = None,
        authentication_policy: Any = None,
        probe: web.Probe = https_status,
        registry_login: registry.RegistryLogin | None = None,
    ) -> None:
        """CREDENTIAL, AUTHENTICATION_POLICY: as AzureProvider's. PROBE: how a slot's health
        URL is asked (tests answer it from a container running the slot's image).
        REGISTRY_LOGIN: push credentials for a login server (default: ACR's token exchange;
        tests log in to the local registry that stands in for ACR)."""
        super().__init__(settings)
        self.arm = Arm.from_settings(
            settings, credential=credential, authentication_policy=authentication_policy
        )
        subscription, kwargs = self.arm.subscription_id, self.arm.client_kwargs
        self.web = WebSiteManagementClient(self.arm.credential, subscription, **kwargs)
        self.acr = ContainerRegistryManagementClient(self.arm.credential, subscription, **kwargs)
        self.probe = probe
        self.registry_login = registry_login or registry.acr_login(self.arm.credential)
        self.key_vault = KeyVaultSecrets(
            self.arm.credential,
            endpoint_url=settings.endpoint_url,
            authentication_policy=authentication_policy,
        )

    # -- checks and the image --------------------------------------------------------------

    def check_offline(self, spec: ServiceSpec) -> None:
        validate.check_spec(spec, options_of(spec.options))

    def validate(self, spec: ServiceSpec) -> None:
        self.check_offline(spec)
        validate.check_secrets_exist(self.key_vault, spec, options_of(spec.options))

    def push_image(self, spec: ServiceSpec, *, dry_run: bool = False) -> PushResult:
        log = ChangeLog(dry_run=dry_run)
        return PushResult(image=self._push(spec, log), changes=log.changes)

    def _push(self, spec: ServiceSpec, log: ChangeLog) -> str:
        if options_of(spec.options).registry == "source":
            return spec.image  # the web app pulls from there
        return registry.push_image(self.arm, self.acr, self.registry_login, spec, log)

    # -- converge ----------------------------------------------------------------------------

    def ensure_service(self, spec: ServiceSpec, *, dry_run: bool = False) -> ServiceResult:
        log = ChangeLog(dry_run=dry_run)
        notes: list[str] = []
        with reporting_changes(log.changes):
            self._converge(spec, log, notes)
        # A plan with changes describes no service yet: what runs now is not the result.
        record = None if dry_run and log.changes else self.status(spec.env)
        return ServiceResult(record=record, changes=log.changes, notes=notes)

    def _converge(self, spec: ServiceSpec, log: ChangeLog, notes: list[str]) -> None:
        arm, names = self.arm, AppNames(spec.env, spec.name)
        options = options_of(spec.options)
        group = names.resource_group
        desired_group = {"location": arm.location, "tags": tags(spec.env, ROLE_MODEL)}
        converge(
            log,
            "resource_group",
            group,
            desired_group,
            get_resource_group(arm, group),
            lambda: put_resource_group(arm, group, desired_group),
        )
        image = self._push(spec, log)
        self._ensure_plan(spec, options, names, log)
        plan_id = self._plan_id(names)
        production = web.Slot(arm, self.web, names, None)
        site = production.get()
        config = web.site_config(spec, options, image)
        settings = web.app_settings(spec, options)
        body = web.site_body(spec, arm.location, plan_id)

        def update_site() -> None:
            arm.run(
                "update web app", self.web.web_apps.begin_create_or_update, group, names.site, body
            )

        def create_site() -> None:
            created = {**body, "properties": {**body["properties"], "siteConfig": config}}
            arm.run(
                "create web app",
                self.web.web_apps.begin_create_or_update,
                group,
                names.site,
                created,
            )
            production.set_config(config)
            production.set_settings({**settings, **web.release_settings(spec)})
            healthy, reason = web.wait_healthy(
                production, spec.readiness_path, self.probe, spec.healthy_timeout_s
            )
            if not healthy:
                raise web.unhealthy("the web app's first release", reason)

        log.ensure(
            "web_app",
            names.site,
            current=site,
            create=create_site,
            fixes=lambda current: (
                [Fix(shown(changed), update_site)]
                if (changed := differences(body, current))
                else []
            ),
            detail=spec.image,
        )
        if site is not None:  # a new web app got its config, settings and release above
            running = production.config().get("linuxFxVersion")
            kept = {**config, "linuxFxVersion": running or config["linuxFxVersion"]}
            web.converge_slot(production, kept, settings, log)
        web.ensure_auth(production, spec, log)
        if spec.domain or site is not None:
            self._ensure_domain(spec, names, production, site, log, notes)
        staging = web.Slot(arm, self.web, names, STAGING)
        if site is not None and staging.get() is not None:
            web.ensure_auth(staging, spec, log)
        self._ensure_autoscale(spec, options, names, plan_id, log)
        if site is not None:
            self._release(spec, image, notes, log)

    def _ensure_domain(
        self,
        spec: ServiceSpec,
        names: AppNames,
        production: web.Slot,
        site: web.Json | None,
        log: ChangeLog,
        notes: list[str],
    ) -> None:
        """service.domain on the production site (domain.py); its DNS records as notes."""
        records = []
        if spec.domain:
            shown = (log.follow_up(production.get, planned=site) or {}).get("properties") or {}
            host = shown.get("defaultHostName") or f"{names.site}{AZURE_HOST_SUFFIX}"
            verification = shown.get("customDomainVerificationId", "")
            records = dns_records(spec.domain.lower(), host, verification)
            notes += [f"DNS record to create: {record}" for record in records]
        domains = Domains(self.arm, self.web, names)
        converge_domain(domains, spec, self._plan_id(names), records, log)

    def _plan_id(self, names: AppNames) -> str:
        return (
            f"/subscriptions/{self.arm.subscription_id}/resourceGroups/{names.resource_group}"
            f"/providers/Microsoft.Web/serverfarms/{names.plan}"
        )

    def _ensure_plan(
        self, spec: ServiceSpec, options: AppServiceConfig, names: AppNames, log: ChangeLog
    ) -> None:
        arm, group = self.arm, names.resource_group
        actual = arm.read("read plan", self.web.app_service_plans.get, group, names.plan)
        desired = {
            "location": arm.location,
            "kind": "linux",
            "tags": tags(spec.env, ROLE_MODEL, spec.tags),
            "sku": {"name": options.sku},
            "properties": {"reserved": True},
        }
        # The capacity is the autoscale setting's: set at creation, never reset after.
        capacity = (actual or {}).get("sku", {}).get("capacity") or spec.min_instances
        body = {**desired, "sku": {"name": options.sku, "capacity": capacity}}
        converge(
            log,
            "app_service_plan",
            names.plan,
            desired,
            actual,
            lambda: arm.run(
                "create plan",
                self.web.app_service_plans.begin_create_or_update,
                group,
                names.plan,
                body,
            ),
            create_detail=f"{options.sku} x{spec.min_instances}",
        )

    def _ensure_autoscale(
        self,
        spec: ServiceSpec,
        options: AppServiceConfig,
        names: AppNames,
        plan_id: str,
        log: ChangeLog,
    ) -> None:
        arm, group = self.arm, names.resource_group
        cooldown = f"PT{options.cooldown_minutes}M"

        def rule(operator: str, threshold: float, direction: str) -> dict[str, Any]:
            return cpu_rule(
                plan_id,
                operator,
                threshold,
                direction,
                cooldown,
                metric=("CpuPercentage", "microsoft.web/serverfarms"),
                window="PT10M",
            )

        desired = {
            "location": arm.location,
            "tags": tags(spec.env, ROLE_MODEL, spec.tags),
            "properties": {
                "enabled": True,
                "targetResourceUri": plan_id,
                "profiles": [
                    {
                        "name": "cpu",
                        "capacity": {
                            "minimum": str(spec.min_instances),
                            "maximum": str(spec.max_instances),
                            "default": str(spec.min_instances),
                        },
                        "rules": [
                            rule("GreaterThan", options.scale_out_cpu_percent, "Increase"),
                            rule("LessThan", options.scale_in_cpu_percent, "Decrease"),
                        ],
                    }
                ],
            },
        }
        actual = arm.read(
            "read autoscale setting",
            self.arm.monitor.autoscale_settings.get,
            group,
            names.autoscale,
        )
        converge(
            log,
            "autoscale",
            names.autoscale,
            desired,
            actual,
            lambda: arm.write(
                "set autoscale setting",
                self.arm.monitor.autoscale_settings.create_or_update,
                group,
                names.autoscale,
                desired,
            ),
            create_detail=f"{spec.min_instances}..{spec.max_instances} on CPU",
        )

    # -- releases ----------------------------------------------------------------------------

    def release(self, spec: ServiceSpec, *, dry_run: bool = False) -> ServiceResult:
        """A release converges like `provision`: only the staging slot and the swap change
        when the release is the only difference."""
        return self.ensure_service(spec, dry_run=dry_run)

    def _release(self, spec: ServiceSpec, image_ref: str, notes: list[str], log: ChangeLog) -> None:
        """Set up on staging, health-checked there, swapped into production."""
        names = AppNames(spec.env, spec.name)
        production = web.Slot(self.arm, self.web, names, None)
        running = web.revision_of("production", production.settings())
        if running is not None and running.image == spec.image:
            return
        options = options_of(spec.options)
        staging = web.Slot(self.arm, self.web, names, STAGING)
        if staging.get() is None:  # an existing slot's authentication converged above
            web.create_staging(
                self.arm, self.web, spec, self.arm.location, self._plan_id(names), log
            )
            web.ensure_auth(staging, spec, log)

        kept: dict[str, Any] = {}

        def put_back() -> None:
            if kept.get("settings"):
                staging.set_config(kept["config"])
                staging.set_settings(kept["settings"])

        def set_up_staging() -> None:
            # Staging holds the previous release (what `rollback` swaps back): put back if
            # the new one fails.
            kept.update(config=staging.config(), settings=staging.settings())
            staging.set_config(web.site_config(spec, options, image_ref))
            staging.set_settings({**web.app_settings(spec, options), **web.release_settings(spec)})
            healthy, reason = web.wait_healthy(
                staging, spec.readiness_path, self.probe, spec.healthy_timeout_s
            )
            if not healthy:
                put_back()
                raise web.unhealthy(f"{spec.image} on the {STAGING} slot", reason)

        def canary_on_staging() -> None:
            site_id = (production.get() or {})["id"]
            web.route_to_staging(production, staging.host(), options.canary_percent)
            try:
                judged = canary.observe(
                    options.canary,
                    lambda window_s: (
                        slot_figures(self.arm, site_id, None, window_s),
                        slot_figures(self.arm, site_id, STAGING, window_s),
                    ),
                )
            finally:
                web.route_to_staging(production, "", 0)
            if not judged.holds:
                put_back()
                raise canary.rolled_back(
                    f"{spec.image} on {STAGING}", judged, "azure", f"production ({running.image})"
                )
            notes.append(judged.note(f"{spec.image} on {STAGING}"))

        def swap() -> None:
            web.swap_into_production(self.arm, self.web, names)
            notes.append(f"{spec.image} swapped in from {STAGING}; {STAGING} keeps the previous")

        where = f"{names.site}/{STAGING}"
        log.update("web_app_slot", where, set_up_staging, f"{spec.image}, health-checked")
        if options.canary.enabled and running is not None:
            log.update(
                "web_app_routing",
                names.site,
                canary_on_staging,
                f"{options.canary_percent}% to {STAGING}, canary judged over "
                f"{options.canary.window_s:.0f}s",
            )
        log.update("web_app", names.site, swap, f"swap in {spec.image} from {STAGING}")

    def rollback(self, env: str, *, dry_run: bool = False) -> ServiceResult:
        record = self.record_to_roll_back(env, "no web app", f"no release on the {STAGING} slot")
        names = AppNames(env, record.name)
        staging = web.Slot(self.arm, self.web, names, STAGING)

        def swap_back() -> ServiceRecord | None:
            timeout = float(self.arm.options.operation_timeout_s)
            readiness = self._readiness(staging)
            healthy, reason = web.wait_healthy(staging, readiness, self.probe, timeout)
            if not healthy:
                raise web.unhealthy(f"{record.previous.image} on the {STAGING} slot", reason)
            web.swap_into_production(self.arm, self.web, names)
            return self.status(env)

        log = ChangeLog(dry_run=dry_run)
        detail = f"swap back {record.previous.image} from {STAGING}"
        # A plan's record is the release as it is (nothing was swapped).
        after = log.apply("update", "web_app", names.site, swap_back, detail, planned=record)
        return ServiceResult(record=after, changes=log.changes)

    @staticmethod
    def _readiness(slot: web.Slot) -> str:
        return slot.settings().get("WEBSITE_SWAP_WARMUP_PING_PATH") or "/"

    # -- reading -----------------------------------------------------------------------------

    def _find_site(self, env: str) -> tuple[AppNames, web.Json] | None:
        group = AppNames(env, "-").resource_group
        for site in self.arm.read_all(
            "list web apps", self.web.web_apps.list_by_resource_group, group
        ):
            if (site.get("tags") or {}).get("mlops-vm-env") == env:
                return AppNames(env, site["name"]), site
        return None

    def status(self, env: str) -> ServiceRecord | None:
        found = self._find_site(env)
        if found is None:
            return None
        names, site = found
        production = web.Slot(self.arm, self.web, names, None)
        staging = web.Slot(self.arm, self.web, names, STAGING)
        active = web.revision_of("production", production.settings())
        previous = web.revision_of(STAGING, staging.settings()) if staging.get() else None
        host = (site.get("properties") or {}).get("defaultHostName", "")
        domain, records = domain_endpoint(Domains(self.arm, self.web, names), site)
        status = self.probe(f"https://{host}{self._readiness(production)}") if host else None
        plan = self.arm.read(
            "read plan", self.web.app_service_plans.get, names.resource_group, names.plan
        )
        capacity = int(((plan or {}).get("sku") or {}).get("capacity") or 0)
        return ServiceRecord(
            name=names.site,
            url=f"https://{domain or host}" if host else None,
            active=active,
            previous=previous,
            traffic={"production": 100} if active else {},
            healthy=status == 200,
            reason="" if status == 200 else f"readiness answered {status or 'nothing'}",
            running=capacity if status == 200 else 0,
            desired=capacity,
            resources={
                "resource_group": names.resource_group,
                "site": names.site,
                "plan": names.plan,
                **domain_resources(host, records),
            },
        )

    def figures(self, env: str, window_s: float) -> dict[str, Figures]:
        """Per slot ('slot production', 'slot staging') from Azure Monitor."""
        found = self._find_site(env)
        if found is None:
            return {}
        names, site = found
        slots: list[str | None] = [None]
        if web.Slot(self.arm, self.web, names, STAGING).get() is not None:
            slots.append(STAGING)
        return {
            f"slot {slot or 'production'}": slot_figures(self.arm, site["id"], slot, window_s)
            for slot in slots
        }

    def logs(self, env: str, *, tail: int = 100) -> list[str]:
        """The container's log through the site's Kudu (SCM) endpoint, with an ARM token."""
        found = self._find_site(env)
        if found is None:
            return []
        names, _ = found
        token = self.arm.credential.get_token("https://management.azure.com/.default").token
        url = f"https://{names.site}.scm.azurewebsites.net/api/logs/docker"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                files = json.load(answer)
            lines: list[str] = []
            for entry in sorted(files, key=lambda f: f.get("lastUpdated", ""))[-2:]:
                file_request = urllib.request.Request(
                    entry["href"], headers={"Authorization": f"Bearer {token}"}
                )
                with urllib.request.urlopen(file_request, timeout=30) as answer:
                    lines += answer.read().decode(errors="replace").splitlines()
        except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
            raise ProvisionError(
                ErrorCode.INTERNAL,
                f"cannot read the container logs: {error}",
                hint="the identity needs the Website Contributor role on the web app",
                provider="azure",
                operation="read logs",
            ) from None
        return lines[-tail:]

    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        """The environment's resource group and everything in it (the Azure provider's)."""
        return azure_destroy.destroy(self.arm, env, dry_run=dry_run)
