"""Microsoft.Web in the fake ARM: App Service plans (serverfarms), web apps (sites) with
their config (web, appsettings, authsettingsV2), deployment slots and slot swaps; host name
bindings and certificates are web_domains.py's.

As ARM does: a site and a slot PUT are long-running; config PUTs/PATCHes and the app
settings list (a POST) answer at once; a swap is a POST answering 202 with a Location
monitor, and swaps the slots' content (site config and app settings) only once it is done.
A GET of a site never shows its app settings (they are read through .../appsettings/list).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from tests.fakes.azure.rules import ResourceType, require
from tests.fakes.azure.state import ArmError, ArmState, Json
from tests.fakes.azure.web_domains import HostNameBindings, bindings_of, verification_id

if TYPE_CHECKING:
    from tests.fakes.azure.server import ArmProtocol, Reply

# SKU name -> (tier, most instances): what a Linux plan may be.
PLAN_SKUS = {
    "F1": ("Free", 1),
    "B1": ("Basic", 3),
    "B2": ("Basic", 3),
    "B3": ("Basic", 3),
    "S1": ("Standard", 10),
    "S2": ("Standard", 10),
    "S3": ("Standard", 10),
    "P0v3": ("PremiumV3", 30),
    "P1v3": ("PremiumV3", 30),
    "P2v3": ("PremiumV3", 30),
    "P3v3": ("PremiumV3", 30),
}
SLOTS_BY_TIER = {"Free": 0, "Basic": 0, "Standard": 5, "PremiumV3": 20}
PRODUCTION = "production"
# What a swap moves between slots (slot-sticky settings aside, which this fake has none of).
SWAPPED = ("config", "appsettings")


class ServerFarms(ResourceType):
    namespace = "Microsoft.Web"
    collection = "serverfarms"
    created_status = 200

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        sku = body.get("sku") or {}
        name = sku.get("name")
        require(name in PLAN_SKUS, "InvalidSku", f"The SKU '{name}' is not valid.")
        tier, most = PLAN_SKUS[name]
        capacity = int(sku.get("capacity") or 1)
        require(
            1 <= capacity <= most,
            "InvalidCapacity",
            f"The capacity {capacity} is out of range for SKU {name} (1..{most}).",
        )
        body["sku"] = {**sku, "tier": tier, "capacity": capacity}
        props = body.setdefault("properties", {})
        require(
            props.get("reserved") is True and body.get("kind", "").lower() == "linux",
            "BadRequest",
            "A Linux plan needs kind 'linux' and properties.reserved true.",
        )
        return body

    def render(self, state: ArmState, stored: Json, query: dict[str, str]) -> Json:
        shown = copy.deepcopy(stored)
        shown["properties"]["numberOfSites"] = len(sites_on_plan(state, stored["id"]))
        return shown

    def check_delete(self, state: ArmState, stored: Json) -> None:
        require(
            not sites_on_plan(state, stored["id"]),
            "ServerFarmInUse",
            "Server farm cannot be deleted because it has web app(s) assigned to it.",
            status=409,
        )


def sites_on_plan(state: ArmState, plan_id: str) -> list[Json]:
    return [
        site
        for site in state.of_type("Microsoft.Web/sites")
        if site["properties"].get("serverFarmId", "").lower() == plan_id.lower()
    ]


class Sites(ResourceType):
    """A web app; its slots live in its private state, each with its own config."""

    namespace = "Microsoft.Web"
    collection = "sites"
    created_status = 200

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        props = body.setdefault("properties", {})
        plan_id = props.get("serverFarmId")
        plan = state.get(plan_id) if plan_id else None
        require(plan is not None, "NotFound", f"Server farm {plan_id} was not found.", 404)
        slot = state.private_of(rid).setdefault("slots", {})
        production = slot.setdefault(PRODUCTION, {"config": {}, "appsettings": {}})
        _take_site_config(production, props.pop("siteConfig", None) or {})
        props["defaultHostName"] = f"{rid.rsplit('/', 1)[1]}.azurewebsites.net".lower()
        props["state"] = "Running"
        if (body.get("identity") or {}).get("type") == "SystemAssigned":
            body["identity"].setdefault("principalId", "11111111-0000-0000-0000-" + "0" * 12)
        return body

    def render(self, state: ArmState, stored: Json, query: dict[str, str]) -> Json:
        """As ARM shows a site: its host names and their TLS states, and the id that the
        TXT record asuid.<custom host> must hold."""
        shown = copy.deepcopy(stored)
        props = shown["properties"]
        subscription = stored["id"].split("/")[2]
        props["customDomainVerificationId"] = verification_id(subscription)
        custom = bindings_of(state, stored["id"])
        props["hostNames"] = [props["defaultHostName"], *custom]
        props["hostNameSslStates"] = [
            {"name": props["defaultHostName"], "sslState": "Disabled", "hostType": "Standard"},
            *(
                {"name": host, "hostType": "Standard", **b["properties"]}
                for host, b in custom.items()
            ),
        ]
        return shown

    # -- nested: config, slots and swaps ----------------------------------------------------

    def nested(
        self,
        protocol: ArmProtocol,
        method: str,
        subscription: str,
        site: Json,
        extra: list[str],
        body: Json,
        query: dict[str, str],
    ) -> Reply:
        lowered = [part.lower() for part in extra]
        slots = protocol.state.private_of(site["id"]).setdefault("slots", {})
        if lowered[0] == "hostnamebindings":
            return HostNameBindings(protocol.state, site, subscription).handle(
                method, extra, body, query
            )
        if lowered == ["slotsswap"] and method == "POST":
            return self._swap(protocol, subscription, site, body, query)
        if lowered == ["slots"] and method == "GET":
            return 200, {"value": [self._slot(site, n) for n in slots if n != PRODUCTION]}, {}
        if lowered[:1] == ["slots"] and len(extra) >= 2:
            name = extra[1]
            if len(extra) == 2:
                return self._slot_resource(protocol, method, subscription, site, name, query)
            require(name in slots, "NotFound", f"Slot {name} was not found.", 404)
            return self._config(method, site, slots[name], lowered[2:], body)
        return self._config(method, site, slots[PRODUCTION], lowered, body)

    def _config(self, method: str, site: Json, slot: Json, path: list[str], body: Json) -> Reply:
        if path == ["config", "web"]:
            if method in {"PUT", "PATCH"}:
                props = body.get("properties") or {}
                require(
                    "appSettings" not in props or not props["appSettings"],
                    "BadRequest",
                    "Set app settings through config/appsettings.",
                )
                check_routing(site, props.get("experiments") or {})
                if method == "PUT":
                    slot["config"] = {}
                _take_site_config(slot, props)
            elif method != "GET":
                raise ArmError(405, "MethodNotAllowed", f"{method} on config/web")
            return 200, {"id": site["id"] + "/config/web", "properties": slot["config"]}, {}
        if path == ["config", "appsettings"] and method == "PUT":
            values = body.get("properties") or {}
            require(
                all(isinstance(v, str) for v in values.values()),
                "BadRequest",
                "App setting values must be strings.",
            )
            slot["appsettings"] = dict(values)
            return 200, {"properties": dict(values)}, {}
        if path == ["config", "appsettings", "list"] and method == "POST":
            return 200, {"properties": dict(slot["appsettings"])}, {}
        if path == ["config", "authsettingsv2", "list"] and method == "GET":
            return 200, {"properties": copy.deepcopy(slot.get("auth", {}))}, {}
        if path == ["config", "authsettingsv2"]:
            if method == "PUT":
                slot["auth"] = copy.deepcopy(body.get("properties") or {})
            return 200, {"properties": copy.deepcopy(slot.get("auth", {}))}, {}
        raise ArmError(404, "InvalidRequestUri", f"No route for {'/'.join(path)}")

    @staticmethod
    def _slot(site: Json, name: str) -> Json:
        shown = copy.deepcopy(site)
        shown["id"] = f"{site['id']}/slots/{name}"
        shown["name"] = f"{site['name']}/{name}"
        shown["type"] = "Microsoft.Web/sites/slots"
        host = site["properties"]["defaultHostName"].replace(".", f"-{name}.", 1)
        shown["properties"]["defaultHostName"] = host
        return shown

    def _slot_resource(
        self,
        protocol: ArmProtocol,
        method: str,
        subscription: str,
        site: Json,
        name: str,
        query: dict[str, str],
    ) -> Reply:
        state = protocol.state
        slots = state.private_of(site["id"])["slots"]
        if method == "GET":
            require(name in slots, "NotFound", f"Slot {name} was not found.", 404)
            return 200, self._slot(site, name), {}
        if method == "DELETE":
            slots.pop(name, None)
            return 200, None, {}
        require(method == "PUT", "MethodNotAllowed", f"{method} on a slot", 405)
        tier = state.get(site["properties"]["serverFarmId"])["sku"]["tier"]  # type: ignore[index]
        require(
            SLOTS_BY_TIER.get(tier, 0) > 0,
            "Conflict",
            f"Cannot create more than 0 deployment slots for the {tier} tier.",
            409,
        )
        slots.setdefault(name, {"config": {}, "appsettings": {}})
        async_url, _ = protocol._start(
            subscription,
            site["id"],
            site["location"],
            query["api-version"],
            lambda: None,
            lambda: None,
        )
        return (
            200,
            self._slot(site, name),
            {"Azure-AsyncOperation": async_url},
        )

    def _swap(
        self,
        protocol: ArmProtocol,
        subscription: str,
        site: Json,
        body: Json,
        query: dict[str, str],
    ) -> Reply:
        slots = protocol.state.private_of(site["id"])["slots"]
        source = body.get("targetSlot")
        require(
            source in slots and source != PRODUCTION,
            "BadRequest",
            f"Cannot swap: slot '{source}' does not exist.",
        )

        def complete() -> None:
            ours, theirs = slots[PRODUCTION], slots[source]
            for part in SWAPPED:
                ours[part], theirs[part] = theirs[part], ours[part]
            protocol.state.private_of(site["id"]).setdefault("swaps", []).append(source)

        _, location_url = protocol._start(
            subscription, site["id"], site["location"], query["api-version"], complete, lambda: None
        )
        return 202, None, {"Location": location_url}


def check_routing(site: Json, experiments: Json) -> None:
    """Traffic routing (ramp-up rules) as App Service takes it: each rule sends a share of
    0..100 percent to one of the site's slots, by the slot's host name."""
    host = site["properties"]["defaultHostName"]
    prefix, _, domain = host.partition(".")
    for rule in experiments.get("rampUpRules") or []:
        target = str(rule.get("actionHostName") or "")
        require(
            target.startswith(prefix + "-") and target.endswith("." + domain),
            "BadRequest",
            f"actionHostName {target!r} is not a slot of {site['name']}.",
        )
        share = rule.get("reroutePercentage")
        require(
            isinstance(share, (int, float)) and 0 <= share <= 100,
            "BadRequest",
            f"reroutePercentage {share!r} must be between 0 and 100.",
        )


def _take_site_config(slot: Json, props: dict[str, Any]) -> None:
    settings = props.pop("appSettings", None)
    if settings:
        slot["appsettings"] = {item["name"]: item["value"] for item in settings}
    version = props.get("minTlsVersion")
    require(
        version in (None, "1.0", "1.1", "1.2", "1.3"),
        "BadRequest",
        f"minTlsVersion {version} is not valid.",
    )
    slot["config"].update(copy.deepcopy(props))


def slot_state(state: ArmState, site_id: str) -> dict[str, Json]:
    """A site's slots as the fake holds them (production included): for assertions."""
    return copy.deepcopy(state.private_of(site_id).get("slots", {}))
