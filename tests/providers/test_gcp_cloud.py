"""The GCP provider against real Compute Engine: read-only checks, skipped by default.

Runs only with `-m cloud`, MLOPS_VM_GCP_PROJECT set and Application Default Credentials
(gcloud auth application-default login). Nothing is created: validate and dry runs only.
"""

import os

import pytest

from mlops_vm.provision import FleetSpec, InstanceSpec, ProviderSettings
from mlops_vm.provision.gcp import GcpProvider

PROJECT = os.environ.get("MLOPS_VM_GCP_PROJECT")
REGION = os.environ.get("MLOPS_VM_GCP_REGION", "europe-west1")

pytestmark = [
    pytest.mark.cloud,
    pytest.mark.skipif(not PROJECT, reason="needs MLOPS_VM_GCP_PROJECT and Google ADC"),
]


def test_validate_and_dry_run_against_the_real_api():
    provider = GcpProvider(
        ProviderSettings(name="gcp", region=REGION, options={"project": PROJECT})
    )
    spec = FleetSpec(env="cloudcheck", instance=InstanceSpec(machine_type="e2-small"), count=1)
    provider.validate(spec, None)
    plan = provider.ensure_fleet(spec, dry_run=True)
    assert any(change.kind == "instance" for change in plan.changes)
    assert provider.list_instances("cloudcheck") == []
