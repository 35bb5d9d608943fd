"""Microsoft.ContainerRegistry in the fake ARM: registries (long-running PUT and DELETE).

The registry's data plane is not faked: tests point `loginServer` at the local TLS registry
(FakeArm.set_registry_login_server) so that image copies are real. Only its token exchange
is: POST https://<registry>.azurecr.io/oauth2/exchange (served here under
/acr/<registry>/oauth2/exchange), a form with grant_type=access_token, service and an Azure
AD access_token, answers {"refresh_token": ...}; 400 for another grant, 401 without a token.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl

from tests.fakes.azure.rules import ResourceType, require
from tests.fakes.azure.state import ArmError, ArmState, Json


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


EXCHANGE_PREFIX = "/acr/"


def exchange(state: ArmState, path: str, form: bytes) -> Json:
    """The ACR refresh token for an Azure AD token (recorded: which identity asked)."""
    registry = path[len(EXCHANGE_PREFIX) :].split("/", 1)[0].lower()
    fields = dict(parse_qsl(form.decode()))
    if fields.get("grant_type") != "access_token":
        raise ArmError(400, "unsupported_grant_type", "grant_type must be access_token")
    if not any(r["name"].lower() == registry for r in state.of_type(Registries().type_name)):
        raise ArmError(404, "NAME_UNKNOWN", f"registry {registry} not found")
    if not fields.get("access_token") or not fields.get("service"):
        raise ArmError(401, "UNAUTHORIZED", "access_token and service are required")
    token = f"acr-refresh-{uuid.uuid4().hex}"
    state.private_of("acr").setdefault("exchanged", []).append(
        (fields["service"], fields["access_token"])
    )
    return {"refresh_token": token}
