"""service.cloud_run (its one schema: services/settings.py) and the project and
region, read once."""

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import ProviderSettings
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.settings import CloudRunServiceConfig


def options_of(spec: ServiceSpec) -> CloudRunServiceConfig:
    """service.cloud_run as config.py checked it (ServiceSpec.options is its model_dump)."""
    return CloudRunServiceConfig.model_validate(spec.options)


def repository_id(spec: ServiceSpec, options: CloudRunServiceConfig) -> str:
    """The Artifact Registry repository: service.cloud_run.repository, or mlops-vm-<env>."""
    return options.repository or f"mlops-vm-{spec.env}"


def project_of(settings: ProviderSettings) -> str:
    project = settings.options.get("project")
    if not project:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            "provider.options.project is required by the cloud_run target",
            hint="set provider.options.project to the Google Cloud project id",
            provider="gcp",
        )
    return str(project)


def region_of(settings: ProviderSettings) -> str:
    if not settings.region:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            "provider.region is required by the cloud_run target",
            hint="set provider.region, e.g. europe-west1",
            provider="gcp",
        )
    return settings.region


# Ingress from the load balancer only: the *.run.app URL refuses the internet.
INTERNAL_LB = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"


def ingress_of(spec: ServiceSpec, options: CloudRunServiceConfig) -> str:
    """service.cloud_run.ingress (default: the load balancer's only when service.domain
    puts one in front, else all) as Cloud Run's ingress setting."""
    chosen = options.ingress or ("load_balancer" if spec.domain else "all")
    return INTERNAL_LB if chosen == "load_balancer" else "INGRESS_TRAFFIC_ALL"
