"""Secret Manager references: checked to exist before anything is created, and passed to
Cloud Run as references (the value never passes through mlops-vm)."""

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.cloud_run.apis import CloudRunApis
from mlops_vm.services.cloud_run.limits import secret_path


def check_secrets_exist(apis: CloudRunApis, spec: ServiceSpec) -> None:
    for env_name, reference in sorted(spec.secrets.items()):
        secret, version = secret_path(apis.where.project, reference)
        name = f"{secret}/versions/{version}"
        found = apis.secrets.get(
            f"read secret {secret}",
            lambda s, n=name: s.projects().secrets().versions().get(name=n),
        )
        if found is None:
            raise ProvisionError(
                ErrorCode.INVALID_INPUT,
                f"service.secrets.{env_name}: secret version {name} does not exist",
                hint="create it in Secret Manager first (gcloud secrets create / versions add)",
                provider="gcp",
                operation="check the secrets",
            )
        if found.get("state") not in (None, "ENABLED"):
            raise ProvisionError(
                ErrorCode.INVALID_INPUT,
                f"service.secrets.{env_name}: secret version {name} is {found['state']}",
                hint="enable the version or point to an enabled one",
                provider="gcp",
                operation="check the secrets",
            )


def env_entries(project: str, spec: ServiceSpec) -> list[dict[str, object]]:
    """The container's env: plain values, then Secret Manager references (sorted)."""
    entries: list[dict[str, object]] = [
        {"name": name, "value": value} for name, value in sorted(spec.env_vars.items())
    ]
    for name, reference in sorted(spec.secrets.items()):
        secret, version = secret_path(project, reference)
        entries.append(
            {"name": name, "valueSource": {"secretKeyRef": {"secret": secret, "version": version}}}
        )
    return entries
