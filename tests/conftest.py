"""Fixtures shared by the whole suite: the local platform (images, CA, registry), and how
pytest-xdist may spread the suite over workers (./scripts/test runs it so)."""

import fcntl
import os
import subprocess
import uuid
from pathlib import Path

import joblib
import pytest

from mlops_vm import paths
from mlops_vm.localcloud import images, registry
from mlops_vm.localcloud.setup import ensure_platform


def group_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    return marker.args[0] if marker.args else marker.kwargs.get("name", "default")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup`, a module's tests go to one worker, in order, as one unit:
    its module-scoped environment is made once, and its fixed environment name and port are
    never in use twice. A module or test with its own `xdist_group` mark says otherwise
    (the modules sharing the e2e `pair` environment, each Molecule scenario on its own).

    In an xdist worker the units with a slow test come first (with --no-loadscope-reorder
    the workers take units in this order): a long unit started last would leave the other
    workers idle at the end. A serial run keeps pytest's order."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    if "PYTEST_XDIST_WORKER" in os.environ:
        slow = {group_of(item) for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: group_of(item) not in slow)


@pytest.fixture(scope="session")
def platform() -> registry.Credentials:
    """Images built and the registry serving (no-op when setup already ran). Not checked
    again when ./scripts/test's setup stage has just done it (MLOPS_VM_PLATFORM_READY=1):
    on a loaded machine the registry's answers alone take half a minute."""
    paths.STATE_DIR.mkdir(parents=True, exist_ok=True)
    # One xdist worker at a time: the others wait, then find everything in place.
    with (paths.STATE_DIR / "platform.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
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
