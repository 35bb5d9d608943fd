"""The Lambda images run for real: the derived image (the model image + the runtime
interface client + the adapter) under the official Lambda Runtime Interface Emulator on
the local Docker engine, as a Lambda instance runs it (read-only root filesystem, a
writable /tmp, a non-root user, the function's environment).

The emulator listens inside the container on 0.0.0.0:9080 (its own network namespace;
the model app keeps 8080 as in the image) and the Runtime API on 127.0.0.1:9001; the
port is published on 127.0.0.1 only.
"""

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from mlops_vm.localcloud import registry
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.localcloud.lambda_emulator import ensure_emulator
from mlops_vm.services import RegistryAuth, ServiceSpec
from mlops_vm.services.lambda_ import function, image

SOURCE = f"{registry.HOST_ADDRESS}/mlops-vm/model-service"
EMULATOR_PORT = 9080
INVOCATIONS = "/2015-03-31/functions/function/invocations"
ENTRYPOINT = [
    "/usr/bin/env",
    "PYTHONPATH=/opt/mlops-vm-lambda/lib:/opt/mlops-vm-lambda",
    "python3",
    "-m",
    "awslambdaric",
    "mlops_vm_lambda_adapter.handler",
]


@dataclass(frozen=True)
class Emulated:
    """A derived image answering the Invoke API at URL."""

    url: str  # http://127.0.0.1:PORT (boto3's lambda endpoint_url)
    image: str
    container: str

    def invoke(self, event: dict, timeout_s: float = 60) -> dict:
        answer = httpx.post(self.url + INVOCATIONS, json=event, timeout=timeout_s)
        answer.raise_for_status()
        return answer.json()


def registry_auth() -> RegistryAuth:
    creds = registry.ensure_credentials()
    return RegistryAuth(username=creds.username, password=creds.password)


def derived_image(version: str, repository: str = "mlops-vm/lambda-images") -> str:
    """The lambda target's derived image of the model image VERSION, built and pushed to
    the local registry (once: its tag is a hash of its inputs)."""
    auth = registry_auth()
    destination = f"{registry.HOST_ADDRESS}/{repository}"
    tag, _ = image.ensure_derived_image(f"{SOURCE}:{version}", auth, destination, auth, "x86_64")
    return f"{destination}:{tag}"


def run_emulated(reference: str, spec: ServiceSpec) -> Emulated:
    """REFERENCE under the emulator with SPEC's function environment."""
    name = f"mlops-vm-lambda-test-{uuid.uuid4().hex[:8]}"
    env_args = []
    for key, value in function.environment(spec).items():
        env_args += ["-e", f"{key}={value}"]
    docker(
        "run", "-d", "--name", name,
        "--label", "org.mlops-vm.test=lambda",
        "--read-only", "--tmpfs", "/tmp",
        "--user", "993",
        "--memory", f"{spec.memory_mb}m",
        "-p", f"127.0.0.1::{EMULATOR_PORT}",
        "-v", f"{ensure_emulator('x86_64')}:/aws-lambda-rie:ro",
        "-e", f"AWS_LAMBDA_FUNCTION_MEMORY_SIZE={spec.memory_mb}",
        *env_args,
        "--entrypoint", "/aws-lambda-rie",
        reference,
        "--runtime-interface-emulator-address", f"0.0.0.0:{EMULATOR_PORT}",
        "--runtime-api-address", "127.0.0.1:9001",
        *ENTRYPOINT,
    )  # fmt: skip
    port = docker("port", name, str(EMULATOR_PORT)).splitlines()[0].rsplit(":", 1)[1]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the emulator's listener (the app starts at invoke)
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return Emulated(url=url, image=reference, container=name)


@pytest.fixture(scope="session")
def emulators() -> Iterator[dict]:
    """Started emulators by key, all removed at the end of the session."""
    running: dict[str, Emulated] = {}
    yield running
    for emulated in running.values():
        docker("rm", "-f", emulated.container, check=False)


def emulated(emulators: dict, version: str, spec: ServiceSpec) -> Emulated:
    if version not in emulators:
        emulators[version] = run_emulated(derived_image(version), spec)
    return emulators[version]


def url_event(method: str, path: str, body: bytes | str = b"", **extra) -> dict:
    """A function-URL (payload 2.0) event as Lambda delivers it."""
    raw = body.encode() if isinstance(body, str) else body
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "accept": "application/json"},
        "requestContext": {"http": {"method": method, "path": path}, "stage": "$default"},
        "body": raw.decode(),
        "isBase64Encoded": False,
    }
    event.update(extra)
    return event


def predictions(answer: dict) -> list:
    assert answer["statusCode"] == 200, answer
    return json.loads(answer["body"])["predictions"]
