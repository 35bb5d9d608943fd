"""`--check` equals the run for the GCP provider on a new environment, against the Compute
Engine fake: a fixed fleet and a scaling group, each behind the load balancer."""

from collections.abc import Callable

import pytest

from mlops_vm.provision import CertificateSpec, FleetSpec, LoadBalancerSpec
from mlops_vm.provision.gcp import GcpProvider
from tests.check_equals_run import assert_check_equals_run
from tests.fakes.gcp import FakeCompute
from tests.fakes.gcp.testing import make_provider
from tests.providers.test_gcp import ENV, fleet, scaling_group

pytestmark = pytest.mark.usefixtures("clean_faults")


@pytest.mark.parametrize(
    "shape", [lambda: fleet(2), lambda: scaling_group(2)], ids=["fleet", "mig"]
)
def test_check_lists_what_the_run_does(
    fake: FakeCompute, project: str, shape: Callable[[], FleetSpec]
):
    provider: GcpProvider = make_provider(fake, project)
    lb = LoadBalancerSpec(env=ENV, certificate=CertificateSpec(managed_domains=("m.example.com",)))
    done = assert_check_equals_run(provider, shape(), lb)
    kinds = {c.kind for c in done}
    assert {"network", "forwarding_rule", "backend_service"} <= kinds
    assert fake.resources(project) == []
