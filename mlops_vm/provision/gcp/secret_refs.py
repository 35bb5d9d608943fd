"""Secret references on GCP: Secret Manager versions, `projects/P/secrets/S/versions/V`
(or without the version: the latest), checked with the operator's credentials before
anything is created, by the version's metadata only (the value never passes through
mlops-vm). A version that does not exist, is not enabled, or that the operator may not
see is refused, each reported as what it is. The same for the Artifact Registry
repository the instances pull from with their identity."""

from typing import Any

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp.boot_apis import BootApis
from mlops_vm.provision.gcp.client import ComputeClient, Request
from mlops_vm.provision.gcp.errors import PROVIDER
from mlops_vm.provision.gcp_refs import SECRET_FORM as FORM
from mlops_vm.provision.gcp_refs import SECRET_VERSION
from mlops_vm.provision.gcp_refs import is_secret_reference as is_reference


def secret_of(reference: str) -> str:
    """`projects/P/secrets/S`: what an IAM policy is set on."""
    match = SECRET_VERSION.match(reference)
    assert match is not None, reference
    return match["secret"]


def version_of(reference: str) -> str:
    """`projects/P/secrets/S/versions/V`, `latest` when REFERENCE names none."""
    match = SECRET_VERSION.match(reference)
    assert match is not None, reference
    return f"{match['secret']}/versions/{match['version'] or 'latest'}"


def refused(code: ErrorCode, field: str, message: str, hint: str) -> ProvisionError:
    return ProvisionError(
        code, f"{field}: {message}", hint=hint, provider=PROVIDER, operation="check the secrets"
    )


def read_or_refuse(
    client: ComputeClient,
    what: str,
    request: Request,
    field: str,
    *,
    denied: tuple[str, str],
    missing: tuple[str, str],
) -> dict[str, Any]:
    """REQUEST's answer, read for the check of FIELD; refused with DENIED (message, hint)
    when the operator may not read it, with MISSING when it does not exist."""
    try:
        found = client.get(what, request)
    except ProvisionError as error:
        if error.code is not ErrorCode.PERMISSION:
            raise
        raise refused(ErrorCode.PERMISSION, field, *denied) from error
    if found is None:
        raise refused(ErrorCode.INVALID_INPUT, field, *missing)
    return found


def check_secrets_exist(apis: BootApis, secrets: dict[str, str], section: str) -> None:
    """Every reference of SECRETS (field -> reference, under SECTION) names an enabled
    Secret Manager version the operator may see."""
    for field, reference in sorted(secrets.items()):
        where = f"{section}.{field}"
        if not is_reference(reference):
            raise refused(ErrorCode.INVALID_INPUT, where, f"{reference!r} is not {FORM}", FORM)
        name = version_of(reference)
        found = read_or_refuse(
            apis.secrets,
            f"read the secret version {name}",
            lambda s, n=name: s.projects().secrets().versions().get(name=n),
            where,
            denied=(
                f"{name} cannot be read with your credentials (permission denied)",
                "grant yourself roles/secretmanager.viewer on the secret (the instances get "
                "roles/secretmanager.secretAccessor on it from provision)",
            ),
            missing=(
                f"{name} does not exist",
                "create it first (gcloud secrets create / versions add), or fix the reference",
            ),
        )
        if found.get("state", "ENABLED") != "ENABLED":
            raise refused(
                ErrorCode.INVALID_INPUT,
                where,
                f"{name} is {found['state']}",
                "enable the version or name an enabled one",
            )


def check_repository_exists(apis: BootApis, repository: str, field: str) -> None:
    """The Artifact Registry REPOSITORY (set at FIELD) exists: the instances' service
    account gets roles/artifactregistry.reader on it."""
    read_or_refuse(
        apis.registry,
        f"read the IAM policy of {repository}",
        lambda s: s.projects().locations().repositories().getIamPolicy(resource=repository),
        field,
        denied=(
            f"the IAM policy of {repository} cannot be read with your credentials "
            "(permission denied)",
            "grant yourself roles/artifactregistry.admin on the repository (provision "
            "grants the instances' service account roles/artifactregistry.reader on it)",
        ),
        missing=(
            f"the Artifact Registry repository {repository} does not exist",
            "create it (gcloud artifacts repositories create) and push the model image",
        ),
    )
