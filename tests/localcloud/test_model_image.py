"""The example model image serves the model it was built with, and validates its input."""

import subprocess
import time
from pathlib import Path

import httpx
import joblib
import pytest
from sklearn.datasets import load_iris

from mlops_vm.localcloud import images
from mlops_vm.localcloud.docker_cli import docker

pytestmark = pytest.mark.slow


def start_model(name: str, version: str) -> str:
    docker("rm", "-f", name, check=False)
    docker(
        "run",
        "-d",
        "--name",
        name,
        "--label",
        "org.mlops-vm.test=model-image",
        "-p",
        "127.0.0.1::8080",
        images.model_tag(version),
    )
    port = docker("port", name, "8080/tcp").splitlines()[0].rpartition(":")[2]
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return base
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(docker("logs", "--tail", "30", name, check=False))


@pytest.fixture(scope="module")
def service(platform):
    name = "mlops-vm-test-model-1-0"
    base = start_model(name, "1.0")
    yield name, base
    docker("rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def model_from_image(service, tmp_path_factory):
    """The very model file inside the image, loaded here with joblib."""
    name, _ = service
    target = tmp_path_factory.mktemp("model")
    subprocess.run(["docker", "cp", f"{name}:/opt/model/.", str(target)], check=True)
    return joblib.load(Path(target) / "model.joblib")


def test_predictions_match_the_model_in_the_image(service, model_from_image):
    _, base = service
    rows = load_iris().data[::7]
    response = httpx.post(f"{base}/predict", json={"instances": rows.tolist()}, timeout=10)
    assert response.status_code == 200
    body = response.json()
    expected = model_from_image.predict(rows).tolist()
    assert body["predictions"] == expected
    assert len(set(expected)) == 3  # the sample covers every class, so order matters
    assert body["model_version"] == "1.0"
    assert response.headers["X-Model-Version"] == "1.0"


def test_health_and_readiness(service):
    _, base = service
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"instances": [[5.1, 3.5, 1.4]]}, "expected 4 features, got 3"),
        ({"instances": [["a", 3.5, 1.4, 0.2]]}, "valid number"),
        ({"instances": [["5.1", 3.5, 1.4, 0.2]]}, "valid number"),
        ({"instances": []}, "at least 1"),
        ({"rows": [[5.1, 3.5, 1.4, 0.2]]}, "Field required"),
        ({"instances": [5.1, 3.5, 1.4, 0.2]}, "valid list"),
    ],
)
def test_malformed_input_is_422_with_a_clear_message(service, payload, message):
    _, base = service
    response = httpx.post(f"{base}/predict", json=payload, timeout=5)
    assert response.status_code == 422
    assert message in response.text


def test_workers_come_from_the_environment(platform):
    name = "mlops-vm-test-model-workers"
    docker("rm", "-f", name, check=False)
    docker("run", "-d", "--name", name, "-e", "WEB_CONCURRENCY=2", images.model_tag("1.0"))
    try:
        deadline = time.monotonic() + 30
        workers = 0
        while True:
            # the uvicorn supervisor plus one process per worker
            processes = docker("top", name, "-o", "pid,args", check=False)
            workers = sum(
                "uvicorn" in line or "multiprocessing" in line for line in processes.splitlines()
            )
            if workers >= 3 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert workers >= 3, processes
    finally:
        docker("rm", "-f", name, check=False)


def image_facts(version: str) -> tuple[str, str]:
    """(MODEL_VERSION, checksum of the model file) inside the image of VERSION."""
    out = docker(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        images.model_tag(version),
        "-c",
        "printenv MODEL_VERSION; sha256sum /opt/model/model.joblib",
    )
    version_line, checksum_line = out.splitlines()
    return version_line, checksum_line.split()[0]


def test_versions_share_the_model_and_differ_in_version_string(platform):
    (v10, model10), (v11, model11) = image_facts("1.0"), image_facts("1.1")
    assert (v10, v11) == ("1.0", "1.1")
    assert model10 == model11
