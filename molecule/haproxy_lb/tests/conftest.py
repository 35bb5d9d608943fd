"""Make the shared helpers (molecule/resources) importable; fixtures of the scenario."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))

from mlops_molecule import copy_generated_ca

# The plain-HTTP URL that must redirect to https://vm1/predict?x=1 (tls_policy.py).
HTTP_PROBE_URL = "http://vm1:80/predict?x=1"
CA_ON_VM = "/root/lb-ca.crt"


@pytest.fixture(scope="module", autouse=True)
def generated_ca_on_vm(host):
    return copy_generated_ca(host, CA_ON_VM)
