"""Microsoft.ContainerRegistry in the fake ARM: registries (long-running PUT and DELETE).

The registry's data plane is not faked: tests point `loginServer` at the local TLS registry
(FakeArm.set_registry_login_server) so that image copies are real.
"""

from __future__ import annotations

from tests.fakes.azure.rules import ResourceType, require
from tests.fakes.azure.state import ArmState, Json


class Registries(ResourceType):
    """Microsoft.ContainerRegistry/registries: name and SKU checked; loginServer shown."""

    namespace = "Microsoft.ContainerRegistry"
    collection = "registries"

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        name = rid.rsplit("/", 1)[1]
        require(
            name.isalnum() and 5 <= len(name) <= 50,
            "InvalidRegistryName",
            f"Registry name '{name}' must be 5-50 letters and digits.",
        )
        sku = (body.get("sku") or {}).get("name")
        require(sku in {"Basic", "Standard", "Premium"}, "InvalidSku", f"SKU {sku} is not valid.")
        props = body.setdefault("properties", {})
        props["loginServer"] = state.private_of("acr").get("login_server") or (
            f"{name.lower()}.azurecr.io"
        )
        props.setdefault("adminUserEnabled", False)
        return body
