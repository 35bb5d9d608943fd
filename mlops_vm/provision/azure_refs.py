"""Azure references checked by their form alone, with no SDK (the settings' checks and the
providers share them): Key Vault secret identifiers and ACR login servers."""

import re

# https://<vault>.vault.azure.net/secrets/<name>[/<version>]: a Key Vault secret identifier.
KEY_VAULT_SECRET_URI = re.compile(
    r"^https://(?P<vault>[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9])\.vault\.azure\.net/secrets/"
    r"(?P<name>[a-zA-Z0-9-]{1,127})(/(?P<version>[0-9a-fA-F]{32}))?/?$"
)
# <registry>.azurecr.io: an Azure Container Registry, pulled from with a managed identity.
ACR_REGISTRY = re.compile(r"^(?P<name>[a-zA-Z0-9]{5,50})\.azurecr\.io$")


def is_acr(registry_host: str | None) -> bool:
    return bool(registry_host and ACR_REGISTRY.match(registry_host))
