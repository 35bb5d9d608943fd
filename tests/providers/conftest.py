"""Fixtures the provider test modules share: the GCP and Azure fakes, each started once per
module that asks for it, and the per-test clean-ups that go with them.

The clean-ups are not autouse here (the AWS modules must not start a fake): a module opts in
with `pytestmark = pytest.mark.usefixtures("clean_faults")` (GCP) or
`pytest.mark.usefixtures("plain_http", "fresh_hooks")` (Azure).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fakes.azure import FakeArm
from tests.fakes.gcp import FakeCompute
from tests.fakes.gcp.testing import new_project, running_fake

# -- GCP: the Compute Engine fake ------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeCompute]:
    with running_fake() as server:
        yield server


@pytest.fixture
def clean_faults(fake: FakeCompute) -> Iterator[None]:
    yield
    fake.reset_faults()


@pytest.fixture
def project() -> str:
    """A project of its own per test: the module's tests share one fake."""
    return new_project()


# -- Azure: the ARM fake ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def arm() -> Iterator[FakeArm]:
    with FakeArm() as fake_arm:
        yield fake_arm


@pytest.fixture
def plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ARM fake speaks plain http on 127.0.0.1: no CA bundle, no proxy in the way."""
    for name in list(os.environ):
        if name.upper().endswith(("_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "_PROXY")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture
def fresh_hooks(arm: FakeArm) -> Iterator[None]:
    yield
    arm.reset_hooks()
