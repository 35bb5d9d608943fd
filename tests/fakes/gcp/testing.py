"""Helpers for tests that drive the GCP provider against FakeCompute."""

import datetime
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
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


def self_signed_certificate(directory: Path, domain: str) -> tuple[str, str]:
    """A PEM certificate and key for DOMAIN, written to DIRECTORY; their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{domain}.crt"
    key_path = directory / f"{domain}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def by_name(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {resource["name"]: resource for resource in resources}


def tail(link: str) -> str:
    """`projects/...` of a self link, for comparing links."""
    return link.split("/compute/v1/", 1)[-1]
