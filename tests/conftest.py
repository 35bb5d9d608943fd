"""Fixtures shared by the whole suite: the local platform (images, CA, registry)."""

import uuid

import pytest

from mlops_vm.platform import registry
from mlops_vm.platform.setup import ensure_platform


@pytest.fixture(scope="session")
def platform() -> registry.Credentials:
    """Images built and the registry serving (no-op when setup already ran)."""
    ensure_platform()
    return registry.ensure_credentials()


@pytest.fixture
def unique_name() -> str:
    return f"mlops-vm-test-{uuid.uuid4().hex[:8]}"
