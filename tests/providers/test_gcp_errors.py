"""The GCP provider's failure paths: validation up front, classified errors, retries, and
nothing created before a failure left unreported."""

import time

import pytest

from mlops_vm.provision import (
    CertificateSpec,
    ErrorCode,
    FleetSpec,
    InstanceSpec,
    LoadBalancerSpec,
    ProviderSettings,
    ProvisionError,
)
from mlops_vm.provision.gcp import GcpProvider
from mlops_vm.provision.gcp.errors import PartialProvisionError
from tests.fakes.gcp import FakeCompute
from tests.fakes.gcp.testing import make_provider

ENV = "e1"
MUTATING = ("insert", "delete", "patch", "update", "resize", "setLabels")


pytestmark = pytest.mark.usefixtures("clean_faults")


@pytest.fixture
def provider(fake: FakeCompute, project: str) -> GcpProvider:
    return make_provider(fake, project)


def fleet(count: int = 2, machine_type: str = "e2-small", **changes) -> FleetSpec:
    return FleetSpec(
        env=ENV, instance=InstanceSpec(machine_type=machine_type), count=count, **changes
    )


def mutations(fake: FakeCompute, project: str) -> list[str]:
    return [
        method
        for method, path in fake.calls
        if f"projects/{project}/" in path and method.rsplit(".", 1)[1] in MUTATING
    ]


def instance_names(fake: FakeCompute, project: str) -> set[str]:
    return {i["name"] for i in fake.resources(project, "instances")}


# -- validate ------------------------------------------------------------------------------


def test_validate_accepts_a_good_spec_and_creates_nothing(fake, provider, project):
    lb = LoadBalancerSpec(env=ENV, certificate=CertificateSpec(managed_domains=("a.example",)))
    provider.validate(fleet(), lb)
    assert mutations(fake, project) == []
    assert {m for m, _ in fake.calls if f"projects/{project}/" in _} >= {
        "compute.regions.get",
        "compute.zones.get",
        "compute.machineTypes.get",
    }


def test_machine_type_missing_in_a_zone_is_refused_before_anything(fake, provider, project):
    fake.catalog.remove_machine_type("us-central1-b", "e2-small")
    with pytest.raises(ProvisionError) as caught:
        provider.validate(fleet(), None)
    error = caught.value
    assert error.code is ErrorCode.INVALID_INPUT
    assert "e2-small" in error.message and "us-central1-b" in error.message
    assert "zones" in error.hint
    assert mutations(fake, project) == []
    provider.validate(fleet(zones=("us-central1-a", "us-central1-c")), None)


@pytest.mark.parametrize(
    ("settings_region", "spec", "expected"),
    [
        ("mars-north1", fleet(), "region mars-north1"),
        ("us-central1", fleet(zones=("europe-west1-b",)), "zone europe-west1-b"),
        ("us-central1", fleet(machine_type="e2-galactic"), "e2-galactic"),
        (
            "us-central1",
            FleetSpec(env=ENV, instance=InstanceSpec(machine_type="e2-small", image="debian-99")),
            "debian-99",
        ),
        (
            "us-central1",
            FleetSpec(env="Prod_EU", instance=InstanceSpec(machine_type="e2-small")),
            "Prod_EU",
        ),
        (
            "us-central1",
            FleetSpec(env=ENV, instance=InstanceSpec(machine_type="e2-small", tags={"Team": "x"})),
            "Team",
        ),
    ],
)
def test_validate_names_what_to_fix(fake, project, settings_region, spec, expected):
    provider = make_provider(fake, project, region=settings_region)
    with pytest.raises(ProvisionError) as caught:
        provider.validate(spec, None)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert expected in caught.value.message
    assert caught.value.hint
    assert mutations(fake, project) == []


@pytest.mark.parametrize(
    ("certificate", "expected"),
    [
        (CertificateSpec(), "exactly one certificate source"),
        (
            CertificateSpec(managed_domains=("a.example",), cert_file="/x.pem", key_file="/x.key"),
            "exactly one certificate source",
        ),
        (CertificateSpec(arn="arn:aws:acm:x"), "not GCP certificates"),
        (
            CertificateSpec(cert_file="/nonexistent.pem", key_file="/nonexistent.key"),
            "not a readable file",
        ),
    ],
)
def test_validate_checks_the_certificate_source(provider, certificate, expected):
    with pytest.raises(ProvisionError) as caught:
        provider.validate(fleet(), LoadBalancerSpec(env=ENV, certificate=certificate))
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert expected in caught.value.message


def test_missing_project_and_region_are_invalid_input(fake):
    no_project = GcpProvider(
        ProviderSettings(name="gcp", region="us-central1", endpoint_url=fake.endpoint_url)
    )
    with pytest.raises(ProvisionError, match="project") as caught:
        no_project.list_instances(ENV)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    no_region = GcpProvider(ProviderSettings(name="gcp", options={"project": "p"}))
    with pytest.raises(ProvisionError, match="region"):
        no_region.list_instances(ENV)


# -- quota, capacity, machine type, permission: classified, and partial work reported -------


def test_quota_exceeded_reports_what_was_created(fake, provider, project):
    fake.faults.quota_exceeded(after=1)  # the first instance fits, the others do not
    with pytest.raises(PartialProvisionError) as caught:
        provider.ensure_fleet(fleet(3))
    error = caught.value
    assert error.code is ErrorCode.QUOTA
    assert "Quota 'CPUS' exceeded" in error.message
    assert "IAM & Admin > Quotas" in error.hint
    created = {c.name for c in error.changes if c.kind == "instance"}
    assert created == instance_names(fake, project) == {f"mlops-vm-{ENV}-model-0"}
    assert {c.kind for c in error.changes} == {"network", "subnetwork", "firewall", "instance"}
    assert f"mlops-vm-{ENV}-model-0" in error.message  # the message says it too
    assert error.changes_so_far == error.changes  # what the modules hand back to the run

    fake.reset_faults()  # quota raised: a re-run finishes the job
    resumed = provider.ensure_fleet(fleet(3))
    assert [c.name for c in resumed.changes] == [
        f"mlops-vm-{ENV}-model-1",
        f"mlops-vm-{ENV}-model-2",
    ]


def test_quota_exceeded_on_scaling_group_insert(fake, provider, project):
    fake.faults.quota_exceeded(
        "compute.regionInstanceGroupManagers.insert", metric="INSTANCE_GROUP_MANAGERS", limit=0
    )
    spec = FleetSpec(
        env=ENV,
        mode="scaling_group",
        count=2,
        instance=InstanceSpec(machine_type="e2-small", user_data="#cloud-config"),
    )
    with pytest.raises(PartialProvisionError) as caught:
        provider.ensure_fleet(spec)
    assert caught.value.code is ErrorCode.QUOTA
    assert [c.kind for c in caught.value.changes][-1] == "instance_template"
    assert fake.resources(project, "instanceGroupManagers") == []


def test_zone_exhausted_is_capacity_with_a_zone_hint(fake, provider, project):
    fake.faults.zone_exhausted("us-central1-b")
    with pytest.raises(PartialProvisionError) as caught:
        provider.ensure_fleet(fleet(2))
    error = caught.value
    assert error.code is ErrorCode.CAPACITY
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in error.message
    assert "FleetSpec.zones" in error.hint
    assert (
        instance_names(fake, project)
        == {c.name for c in error.changes if c.kind == "instance"}
        == {f"mlops-vm-{ENV}-model-0"}
    )


def test_machine_type_missing_without_validate_is_reported_by_the_api(fake, provider, project):
    fake.catalog.remove_machine_type("us-central1-b", "e2-small")
    with pytest.raises(PartialProvisionError) as caught:
        provider.ensure_fleet(fleet(2))
    error = caught.value
    assert error.code is ErrorCode.INVALID_INPUT
    assert "does not exist in zone 'us-central1-b'" in error.message
    assert instance_names(fake, project) == {c.name for c in error.changes if c.kind == "instance"}


def test_permission_denied_before_anything_is_created(fake, provider, project):
    fake.faults.deny("compute.networks.insert", "compute.networks.create")
    with pytest.raises(ProvisionError) as caught:
        provider.ensure_fleet(fleet(1))
    error = caught.value
    assert not isinstance(error, PartialProvisionError)  # nothing was created
    assert error.code is ErrorCode.PERMISSION
    assert "compute.networks.create" in error.message
    assert "roles/compute.admin" in error.hint
    assert fake.resources(project) == []
    assert mutations(fake, project) == ["compute.networks.insert"]  # not retried


def test_permission_denied_midway_lists_the_network_it_made(fake, provider, project):
    fake.faults.deny("compute.instances.insert", "compute.instances.create")
    with pytest.raises(PartialProvisionError) as caught:
        provider.ensure_fleet(fleet(2))
    error = caught.value
    assert error.code is ErrorCode.PERMISSION
    names = {r["name"] for r in fake.resources(project)}
    assert {c.name for c in error.changes} == names
    assert names == {f"mlops-vm-{ENV}-net", f"mlops-vm-{ENV}-subnet", f"mlops-vm-{ENV}-allow-lb"}
    assert "destroy" in error.hint
    provider.destroy(ENV)
    assert fake.resources(project) == []


def test_unauthenticated_is_auth(fake, provider):
    fake.faults.fail_request(
        "compute.instances.aggregatedList",
        status=401,
        reason="authError",
        message="Invalid Credentials",
    )
    with pytest.raises(ProvisionError) as caught:
        provider.list_instances(ENV)
    assert caught.value.code is ErrorCode.AUTH
    assert "application-default login" in caught.value.hint


def test_missing_application_default_credentials_is_auth(fake, project, monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    settings = ProviderSettings(
        name="gcp",
        region="us-central1",
        endpoint_url=fake.endpoint_url,
        options={"project": project},
    )
    with pytest.raises(ProvisionError) as caught:
        GcpProvider(settings).list_instances(ENV)
    assert caught.value.code is ErrorCode.AUTH
    assert "GOOGLE_APPLICATION_CREDENTIALS" in caught.value.hint


# -- throttling and 5xx are retried ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (429, "rateLimitExceeded"),
        (403, "rateLimitExceeded"),
        (503, "backendError"),
        (500, "internalError"),
    ],
)
def test_transient_errors_are_retried(fake, provider, project, status, reason):
    fake.faults.fail_request(
        "compute.networks.insert", status=status, reason=reason, message="slow down", times=2
    )
    result = provider.ensure_fleet(fleet(1))
    assert result.changed
    assert mutations(fake, project).count("compute.networks.insert") == 3


def test_synchronous_quota_exceeded_is_not_retried(fake, provider, project):
    fake.faults.fail_request(
        "compute.networks.insert",
        status=403,
        reason="quotaExceeded",
        message="Quota 'NETWORKS' exceeded.  Limit: 5.0 globally.",
    )
    with pytest.raises(ProvisionError) as caught:
        provider.ensure_fleet(fleet(1))
    assert caught.value.code is ErrorCode.QUOTA
    assert mutations(fake, project) == ["compute.networks.insert"]


def test_retries_give_up_with_a_classified_error(fake, project):
    provider = make_provider(fake, project, retry_attempts=3)
    fake.faults.fail_request(
        "compute.instances.aggregatedList",
        status=503,
        reason="backendError",
        message="Backend Error",
    )
    with pytest.raises(ProvisionError) as caught:
        provider.list_instances(ENV)
    assert caught.value.code is ErrorCode.INTERNAL
    listed = [
        m
        for m, p in fake.calls
        if m == "compute.instances.aggregatedList" and f"projects/{project}/" in p
    ]
    assert len(listed) == 3


def test_operation_timeout_is_reported(fake, project):
    provider = make_provider(fake, project, operation_timeout_s=0)
    with pytest.raises(ProvisionError) as caught:
        provider.ensure_fleet(fleet(1))
    assert caught.value.code is ErrorCode.TIMEOUT
    assert "still PENDING" in caught.value.message


# -- destroy ---------------------------------------------------------------------------------


def test_destroy_of_nothing_is_a_no_op(fake, provider, project):
    assert provider.destroy(ENV) == []
    assert mutations(fake, project) == []


def test_destroy_reports_what_it_removed_before_a_failure(fake, provider, project):
    provider.ensure_fleet(fleet(1))
    fake.faults.deny("compute.firewalls.delete", "compute.firewalls.delete")
    with pytest.raises(PartialProvisionError) as caught:
        provider.destroy(ENV)
    assert caught.value.code is ErrorCode.PERMISSION
    assert [c.kind for c in caught.value.changes] == ["instance"]
    assert fake.resources(project, "instances") == []


# -- Retry-After, the retry budget, lost responses --------------------------------------------


def inserts_of(fake: FakeCompute, project: str, method_id: str) -> int:
    return mutations(fake, project).count(method_id)


def test_retry_after_is_waited_out_before_the_retry(fake, provider, project):
    fake.faults.throttle("compute.networks.insert", retry_after_s=1, times=2)
    started = time.monotonic()
    assert provider.ensure_fleet(fleet(1)).changed
    assert time.monotonic() - started >= 2  # both waits, as asked
    # No retry came early (the fake would have throttled it again, not counting it).
    assert inserts_of(fake, project, "compute.networks.insert") == 3


def test_a_wait_beyond_the_retry_budget_fails_at_once(fake, project):
    provider = make_provider(fake, project, retry_budget_s=5)
    fake.faults.throttle("compute.networks.insert", retry_after_s=120)
    started = time.monotonic()
    with pytest.raises(ProvisionError) as caught:
        provider.ensure_fleet(fleet(1))
    assert time.monotonic() - started < 5  # no sleeping towards a certain failure
    assert caught.value.code is ErrorCode.THROTTLED
    assert "retry budget" in caught.value.message
    assert "retry_budget_s" in caught.value.hint
    assert inserts_of(fake, project, "compute.networks.insert") == 1


def test_a_lost_insert_response_is_retried_into_the_same_network(fake, provider, project):
    fake.faults.drop_response("compute.networks.insert")
    provider.ensure_fleet(fleet(1))
    assert inserts_of(fake, project, "compute.networks.insert") == 2  # it was retried
    assert [n["name"] for n in fake.resources(project, "networks")] == [f"mlops-vm-{ENV}-net"]
    assert len({op.resource["targetLink"] for op in fake.operations(project)}) == len(
        fake.operations(project)
    )  # one operation per resource created: the retry joined the first one


def test_a_lost_instance_insert_response_makes_one_instance(fake, provider, project):
    fake.faults.drop_response("compute.instances.insert")
    result = provider.ensure_fleet(fleet(1))
    assert [i.name for i in result.instances] == [f"mlops-vm-{ENV}-model-0"]
    assert inserts_of(fake, project, "compute.instances.insert") == 2


# -- a managed instance group that cannot create its instances fails fast ----------------------


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            "ZONE_RESOURCE_POOL_EXHAUSTED",
            "The zone 'projects/p/zones/us-central1-a' does not have enough resources "
            "available to fulfill the request.",
            ErrorCode.CAPACITY,
        ),
        (
            "QUOTA_EXCEEDED",
            "Quota 'CPUS' exceeded.  Limit: 8.0 in region us-central1.",
            ErrorCode.QUOTA,
        ),
        (
            "INVALID_FIELD_VALUE",
            "Invalid value for field 'resource.machineType': 'e2-small' does not exist in zone",
            ErrorCode.INVALID_INPUT,
        ),
    ],
)
def test_a_group_that_cannot_create_instances_fails_at_once(fake, project, code, message, expected):
    provider = make_provider(fake, project, stable_timeout_s=30)
    fake.faults.fail_group_launches(code, message)
    spec = FleetSpec(
        env=ENV,
        mode="scaling_group",
        count=2,
        instance=InstanceSpec(machine_type="e2-small", user_data="#cloud-config"),
    )
    started = time.monotonic()
    with pytest.raises(ProvisionError) as caught:
        provider.ensure_fleet(spec)
    assert time.monotonic() - started < 15  # not the whole wait (30 s)
    assert caught.value.code is expected
    assert code in caught.value.message and message in caught.value.message
