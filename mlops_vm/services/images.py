"""Copy the model image from its source registry into a platform's registry (ECR,
Artifact Registry, ACR) through this machine's Docker engine.

The copy is skipped when the destination already holds the same manifest (compared by
registry digest, without pulling). Credentials go to the engine per call
(auth_config), never into a config file or a log. The engine must trust both registries
(a private CA in /etc/docker/certs.d/<host>/ca.crt).
"""

from collections.abc import Callable
from typing import Any

from mlops_vm.bootstrap.config import split_image_ref
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.retry import with_backoff
from mlops_vm.services.base import RegistryAuth

# How a registry (or the engine on its way to it) says the failure was the connection's.
TRANSIENT_SIGNS = (
    "eof",
    "connection reset",
    "connection refused",  # a registry restarting
    "timeout",
    "timed out",  # the engine's push stream unread past its client timeout (a busy host)
    "503 service unavailable",
    "502 bad gateway",
)
SOURCE_HINT = (
    "the source image must exist and this machine's Docker engine must reach and "
    "trust its registry (model.registry: username, password)"
)


def destination_tag(source: str) -> str:
    """The tag the copy gets: the source's tag, or one made from its digest."""
    _, tag, digest = split_image_ref(source)
    return tag if not digest else "sha256-" + digest.removeprefix("sha256:")[:32]


def auth_config(auth: RegistryAuth) -> dict[str, str] | None:
    return {"username": auth.username, "password": auth.password} if auth.username else None


def registry_digest(client: Any, reference: str, auth: RegistryAuth) -> str | None:
    """The manifest digest REFERENCE has in its registry; None when it is not there."""
    import docker.errors

    try:
        return client.images.get_registry_data(reference, auth_config=auth_config(auth)).id
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as error:
        # Registries answer a missing tag with "manifest unknown" (or 404 behind a proxy).
        if "manifest unknown" in str(error).lower() or "not found" in str(error).lower():
            return None
        raise


def copy_failed(operation: str, error: Exception, hint: str) -> ProvisionError:
    return ProvisionError(
        ErrorCode.INVALID_INPUT if "unauthorized" in str(error).lower() else ErrorCode.INTERNAL,
        str(error),
        hint=hint,
        operation=operation,
    )


def source_digest(
    client: Any,
    source: str,
    source_auth: RegistryAuth,
    read: Callable[[Any, str, RegistryAuth], str | None] = registry_digest,
) -> str:
    """SOURCE's manifest digest in its registry (READ: how to ask, e.g. with retries);
    ProvisionError when it cannot be read or is not there."""
    import docker.errors

    try:
        wanted = read(client, source, source_auth)
    except docker.errors.DockerException as error:
        raise copy_failed(f"read {source}", error, SOURCE_HINT) from None
    if wanted is None:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            f"image {source} does not exist in its registry",
            hint="push it first, or fix model.image",
            operation="read the model image",
        )
    return wanted


def needs_copy(
    source: str, source_auth: RegistryAuth, destination: str, destination_auth: RegistryAuth
) -> bool:
    """Whether DESTINATION lacks SOURCE's manifest (both full references; read only)."""
    import docker
    import docker.errors

    try:
        client = docker.from_env()
    except docker.errors.DockerException as error:
        raise copy_failed(f"read {source}", error, SOURCE_HINT) from None
    wanted = source_digest(client, source, source_auth)
    try:
        return registry_digest(client, destination, destination_auth) != wanted
    except docker.errors.DockerException:
        return True  # not readable yet (a new repository): copy


def transfer(
    source: str, source_auth: RegistryAuth, destination: str, destination_auth: RegistryAuth
) -> None:
    """SOURCE pulled and pushed to DESTINATION (both full references)."""
    import docker
    import docker.errors

    client = docker.from_env()
    repository, tag, _ = split_image_ref(destination)

    def pull_and_push() -> None:
        image = client.images.pull(source, auth_config=auth_config(source_auth))
        image.tag(repository, tag)
        stream = client.images.push(
            repository, tag, auth_config=auth_config(destination_auth), stream=True, decode=True
        )
        errors = [line["error"] for line in stream if "error" in line]
        if errors:
            raise ProvisionError(
                ErrorCode.INTERNAL,
                f"push of {destination} failed: {errors[-1]}",
                hint="check the destination registry's credentials and quota",
                operation="push the model image",
            )

    try:
        # A registry that drops the connection mid-upload is tried again (layers it has
        # already are not sent twice).
        with_backoff(pull_and_push, is_transient=dropped_connection, attempts=3)
    except docker.errors.DockerException as error:
        raise copy_failed(
            f"copy {source} to {destination}", error, "check both registries' credentials"
        ) from None


def copy_image(
    source: str,
    source_auth: RegistryAuth,
    destination: str,
    destination_auth: RegistryAuth,
    *,
    dry_run: bool,
) -> bool:
    """SOURCE copied to DESTINATION (both full references); False when it was there."""
    copying = needs_copy(source, source_auth, destination, destination_auth)
    # Cloud Run and App Service record the copy from this answer (whether it copies), so
    # the copy itself is skipped here in a dry run.
    if copying and not dry_run:
        transfer(source, source_auth, destination, destination_auth)
    return copying


def dropped_connection(error: Exception) -> bool:
    text = str(error).lower()
    return any(sign in text for sign in TRANSIENT_SIGNS)
