"""The web app, its staging slot and what each slot runs: site config, app settings (with
Key Vault references), the release record, health checks and the swap."""

import time
from collections.abc import Callable
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.azure.client import Arm, Json
from mlops_vm.provision.azure.drift import converge
from mlops_vm.provision.azure.names import tags
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import ROLE_MODEL
from mlops_vm.services.app_service.names import (
    RELEASE_SETTINGS,
    SETTING_AT,
    SETTING_IMAGE,
    SETTING_INVENTORY_IMAGE,
    SETTING_SOURCE,
    STAGING,
    AppNames,
)
from mlops_vm.services.base import Revision, ServiceSpec
from mlops_vm.services.settings import AppServiceConfig

Probe = Callable[[str], int | None]  # URL -> HTTP status (None: no answer)
PROBE_INTERVAL_S = 5.0


def site_config(spec: ServiceSpec, options: AppServiceConfig, image_ref: str) -> Json:
    """The container contract of one slot (config/web)."""
    return {
        "linuxFxVersion": f"DOCKER|{image_ref}",
        "healthCheckPath": spec.health_path,
        "alwaysOn": True,
        "minTlsVersion": "1.2",
        "ftpsState": "Disabled",
        "http20Enabled": True,
        "acrUseManagedIdentityCreds": options.registry == "acr",
    }


def key_vault_reference(uri: str) -> str:
    return f"@Microsoft.KeyVault(SecretUri={uri})"


def app_settings(spec: ServiceSpec, options: AppServiceConfig) -> dict[str, str]:
    """One slot's environment, the release record aside. Secrets are Key Vault references:
    App Service resolves them with the app's managed identity, the values never pass here."""
    settings = {
        **spec.env_vars,
        # WEBSITES_PORT: where App Service sends traffic; PORT: where the image listens.
        "WEBSITES_PORT": str(spec.port),
        "PORT": str(spec.port),
        "WEBSITES_ENABLE_APP_SERVICE_STORAGE": "false",
        # The platform's own warm-up before a swap: the slot must answer 200 here.
        "WEBSITE_SWAP_WARMUP_PING_PATH": spec.readiness_path,
        "WEBSITE_SWAP_WARMUP_PING_STATUSES": "200",
        **{name: key_vault_reference(uri) for name, uri in spec.secrets.items()},
    }
    if options.registry == "source":
        host = spec.image.split("/", 1)[0]
        settings["DOCKER_REGISTRY_SERVER_URL"] = f"https://{host}"
        if spec.registry.username:
            settings["DOCKER_REGISTRY_SERVER_USERNAME"] = spec.registry.username
            settings["DOCKER_REGISTRY_SERVER_PASSWORD"] = key_vault_reference(
                options.registry_password_secret or ""
            )
    return settings


def release_settings(spec: ServiceSpec) -> dict[str, str]:
    return {
        SETTING_IMAGE: spec.image,
        SETTING_SOURCE: spec.source,
        SETTING_INVENTORY_IMAGE: spec.inventory_image or spec.image,
        SETTING_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def revision_of(slot: str, settings: dict[str, str] | None) -> Revision | None:
    if not settings or not settings.get(SETTING_IMAGE):
        return None
    return Revision(
        id=slot,
        image=settings[SETTING_IMAGE],
        source=settings.get(SETTING_SOURCE, ""),
        inventory_image=settings.get(SETTING_INVENTORY_IMAGE, ""),
        created_at=settings.get(SETTING_AT, ""),
    )


class Slot:
    """One slot of the web app (production: slot None) through the wrapped SDK calls."""

    def __init__(self, arm: Arm, client: Any, names: AppNames, slot: str | None) -> None:
        self.arm, self.apps, self.names, self.slot = arm, client.web_apps, names, slot
        self.label = slot or "production"

    def _args(self) -> tuple[str, ...]:
        base = (self.names.resource_group, self.names.site)
        return (*base, self.slot) if self.slot else base

    def _call(self, name: str) -> Any:
        return getattr(self.apps, f"{name}_slot" if self.slot else name)

    def get(self) -> Json | None:
        return self.arm.read(f"read slot {self.label}", self._call("get"), *self._args())

    def config(self) -> Json:
        found = self.arm.read(
            f"read {self.label} config", self._call("get_configuration"), *self._args()
        )
        return (found or {}).get("properties") or {}

    def set_config(self, config: Json) -> None:
        self.arm.write(
            f"update {self.label} config",
            self._call("update_configuration"),
            *self._args(),
            {"properties": config},
        )

    def settings(self) -> dict[str, str]:
        found = self.arm.read(
            f"read {self.label} app settings",
            self._call("list_application_settings"),
            *self._args(),
        )
        return dict((found or {}).get("properties") or {})

    def set_settings(self, settings: dict[str, str]) -> None:
        self.arm.write(
            f"update {self.label} app settings",
            self._call("update_application_settings"),
            *self._args(),
            {"properties": settings},
        )

    def auth(self) -> Json | None:
        found = self.arm.read(
            f"read {self.label} authentication", self._call("get_auth_settings_v2"), *self._args()
        )
        return (found or {}).get("properties") or None

    def set_auth(self, settings: Json) -> None:
        self.arm.write(
            f"set {self.label} authentication",
            self._call("update_auth_settings_v2"),
            *self._args(),
            {"properties": settings},
        )

    def host(self) -> str:
        return ((self.get() or {}).get("properties") or {}).get("defaultHostName", "")


def auth_settings(spec: ServiceSpec) -> Json:
    """access: authenticated -> App Service authentication: every request signed in (401
    otherwise), the health and readiness paths aside so that App Service's health check,
    the swap warm-up and mlops-vm's own checks still reach the container."""
    enabled = spec.access == "authenticated"
    return {
        "platform": {"enabled": enabled},
        "globalValidation": {
            "requireAuthentication": enabled,
            "unauthenticatedClientAction": "Return401" if enabled else "AllowAnonymous",
            "excludedPaths": sorted({spec.health_path, spec.readiness_path}) if enabled else [],
        },
        "httpSettings": {"requireHttps": True},
    }


def ensure_auth(slot: Slot, spec: ServiceSpec, log: ChangeLog) -> None:
    """Authentication settings stay with their slot on a swap: each slot gets its own."""
    desired = auth_settings(spec)
    converge(
        log,
        "authentication",
        f"{slot.names.site}/{slot.label}",
        desired,
        slot.auth(),
        lambda: slot.set_auth(desired),
        create_detail="required" if spec.access == "authenticated" else "anonymous allowed",
    )


def site_body(spec: ServiceSpec, location: str, plan_id: str) -> Json:
    return {
        "location": location,
        "kind": "app,linux,container",
        "tags": tags(spec.env, ROLE_MODEL, spec.tags),
        "identity": {"type": "SystemAssigned"},
        "properties": {"serverFarmId": plan_id, "httpsOnly": True, "clientAffinityEnabled": False},
    }


def converge_slot(slot: Slot, config: Json, settings: dict[str, str], log: ChangeLog) -> None:
    """CONFIG and SETTINGS on SLOT; the release record it carries is kept as it is."""
    where = f"{slot.names.site}/{slot.label}"
    converge(log, "site_config", where, config, slot.config(), lambda: slot.set_config(config))
    actual = slot.settings()
    wanted = {**settings, **{k: actual[k] for k in RELEASE_SETTINGS if k in actual}}
    if actual != wanted:
        log.update("app_settings", where, lambda: slot.set_settings(wanted), diff(actual, wanted))


def diff(actual: dict[str, str], wanted: dict[str, str]) -> str:
    """Which settings change, by name only (values may be references to secrets)."""
    names = sorted(k for k in {*actual, *wanted} if actual.get(k) != wanted.get(k))
    return ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")


def wait_healthy(slot: Slot, path: str, probe: Probe, timeout_s: float) -> tuple[bool, str]:
    """Poll https://<slot host><path> until it answers 200 (the slot warmed and ready)."""
    url = f"https://{slot.host()}{path}"
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        status = probe(url)
        if status == 200:
            return True, ""
        last = f"{url} answered {status}" if status else f"{url} did not answer"
        if time.monotonic() >= deadline:
            return False, last
        time.sleep(min(PROBE_INTERVAL_S, max(0.0, deadline - time.monotonic())))


def create_staging(
    arm: Arm, client: Any, spec: ServiceSpec, location: str, plan_id: str, log: ChangeLog
) -> None:
    """The staging slot (a release's first), like the production slot it swaps with."""
    names = AppNames(spec.env, spec.name)
    log.create(
        "web_app_slot",
        f"{names.site}/{STAGING}",
        lambda: arm.run(
            "create staging slot",
            client.web_apps.begin_create_or_update_slot,
            names.resource_group,
            names.site,
            STAGING,
            site_body(spec, location, plan_id),
        ),
    )


def route_to_staging(production: Slot, staging_host: str, percent: float) -> None:
    """PERCENT of production's requests served by the staging slot (App Service's traffic
    routing: a ramp-up rule on production's config); 0 removes the rule."""
    rules = (
        [{"name": STAGING, "actionHostName": staging_host, "reroutePercentage": percent}]
        if percent
        else []
    )
    production.set_config({"experiments": {"rampUpRules": rules}})


def swap_into_production(arm: Arm, client: Any, names: AppNames) -> None:
    arm.run(
        "swap staging into production",
        client.web_apps.begin_swap_slot_with_production,
        names.resource_group,
        names.site,
        {"targetSlot": STAGING, "preserveVnet": True},
    )


def unhealthy(what: str, reason: str) -> ProvisionError:
    return ProvisionError(
        ErrorCode.TIMEOUT,
        f"{what} never became healthy: {reason}",
        hint="production was left as it was; look at `mlops-vm logs ENV`, "
        "service.port (WEBSITES_PORT) and service.readiness_path",
        provider="azure",
        operation="release",
    )
