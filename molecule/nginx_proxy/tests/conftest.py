"""Make the shared helpers (molecule/resources) importable; fixtures of the scenario."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))

from mlops_molecule import NginxLimits, copy_generated_ca

# The plain-HTTP URL that must redirect to https://vm1/predict?x=1 (tls_policy.py).
HTTP_PROBE_URL = "http://vm1/predict?x=1"
CA_ON_VM = "/root/nginx-ca.crt"


@pytest.fixture(scope="module", autouse=True)
def generated_ca_on_vm(host):
    return copy_generated_ca(host, CA_ON_VM)


@pytest.fixture(scope="module")
def limits(host) -> NginxLimits:
    """The rate limit and passive health check window of the served configuration."""
    return NginxLimits.of(host.file("/etc/nginx/nginx.conf").content_string)
