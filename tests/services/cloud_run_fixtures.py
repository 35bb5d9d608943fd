"""Shared by the Cloud Run tests: one fake per module, one project per test, the target."""

import uuid
from dataclasses import replace
from typing import Any

from google.auth.credentials import AnonymousCredentials

from mlops_vm.localcloud import registry as platform_registry
from mlops_vm.provision.model import ProviderSettings
from mlops_vm.services.base import RegistryAuth, ServiceSpec
from mlops_vm.services.cloud_run import CloudRunTarget
from tests.fakes.gcp.run_server import FakeCloudRun
from tests.fakes.gcp.testing import FAST

REGION = "europe-west1"
SOURCE = f"{platform_registry.HOST_ADDRESS}/mlops-vm/model-service"


def new_project() -> str:
    return f"proj-{uuid.uuid4().hex[:8]}"


def make_target(fake: FakeCloudRun, project: str, region: str = REGION) -> CloudRunTarget:
    settings = ProviderSettings(
        name="gcp",
        region=region,
        endpoint_url=fake.endpoint_url,
        options={"project": project, "credentials": AnonymousCredentials(), **FAST},
    )
    return CloudRunTarget(settings)


def make_spec(env: str, version: str = "1.0", **changes: Any) -> ServiceSpec:
    """A spec of the local model image; its copy goes to the local registry, which stands
    in for Artifact Registry (service.cloud_run.registry_host)."""
    credentials = platform_registry.ensure_credentials()
    spec = ServiceSpec(
        env=env,
        name=f"mlops-vm-{env}",
        image=f"{SOURCE}:{version}",
        port=9090,
        env_vars={"LOG_LEVEL": "info"},
        registry=RegistryAuth(username=credentials.username, password=credentials.password),
        options={"registry_host": platform_registry.HOST_ADDRESS},
        healthy_timeout_s=30,
    )
    return replace(spec, **changes)


class CopiedImages:
    """What images.copy_image did: destination -> source. Copies only what is missing and
    nothing in a dry run; says whether it copies, as copy_image does."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}

    def copy_image(
        self,
        source: str,
        source_auth: RegistryAuth,
        destination: str,
        destination_auth: RegistryAuth,
        *,
        dry_run: bool,
    ) -> bool:
        if self.held.get(destination) == source:
            return False
        if not dry_run:
            self.held[destination] = source
        return True
