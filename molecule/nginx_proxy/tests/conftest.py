"""Make the shared helpers (molecule/resources) importable; fixtures of the scenario."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))

from mlops_molecule import copy_generated_ca

CA_ON_VM = "/root/nginx-ca.crt"


@pytest.fixture(scope="module", autouse=True)
def generated_ca_on_vm(host):
    return copy_generated_ca(host, CA_ON_VM)


@pytest.fixture(scope="module")
def ca_on_vm() -> str:
    """Where the generated CA is on the VM (tls_policy.py)."""
    return CA_ON_VM


@pytest.fixture(scope="module")
def http_probe_url() -> str:
    """The plain-HTTP URL that must redirect to HTTPS (tls_policy.py)."""
    return "http://vm1/predict?x=1"
