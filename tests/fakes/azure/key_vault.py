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
