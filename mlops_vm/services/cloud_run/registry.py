"""The environment's Artifact Registry Docker repository (labelled, with a cleanup policy
that keeps the newest images) and the model image copied into it from its source."""

from typing import Any

from mlops_vm.bootstrap.config import split_image_ref
from mlops_vm.plan import ChangeLog, Fix
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import LABEL_ENV
from mlops_vm.services import images
from mlops_vm.services.base import RegistryAuth, ServiceSpec
from mlops_vm.services.cloud_run.apis import CloudRunApis
from mlops_vm.services.cloud_run.options import repository_id
from mlops_vm.services.settings import CloudRunServiceConfig

KEEP_POLICY = "keep-newest"


def repository_path(apis: CloudRunApis, repository: str) -> str:
    return f"{apis.where.parent}/repositories/{repository}"


def cleanup_policies(options: CloudRunServiceConfig) -> dict[str, Any]:
    """Keep the newest versions (a rollback needs the previous image)."""
    return {
        KEEP_POLICY: {
            "id": KEEP_POLICY,
            "action": "KEEP",
            "mostRecentVersions": {"keepCount": options.keep_images},
        }
    }


def ensure_repository(
    apis: CloudRunApis, spec: ServiceSpec, options: CloudRunServiceConfig, log: ChangeLog
) -> None:
    repository = repository_id(spec, options)
    path = repository_path(apis, repository)
    found = apis.registry.get(
        "read the Artifact Registry repository",
        lambda s: s.projects().locations().repositories().get(name=path),
    )
    policies = cleanup_policies(options)

    def create() -> None:
        operation = apis.registry.execute(
            "create the Artifact Registry repository",
            lambda s: (
                s.projects()
                .locations()
                .repositories()
                .create(
                    parent=apis.where.parent,
                    repositoryId=repository,
                    body={
                        "format": "DOCKER",
                        "description": f"mlops-vm model images of {spec.env}",
                        "labels": {LABEL_ENV: spec.env},
                        "cleanupPolicies": policies,
                    },
                )
            ),
        )
        apis.registry_operation("create the Artifact Registry repository", operation)

    def set_policies() -> None:
        apis.registry.execute(
            "set the repository's cleanup policy",
            lambda s: (
                s.projects()
                .locations()
                .repositories()
                .patch(name=path, updateMask="cleanupPolicies", body={"cleanupPolicies": policies})
            ),
        )

    def fixes(current: dict[str, Any]) -> list[Fix]:
        if current.get("cleanupPolicies") == policies:
            return []
        return [Fix(f"keep {options.keep_images}", set_policies)]

    log.ensure(
        "artifact_registry_repository",
        repository,
        current=found,
        create=create,
        fixes=fixes,
        detail="DOCKER",
    )


def image_reference(apis: CloudRunApis, spec: ServiceSpec, options: CloudRunServiceConfig) -> str:
    """The copy's reference: <region>-docker.pkg.dev/<project>/<repository>/<name>:<tag>."""
    host = options.registry_host or f"{apis.where.region}-docker.pkg.dev"
    repository, _, _ = split_image_ref(spec.image)
    name = repository.rsplit("/", 1)[-1]
    tag = images.destination_tag(spec.image)
    return f"{host}/{apis.where.project}/{repository_id(spec, options)}/{name}:{tag}"


def push_image(
    apis: CloudRunApis, spec: ServiceSpec, options: CloudRunServiceConfig, log: ChangeLog
) -> str:
    """The copy's reference: copied unless the repository holds it already."""
    destination = image_reference(apis, spec, options)
    if options.registry_host:
        # A stand-in registry (tests): it takes the source registry's credentials.
        auth = spec.registry
    else:
        auth = RegistryAuth(username="oauth2accesstoken", password=apis.access_token())
    # copy_image reads both digests (a dry run copies nothing) and says whether it copies.
    if images.copy_image(spec.image, spec.registry, destination, auth, dry_run=log.dry_run):
        log.record("update", "artifact_registry_image", destination, spec.image)
    return destination


def find_repositories(apis: CloudRunApis, env: str) -> list[dict[str, Any]]:
    """The environment's repositories in the region, found by their label."""
    repositories = apis.registry.paged(
        "list Artifact Registry repositories",
        lambda s, t: (
            s.projects().locations().repositories().list(parent=apis.where.parent, pageToken=t)
        ),
        lambda page: page.get("repositories", []),
    )
    return [item for item in repositories if item.get("labels", {}).get(LABEL_ENV) == env]


def delete_repository(apis: CloudRunApis, name: str) -> None:
    """Delete the repository and its images; already gone is success."""
    try:
        operation = apis.registry.execute(
            "delete the Artifact Registry repository",
            lambda s: s.projects().locations().repositories().delete(name=name),
        )
    except ProvisionError as error:
        if error.code is ErrorCode.NOT_FOUND:
            return
        raise
    apis.registry_operation("delete the Artifact Registry repository", operation)
