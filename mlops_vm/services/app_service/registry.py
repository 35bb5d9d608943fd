"""The environment's Azure Container Registry and the model image copied into it.

Pushing uses ACR's own exchange (what `az acr login` does): the ARM access token is traded
at https://<login server>/oauth2/exchange for a registry refresh token, which the Docker
engine takes as the password of the null-GUID user. No admin user, no stored password. The
web app pulls with its managed identity (acrUseManagedIdentityCreds).
"""

import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.azure.client import Arm
from mlops_vm.provision.azure.drift import converge
from mlops_vm.provision.azure.names import tags
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import ROLE_MODEL
from mlops_vm.services import images
from mlops_vm.services.app_service.names import AppNames
from mlops_vm.services.base import RegistryAuth, ServiceSpec

ACR_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
ARM_SCOPE = "https://management.azure.com/.default"

RegistryLogin = Callable[[str], RegistryAuth]  # login server -> push credentials


def acr_login(credential: Any) -> RegistryLogin:
    def login(login_server: str) -> RegistryAuth:
        token = credential.get_token(ARM_SCOPE).token
        form = urllib.parse.urlencode(
            {"grant_type": "access_token", "service": login_server, "access_token": token}
        ).encode()
        request = urllib.request.Request(f"https://{login_server}/oauth2/exchange", data=form)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # https only
                refresh = json.load(answer)["refresh_token"]
        except (OSError, ValueError, KeyError) as error:
            raise ProvisionError(
                ErrorCode.PERMISSION
                if "401" in str(error) or "403" in str(error)
                else ErrorCode.INTERNAL,
                f"cannot log in to {login_server}: {error}",
                hint="the identity needs the AcrPush role on the registry",
                provider="azure",
                operation="log in to the registry",
            ) from None
        return RegistryAuth(username=ACR_TOKEN_USER, password=refresh)

    return login


def registry_body(spec: ServiceSpec, location: str) -> dict[str, Any]:
    return {
        "location": location,
        "tags": tags(spec.env, ROLE_MODEL, spec.tags),
        "sku": {"name": "Standard"},
        "properties": {"adminUserEnabled": False},
    }


def push_image(
    arm: Arm, client: Any, login: RegistryLogin, spec: ServiceSpec, log: ChangeLog
) -> str:
    """The registry converged and SPEC.image copied into it as <service name>:<tag>; returns
    the copy's reference."""
    names = AppNames(spec.env, spec.name)
    group, name = names.resource_group, names.registry
    desired = registry_body(spec, arm.location)
    converge(
        log,
        "container_registry",
        name,
        desired,
        arm.read("read registry", client.registries.get, group, name),
        lambda: arm.run("create registry", client.registries.begin_create, group, name, desired),
    )
    found = arm.read("read registry", client.registries.get, group, name)
    server = ((found or {}).get("properties") or {}).get("loginServer") or f"{name}.azurecr.io"
    destination = f"{server}/{spec.name}:{images.destination_tag(spec.image)}"
    # A registry that is only planned (a dry run) has nothing to log in to: its copy of the
    # image is planned with it. Otherwise copy_image skips the copy itself in a dry run.
    if found is None or images.copy_image(
        spec.image, spec.registry, destination, login(server), dry_run=log.dry_run
    ):
        log.record("create", "image", destination, f"copy of {spec.image}")
    return destination
