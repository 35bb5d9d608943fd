"""Helpers for tests that drive the GCP provider against FakeCompute."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from mlops_vm.provision.gcp import GcpProvider
from mlops_vm.provision.model import ProviderSettings
from tests.fakes.gcp.server import FakeCompute

PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
)
FAST = {"poll_interval_s": 0.02, "retry_base_delay_s": 0.01}


@contextmanager
def local_only_environment() -> Iterator[None]:
    """Plain http to 127.0.0.1: no proxy may intercept it, and no ADC is looked up."""
    with pytest.MonkeyPatch.context() as patch:
        for name in PROXY_VARIABLES:
            patch.delenv(name, raising=False)
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        patch.setenv("no_proxy", "127.0.0.1,localhost")
        yield


@contextmanager
def running_fake() -> Iterator[FakeCompute]:
    with local_only_environment(), FakeCompute() as fake:
        yield fake


def new_project() -> str:
    """A project of its own per test: tests share one fake without seeing each other."""
    return f"proj-{uuid.uuid4().hex[:10]}"


def make_provider(
    fake: FakeCompute, project: str, *, region: str = "us-central1", **options: Any
) -> GcpProvider:
    settings = ProviderSettings(
        name="gcp",
        region=region,
        endpoint_url=fake.endpoint_url,
        options={"project": project, **FAST, **options},
    )
    return GcpProvider(settings, credentials=AnonymousCredentials())


def by_name(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {resource["name"]: resource for resource in resources}


def tail(link: str) -> str:
    """`projects/...` of a self link, for comparing links."""
    return link.split("/compute/v1/", 1)[-1]
