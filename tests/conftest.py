"""Fixtures shared by the whole suite: the local platform (images, CA, registry), and how
pytest-xdist may spread the suite over workers (./scripts/test runs it so)."""

import fcntl
import os
import subprocess
import uuid
from pathlib import Path

import joblib
import pytest
from xdist.scheduler import LoadScopeScheduling

from mlops_vm import paths
from mlops_vm.localcloud import images, registry
from mlops_vm.localcloud.setup import ensure_platform

# How ./scripts/test spreads the suite over pytest-xdist workers: a unit of work goes to one
# worker, whose tests run in order. A unit is a module: its module-scoped environment is
# made once, and its fixed environment name and publish port are never in use twice.
# Modules on one shared environment form one unit (tests/e2e/conftest.py's `local_pair`).
SHARED_ENVIRONMENT_UNITS = {
    "tests/e2e/test_local_lb_failover.py": "local_pair",
    "tests/e2e/test_release.py": "local_pair",
}
# Modules whose tests share nothing: each test is a unit (a Molecule scenario's VMs,
# volumes and state carry the scenario's name).
ONE_UNIT_PER_TEST = {"tests/roles/test_molecule.py"}


def unit_of(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    if module in ONE_UNIT_PER_TEST:
        return nodeid
    return SHARED_ENVIRONMENT_UNITS.get(module, module)


class ModuleUnits(LoadScopeScheduling):
    """`--dist loadscope` with the units above instead of modules and classes."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log) -> LoadScopeScheduling | None:
    return ModuleUnits(config, log) if config.getvalue("dist") == "loadscope" else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In an xdist worker, the units with a slow test first (with --no-loadscope-reorder
    the workers take units in collection order): a long unit started last would leave the
    other workers idle at the end. A run in one process keeps pytest's order."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        slow = {unit_of(item.nodeid) for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: unit_of(item.nodeid) not in slow)


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item):
    """A child that inherits this process's stdin, stdout or stderr (ssh does) may leave it
    non-blocking for every later test of the worker, and Ansible refuses to start on one:
    put it back, and name the test that left it so in the warnings summary."""
    yield
    for fd in (0, 1, 2):
        if not os.get_blocking(fd):
            os.set_blocking(fd, True)
            item.warn(pytest.PytestWarning(f"file descriptor {fd} was left non-blocking"))
