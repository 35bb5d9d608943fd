"""Key Vault's secrets data plane, held to its contract: GET
https://<vault>.vault.azure.net/secrets/<name>[/<version>]?api-version=... answers 200 with
the secret bundle (value, id, attributes), 404 SecretNotFound, 403 Forbidden (the caller has
no get permission on the vault's secrets) or 401 without a bearer token.

The client's endpoint override serves every vault under the fake ARM's URL, at
/keyvault/<vault>/secrets/... . A vault that does not exist has no host name in Azure (the
GET fails to resolve); here it answers 404 VaultNotFound, which the client reads the same way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote

from tests.fakes.azure.rbac import SECRETS_USER, has_role, principal_of
from tests.fakes.azure.rules import ResourceType
from tests.fakes.azure.state import ArmError, ArmState, Json, now

PATH_PREFIX = "/keyvault/"


@dataclass
class Secret:
    versions: dict[str, str] = field(default_factory=dict)  # version -> value, oldest first
    enabled: bool = True


@dataclass
class Vault:
    secrets: dict[str, Secret] = field(default_factory=dict)
    denied: bool = False  # the caller lacks secrets/get (access policy or RBAC)


def vaults(state: ArmState) -> dict[str, Vault]:
    return state.private_of("keyvault").setdefault("vaults", {})


def add_secret(state: ArmState, vault: str, name: str, value: str, *, enabled: bool) -> str:
    """A new version of secret NAME in VAULT (made if missing); returns the version."""
    secret = (
        vaults(state).setdefault(vault.lower(), Vault()).secrets.setdefault(name.lower(), Secret())
    )
    version = uuid.uuid4().hex
    secret.versions[version] = value
    secret.enabled = enabled
    return version


class Vaults(ResourceType):
    """Microsoft.KeyVault/vaults, the ARM side of a vault (RBAC scopes hang off its id);
    its secrets live in the data plane above, by the vault's name."""

    namespace = "Microsoft.KeyVault"
    collection = "vaults"

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        name = rid.rsplit("/", 1)[1]
        vaults(state).setdefault(name.lower(), Vault())
        props = body.setdefault("properties", {})
        props["vaultUri"] = f"https://{name.lower()}.vault.azure.net/"
        props.setdefault("enableRbacAuthorization", True)
        return body


def identity_may_read(state: ArmState, principal: str, vault_name: str, name: str) -> bool:
    """Key Vault Secrets User (RBAC) on the secret, its vault or a scope above."""
    arm_vault = next(
        (v for v in state.of_type("Microsoft.KeyVault/vaults") if v["name"].lower() == vault_name),
        None,
    )
    if arm_vault is None:
        return False
    return has_role(state, principal, f"{arm_vault['id']}/secrets/{name}", {SECRETS_USER})


class KeyVaultProtocol:
    """Routes one data-plane request; the same signature as ArmProtocol.handle."""

    def __init__(self, state: ArmState) -> None:
        self.state = state

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Json, headers: dict[str, str]
    ) -> tuple[int, Json | None, dict[str, str]]:
        if not headers.get("authorization", "").lower().startswith("bearer "):
            raise ArmError(401, "Unauthorized", "AKV10000: Request is missing a Bearer token.")
        if not query.get("api-version"):
            raise ArmError(400, "BadParameter", "The api-version query parameter is required.")
        parts = [unquote(p) for p in path[len(PATH_PREFIX) :].strip("/").split("/")]
        if method != "GET" or len(parts) not in (3, 4) or parts[1] != "secrets":
            raise ArmError(405, "MethodNotAllowed", f"{method} {path} is not served by the fake")
        vault_name, name = parts[0].lower(), parts[2]
        vault = vaults(self.state).get(vault_name)
        if vault is None:
            raise ArmError(404, "VaultNotFound", f"No such host: {vault_name}.vault.azure.net")
        if vault.denied:
            raise ArmError(
                403,
                "Forbidden",
                "The user, group or application 'appid=00000000-0000-0000-0000-0000000000aa' "
                f"does not have secrets get permission on key vault '{vault_name}'.",
            )
        principal = principal_of(headers)
        if principal is not None and not identity_may_read(self.state, principal, vault_name, name):
            raise ArmError(
                403,
                "Forbidden",
                f"Caller is not authorized to perform action on resource. Caller: "
                f"ObjectId={principal}. Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/"
                f"action'. Resource: '{vault_name}/secrets/{name}'.",
            )
        secret = vault.secrets.get(name.lower())
        version = parts[3] if len(parts) == 4 else None
        if secret is None or (version is not None and version not in secret.versions):
            shown = f"{name}/{version}" if version else name
            raise ArmError(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {shown} was not found in this key vault.",
            )
        version = version or list(secret.versions)[-1]
        bundle = {
            "value": secret.versions[version],
            "id": f"https://{vault_name}.vault.azure.net/secrets/{name}/{version}",
            "attributes": {
                "enabled": secret.enabled,
                "created": now(),
                "updated": now(),
                "recoveryLevel": "Recoverable+Purgeable",
            },
            "tags": {},
        }
        return 200, bundle, {}
