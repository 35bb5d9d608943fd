"""Fixtures shared by the whole suite: the local platform (images, CA, registry)."""

import os
import subprocess
import uuid
from pathlib import Path

import joblib
import pytest

from mlops_vm.localcloud import images, registry
from mlops_vm.localcloud.setup import ensure_platform


@pytest.fixture(scope="session")
def platform() -> registry.Credentials:
    """Images built and the registry serving (no-op when setup already ran). Not checked
    again when ./scripts/test's setup stage has just done it (MLOPS_VM_PLATFORM_READY=1):
    on a loaded machine the registry's answers alone take half a minute."""
    if os.environ.get("MLOPS_VM_PLATFORM_READY") != "1":
        ensure_platform()
    return registry.ensure_credentials()


@pytest.fixture(scope="session")
def reference_model(platform, tmp_path_factory):
    """The model file inside the 1.0 image, loaded here: the source of expected answers."""
    target = Path(tmp_path_factory.mktemp("reference-model"))
    name = f"mlops-vm-test-model-copy-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        ["docker", "create", "--name", name, images.model_tag("1.0")],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(["docker", "cp", f"{name}:/opt/model/.", str(target)], check=True)
    finally:
        subprocess.run(["docker", "rm", "-f", name], check=False, capture_output=True)
    return joblib.load(target / "model.joblib")


@pytest.fixture
def unique_name() -> str:
    return f"mlops-vm-test-{uuid.uuid4().hex[:8]}"
