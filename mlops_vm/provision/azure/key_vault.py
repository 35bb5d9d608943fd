"""Key Vault references checked before anything exists, with the operator's credentials.

Each secret the settings name (App Service's service.secrets and registry_password_secret,
a scale set's fleet.secrets) is read through Key Vault's data plane, GET https://<vault>.vault.azure.net/secrets/<name>[/<version>]
with a token for https://vault.azure.net: it must exist and be enabled. A caller that may
not read it gets a permission error, not "does not exist". A vault that does not exist has
no host name. The value that comes back is dropped at once: it never reaches a log, an
error or a record.
"""

import socket
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.core.rest import HttpRequest

from mlops_vm.provision.azure.data_plane import signed_client
from mlops_vm.provision.errors import ErrorCode, ProvisionError

SCOPE = "https://vault.azure.net/.default"
API_VERSION = "7.4"
# With provider.endpoint_url (tests) every vault is served under it, at /keyvault/<vault>.
OVERRIDE_PATH = "/keyvault/"


def _error(code: ErrorCode, message: str, hint: str) -> ProvisionError:
    return ProvisionError(
        code, message, hint=hint, provider="azure", operation="check the Key Vault secrets"
    )


class KeyVaultSecrets:
    """GETs of secrets, signed for Key Vault (AUTHENTICATION_POLICY replaces the bearer-token
    policy, as for the ARM clients: tests use it over plain http)."""

    def __init__(
        self,
        credential: Any,
        *,
        endpoint_url: str | None = None,
        authentication_policy: Any = None,
    ) -> None:
        self.client = signed_client(
            credential, SCOPE, "https://vault.azure.net", authentication_policy
        )
        self.endpoint_url = endpoint_url

    def url_of(self, uri: str) -> str:
        """The data-plane URL of a secret URI (the endpoint override's, in tests)."""
        parts = urlsplit(uri)
        if self.endpoint_url:
            vault = (parts.hostname or "").split(".")[0]
            return f"{self.endpoint_url.rstrip('/')}{OVERRIDE_PATH}{vault}{parts.path}"
        return f"https://{parts.hostname}{parts.path}"

    def check(self, field: str, uri: str) -> None:
        """FIELD's secret URI names an enabled secret the operator can read."""
        parts = urlsplit(uri)
        host = parts.hostname or ""
        vault, secret = host.split(".")[0], parts.path.removeprefix("/secrets/").strip("/")
        request = HttpRequest("GET", self.url_of(uri), params={"api-version": API_VERSION})
        try:
            response = self.client.send_request(request)
        except ClientAuthenticationError as error:
            raise _error(
                ErrorCode.AUTH,
                f"{field}: no Azure credential to read Key Vault {vault} with: {error}",
                "sign in (az login) or set the AZURE_* variables of a service principal",
            ) from None
        except ServiceRequestError as error:
            if not self.endpoint_url and not resolves(host):
                raise _error(
                    ErrorCode.INVALID_INPUT,
                    f"{field}: Key Vault {vault} does not exist ({host} has no address)",
                    "fix the vault name in the secret URI, or create the vault",
                ) from None
            raise _error(
                ErrorCode.INTERNAL,
                f"{field}: cannot reach Key Vault {vault}: {error}",
                "check the network path to *.vault.azure.net",
            ) from None
        status = response.status_code
        answer = response.json() if response.content else {}
        if status == 200:
            if not (answer.get("attributes") or {}).get("enabled", True):
                raise _error(
                    ErrorCode.INVALID_INPUT,
                    f"{field}: secret {secret} of Key Vault {vault} is disabled",
                    "enable it, or point to an enabled version",
                )
            return
        error = answer.get("error") or {}
        code, message = error.get("code", ""), error.get("message", "")
        if status == 404 and code == "SecretNotFound":
            raise _error(
                ErrorCode.INVALID_INPUT,
                f"{field}: secret {secret} does not exist in Key Vault {vault}",
                f"create it first (az keyvault secret set --vault-name {vault} --name "
                f"{secret.split('/')[0]}), or fix the secret URI",
            )
        if status == 404:
            raise _error(
                ErrorCode.INVALID_INPUT,
                f"{field}: Key Vault {vault} does not exist ({code}: {message})",
                "fix the vault name in the secret URI, or create the vault",
            )
        if status in (401, 403):
            raise _error(
                ErrorCode.PERMISSION,
                f"{field}: not allowed to read secret {secret} of Key Vault {vault} "
                f"({status} {code}: {message})",
                "give the identity that runs mlops-vm the Key Vault Secrets User role on the "
                "vault (or a get access policy on its secrets)",
            )
        raise _error(
            ErrorCode.INTERNAL,
            f"{field}: Key Vault {vault} answered {status} {code}: {message}",
            "run validate again; if it persists, check the vault in the portal",
        )


def resolves(host: str) -> bool:
    """Whether HOST has an address (a Key Vault that does not exist has none)."""
    try:
        socket.getaddrinfo(host, 443)
    except socket.gaierror:
        return False
    return True
