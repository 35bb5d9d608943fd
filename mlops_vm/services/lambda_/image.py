"""The model image made runnable on Lambda (images/lambda-adapter: the runtime interface
client and the adapter on top of the unchanged image), built on this machine and pushed
to the environment's ECR repository.

The derived image's tag carries a hash of its inputs (the source image's registry digest,
the adapter's files, the client's version, the architecture), so an image already in ECR
is neither rebuilt nor pushed again; the local build carries the same hash as its inputs
label (the project's image machinery, mlops_vm/localcloud/images.py).
"""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlops_vm import paths
from mlops_vm.bootstrap.config import split_image_ref
from mlops_vm.localcloud import images as image_builds
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.retry import with_backoff
from mlops_vm.services import images
from mlops_vm.services.base import RegistryAuth
from mlops_vm.services.lambda_ import limits

ADAPTER_DIR = paths.IMAGES_DIR / "lambda-adapter"
# What the adapter adds; its wheels are downloaded on this machine for the image's Python.
RUNTIME_CLIENT = ("awslambdaric==4.2.2",)
WHEEL_PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}


def adapter_hash(architecture: str) -> str:
    digest = hashlib.sha256(architecture.encode())
    image_builds.hash_tree(ADAPTER_DIR, digest)
    for requirement in RUNTIME_CLIENT:
        digest.update(requirement.encode())
    return digest.hexdigest()


def inputs_hash(source_digest: str, architecture: str) -> str:
    """A hash of everything the derived image is made of."""
    return hashlib.sha256(f"{source_digest}:{adapter_hash(architecture)}".encode()).hexdigest()


def derived_tag(source: str, inputs: str) -> str:
    return f"{images.destination_tag(source)}-lambda-{inputs[:12]}"


def registry_unavailable(error: Exception) -> bool:
    """A registry that dropped the connection or answered 5xx: worth another try."""
    text = str(error)
    return any(mark in text for mark in ("EOF", "502 ", "503 ", "504 ", "connection reset"))


def digest_of(client: Any, reference: str, auth: RegistryAuth) -> str | None:
    """REFERENCE's manifest digest in its registry (None: not there), retried while the
    registry is briefly unavailable."""
    return with_backoff(
        lambda: images.registry_digest(client, reference, auth),
        is_transient=registry_unavailable,
        attempts=5,
        base_delay_s=1.0,
        budget_s=60.0,
    )


def app_settings(attrs: dict[str, Any]) -> dict[str, Any]:
    """The model image's own command, working directory and port (its PORT variable)."""
    config = attrs.get("Config") or {}
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    return {
        "command": [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])],
        "workdir": config.get("WorkingDir") or "/",
        "port": int(env.get("PORT", "8080")),
    }


def python_version(client: Any, image: str) -> str:
    out = client.containers.run(
        image,
        entrypoint=["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        command=[],
        remove=True,
        network_disabled=True,
    )
    return out.decode().strip()


def runtime_wheels(python: str, architecture: str) -> Path:
    """The runtime client's wheels for PYTHON on ARCHITECTURE, downloaded once (cached)."""
    key = hashlib.sha256(f"{python}:{architecture}:{RUNTIME_CLIENT}".encode()).hexdigest()[:16]
    wheels = paths.CACHE_DIR / "wheels" / f"lambda-{key}"
    if not (wheels / ".complete").exists():
        shutil.rmtree(wheels, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--only-binary=:all:",
                "--platform",
                WHEEL_PLATFORMS[architecture],
                "--python-version",
                python,
                "-d",
                str(wheels),
                *RUNTIME_CLIENT,
            ],
            check=True,
            capture_output=True,
        )
        (wheels / ".complete").touch()
    return wheels


def check_source_size(source: str, auth: RegistryAuth) -> None:
    """Lambda's image size limit on the source image, before anything exists: the image as
    this machine's engine has it, else pulled (the build needs it anyway). Without readable
    credentials (`mlops-vm validate` runs without the vault) or registry, nothing is said
    here: the push checks the source and the derived image again."""
    import docker

    client = docker.from_env()
    try:
        image = client.images.get(source)
    except docker.errors.ImageNotFound:
        if "{{" in auth.username or "{{" in auth.password:
            return  # secrets not resolved here
        try:
            image = client.images.pull(source, auth_config=images.auth_config(auth))
        except docker.errors.APIError:
            return
    limits.check_image_size(source, image.attrs.get("Size", 0))


def build(
    client: Any, source: str, auth: RegistryAuth, tag: str, architecture: str, inputs: str
) -> None:
    """Build TAG: SOURCE (pulled) with the runtime client and the adapter added."""
    image = client.images.pull(source, auth_config=images.auth_config(auth))
    limits.check_image_size(source, image.attrs.get("Size", 0))
    app = app_settings(image.attrs)
    if not app["command"]:
        raise ProvisionError(
            ErrorCode.INVALID_INPUT,
            f"image {source} has no command (CMD/ENTRYPOINT) to start the web app with",
            operation="read the model image",
        )
    wheels = runtime_wheels(python_version(client, source), architecture)

    def add_context(context: Path) -> None:
        shutil.copytree(wheels, context / "wheels", ignore=shutil.ignore_patterns(".complete"))
        (context / "app.json").write_text(json.dumps(app, indent=2))

    spec = image_builds.ImageSpec(
        tag, context=ADAPTER_DIR, parent=source, extra_context=add_context
    )
    image_builds.build_dockerfile(spec, inputs)
    limits.check_image_size(tag, client.images.get(tag).attrs.get("Size", 0))


def push(client: Any, tag: str, auth: RegistryAuth) -> None:
    import docker.errors

    repository, name, _ = split_image_ref(tag)
    try:
        stream = client.images.push(
            repository, name, auth_config=images.auth_config(auth), stream=True, decode=True
        )
        errors = [line["error"] for line in stream if "error" in line]
    except docker.errors.DockerException as error:
        raise images.copy_failed(f"push {tag}", error, "check ECR's credentials") from None
    if errors:
        raise ProvisionError(
            ErrorCode.INTERNAL,
            f"push of {tag} failed: {errors[-1]}",
            hint="check the destination registry's credentials and quota",
            operation="push the Lambda image",
        )


def derived_image(
    source: str,
    auth: RegistryAuth,
    destination: str,
    destination_auth: RegistryAuth,
    architecture: str,
) -> tuple[str, str, bool]:
    """(the derived image's tag, its inputs hash, whether the repository DESTINATION holds
    it already) for SOURCE: reads only."""
    import docker

    client = docker.from_env()
    inputs = inputs_hash(images.source_digest(client, source, auth, read=digest_of), architecture)
    tag = derived_tag(source, inputs)
    try:
        present = digest_of(client, f"{destination}:{tag}", destination_auth) is not None
    except docker.errors.DockerException:
        present = False  # not readable yet (a new repository): build and push
    return tag, inputs, present


def build_and_push(
    source: str,
    auth: RegistryAuth,
    reference: str,
    destination_auth: RegistryAuth,
    architecture: str,
    inputs: str,
) -> None:
    """The derived image REFERENCE (built here unless an image with the same INPUTS was
    made here before, for another repository) pushed to its registry."""
    import docker

    client = docker.from_env()
    repository, tag, _ = split_image_ref(reference)
    built = client.images.list(filters={"label": f"{image_builds.INPUTS_LABEL}={inputs[:32]}"})
    if built:
        built[0].tag(repository, tag)
    else:
        build(client, source, auth, reference, architecture, inputs[:32])
    push(client, reference, destination_auth)


def ensure_derived_image(
    source: str,
    auth: RegistryAuth,
    destination: str,
    destination_auth: RegistryAuth,
    architecture: str,
) -> tuple[str, bool]:
    """(the derived image's tag, whether it was built and pushed) for SOURCE in the
    repository DESTINATION."""
    tag, inputs, present = derived_image(source, auth, destination, destination_auth, architecture)
    if not present:
        build_and_push(source, auth, f"{destination}:{tag}", destination_auth, architecture, inputs)
    return tag, not present
