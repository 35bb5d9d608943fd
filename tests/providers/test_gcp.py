"""The GCP provider against the Compute Engine fake: contract, fleet, scaling group, LB.

The fake (tests/fakes/gcp) checks every request against the compute v1 discovery document
and keeps state, so what these tests read back is what the provider's calls produced.
"""

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from mlops_vm.provision import (
    AutoscalingSpec,
    CertificateSpec,
    ErrorCode,
    FleetSpec,
    InstanceSpec,
    InstanceStatus,
    LoadBalancerSpec,
    NetworkSpec,
    ProvisionError,
)
from mlops_vm.provision.dispatch import get_provider
from mlops_vm.provision.gcp import GcpProvider
from mlops_vm.provision.gcp import instances as gcp_instances
from mlops_vm.provision.model import LABEL_ENV, LABEL_ROLE, ProviderSettings
from tests.fakes.gcp import FakeCompute
from tests.fakes.gcp.testing import (
    by_name,
    make_provider,
    tail,
)
from tests.providers.cloud_fixtures import self_signed_certificate
from tests.providers.contract import ProviderContract

ENV = "t1"
USER_DATA = "#cloud-config\nruncmd: [[ansible-pull, model-service]]\n"


pytestmark = pytest.mark.usefixtures("clean_faults")


@pytest.fixture
def provider(fake: FakeCompute, project: str) -> GcpProvider:
    return make_provider(fake, project)


def fleet(count: int, **changes: Any) -> FleetSpec:
    instance = changes.pop(
        "instance",
        InstanceSpec(
            machine_type="e2-small",
            user_data=USER_DATA,
            ssh_public_key="ssh-ed25519 AAAAC3Nza test@example",
        ),
    )
    return FleetSpec(env=ENV, instance=instance, count=count, **changes)


def scaling_group(count: int = 2, **changes: Any) -> FleetSpec:
    changes.setdefault("autoscaling", AutoscalingSpec(min_size=1, max_size=4))
    return fleet(count, mode="scaling_group", **changes)


@pytest.fixture
def fleet_spec() -> Callable[[int], FleetSpec]:
    return fleet


@pytest.fixture
def lb_spec() -> LoadBalancerSpec:
    return LoadBalancerSpec(
        env=ENV, certificate=CertificateSpec(managed_domains=("model.example.com",))
    )


class TestGcpContract(ProviderContract):
    """The shared provider contract (tests/providers/contract.py)."""


# -- plumbing ------------------------------------------------------------------------------


def test_dispatcher_builds_the_gcp_provider(fake: FakeCompute, project: str):
    settings = ProviderSettings(
        name="gcp",
        region="us-central1",
        endpoint_url=fake.endpoint_url,
        options={"project": project},
    )
    assert isinstance(get_provider(settings), GcpProvider)


def test_unknown_option_is_refused():
    settings = ProviderSettings(name="gcp", region="us-central1", options={"projekt": "x"})
    with pytest.raises(ProvisionError) as caught:
        GcpProvider(settings)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert "projekt" in caught.value.message


def test_every_operation_is_waited_on_until_done(fake, provider, project):
    provider.ensure_fleet(fleet(2))
    mine = fake.operations(project)
    mutations = [
        c
        for c in fake.calls
        if c[1].startswith(f"projects/{project}/")
        and c[0].rsplit(".", 1)[1] in ("insert", "delete", "patch")
    ]
    assert len(mine) == len(mutations) == 5  # network, subnetwork, firewall, 2 instances
    assert all(op.resource["status"] == "DONE" for op in mine)
    assert all(op.polls >= fake.store.polls_to_done for op in mine)
    waits = {c[0] for c in fake.calls if c[0].endswith("Operations.wait")}
    assert waits == {
        "compute.globalOperations.wait",
        "compute.regionOperations.wait",
        "compute.zoneOperations.wait",
    }


# -- fleet mode ----------------------------------------------------------------------------


def test_fleet_creates_network_firewalls_and_labelled_instances(fake, provider, project):
    spec = fleet(
        2,
        network=NetworkSpec(cidr="10.50.0.0/16", ssh_cidr="203.0.113.0/24"),
        zones=("us-central1-c", "us-central1-f"),
    )
    result = provider.ensure_fleet(spec)

    networks = by_name(fake.resources(project, "networks"))
    assert list(networks) == [f"mlops-vm-{ENV}-net"]
    assert networks[f"mlops-vm-{ENV}-net"]["autoCreateSubnetworks"] is False
    (subnet,) = fake.resources(project, "subnetworks")
    assert subnet["ipCidrRange"] == "10.50.0.0/16"
    assert tail(subnet["network"]) == tail(networks[f"mlops-vm-{ENV}-net"]["selfLink"])
    assert "/regions/us-central1/" in subnet["selfLink"]

    firewalls = by_name(fake.resources(project, "firewalls"))
    lb_rule = firewalls[f"mlops-vm-{ENV}-allow-lb"]
    assert sorted(lb_rule["sourceRanges"]) == ["130.211.0.0/22", "35.191.0.0/16"]
    assert lb_rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["443"]}]
    ssh_rule = firewalls[f"mlops-vm-{ENV}-allow-ssh"]
    assert ssh_rule["sourceRanges"] == ["203.0.113.0/24"]
    assert ssh_rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["22"]}]
    assert lb_rule["targetTags"] == ssh_rule["targetTags"] == [f"mlops-vm-{ENV}"]

    instances = by_name(fake.resources(project, "instances"))
    assert sorted(i.name for i in result.instances) == sorted(instances)
    assert sorted(i["zone"].rsplit("/", 1)[1] for i in instances.values()) == [
        "us-central1-c",
        "us-central1-f",
    ]
    for instance in instances.values():
        assert instance["labels"] == {LABEL_ENV: ENV, LABEL_ROLE: "model"}
        assert instance["machineType"].endswith("/machineTypes/e2-small")
        assert instance["tags"]["items"] == [f"mlops-vm-{ENV}"]
        assert tail(instance["networkInterfaces"][0]["subnetwork"]) == tail(subnet["selfLink"])
        items = {i["key"]: i["value"] for i in instance["metadata"]["items"]}
        assert items["user-data"] == USER_DATA
        assert items["ssh-keys"] == "admin:ssh-ed25519 AAAAC3Nza test@example"
        assert instance["serviceAccounts"] == [
            {"email": "default", "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}
        ]
        boot = instance["disks"][0]
        assert boot["boot"] and boot["autoDelete"]
        assert boot["initializeParams"]["sourceImage"].endswith(
            "projects/debian-cloud/global/images/debian-12-bookworm-v20251111"
        )
    disks = fake.resources(project, "disks")
    assert sorted(d["name"] for d in disks) == sorted(instances)
    assert all(d["labels"] == {LABEL_ENV: ENV, LABEL_ROLE: "model"} for d in disks)
    assert all(
        i.status is InstanceStatus.RUNNING and i.private_ip and i.public_ip
        for i in result.instances
    )
    assert {i.ssh_user for i in result.instances} == {"admin"}
    assert result.network["network"] == networks[f"mlops-vm-{ENV}-net"]["selfLink"]


def test_closing_ssh_deletes_the_ssh_rule(fake, provider, project):
    provider.ensure_fleet(fleet(1, network=NetworkSpec(ssh_cidr="198.51.100.7/32")))
    result = provider.ensure_fleet(fleet(1))
    assert [str(c) for c in result.changes if c.kind == "firewall"] == [
        f"delete firewall mlops-vm-{ENV}-allow-ssh (SSH closed (NetworkSpec.ssh_cidr is None))"
    ]
    assert list(by_name(fake.resources(project, "firewalls"))) == [f"mlops-vm-{ENV}-allow-lb"]


def test_changed_service_port_updates_the_firewall(fake, provider, project):
    provider.ensure_fleet(fleet(1))
    result = provider.ensure_fleet(fleet(1, service_port=8443))
    assert [(c.action, c.kind) for c in result.changes] == [("update", "firewall")]
    rule = by_name(fake.resources(project, "firewalls"))[f"mlops-vm-{ENV}-allow-lb"]
    assert rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["8443"]}]


def test_existing_network_is_reused_and_survives_destroy(fake, provider, project):
    client = provider.compute_client()
    client.mutate(
        "seed",
        lambda s: s.networks().insert(
            project=project, body={"name": "shared", "autoCreateSubnetworks": False}
        ),
    )
    client.mutate(
        "seed",
        lambda s: s.subnetworks().insert(
            project=project,
            region="us-central1",
            body={
                "name": "shared-sub",
                "ipCidrRange": "10.9.0.0/24",
                "network": f"projects/{project}/global/networks/shared",
            },
        ),
    )
    spec = fleet(1, network=NetworkSpec(existing={"network": "shared", "subnetwork": "shared-sub"}))
    result = provider.ensure_fleet(spec)
    assert not [c for c in result.changes if c.kind in ("network", "subnetwork")]
    (instance,) = fake.resources(project, "instances")
    assert instance["networkInterfaces"][0]["subnetwork"].endswith("/subnetworks/shared-sub")
    rule = by_name(fake.resources(project, "firewalls"))[f"mlops-vm-{ENV}-allow-lb"]
    assert rule["network"].endswith("/networks/shared")

    provider.destroy(ENV)
    assert [n["name"] for n in fake.resources(project, "networks")] == ["shared"]
    assert [n["name"] for n in fake.resources(project, "subnetworks")] == ["shared-sub"]
    assert fake.resources(project, "firewalls") == []


def test_missing_existing_network_is_invalid_input(fake, provider, project):
    spec = fleet(1, network=NetworkSpec(existing={"network": "nope"}))
    with pytest.raises(ProvisionError) as caught:
        provider.ensure_fleet(spec)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert "nope" in caught.value.message
    assert fake.resources(project) == []


def test_a_stopped_instance_counts_and_is_reported_stopped(fake, provider, project):
    provider.ensure_fleet(fleet(2))
    fake.set_instance_status(fake.resources(project, "instances")[0]["selfLink"], "TERMINATED")
    statuses = {i.name: i.status for i in provider.list_instances(ENV)}
    assert sorted(statuses.values()) == sorted([InstanceStatus.STOPPED, InstanceStatus.RUNNING])
    assert provider.ensure_fleet(fleet(2)).changes == []


# -- load balancer -------------------------------------------------------------------------


def group_members(provider: GcpProvider, group_link: str) -> list[str]:
    """The group's instances, read through instanceGroups.listInstances."""
    parts = tail(group_link).split("/")
    items = provider.compute_client().list_post(
        "list members",
        "instanceGroups",
        "listInstances",
        "items",
        zone=parts[3],
        instanceGroup=parts[5],
        body={"instanceState": "ALL"},
    )
    return [tail(item["instance"]) for item in items]


def test_lb_chain_links_fleet_mode(fake, provider, project, lb_spec):
    result = provider.ensure_fleet(fleet(2))
    lb = provider.ensure_load_balancer(lb_spec, result)

    rules = by_name(fake.resources(project, "forwardingRules"))
    https_rule, http_rule = rules[f"mlops-vm-{ENV}-https"], rules[f"mlops-vm-{ENV}-http"]
    (address,) = fake.resources(project, "addresses")
    assert https_rule["IPAddress"] == http_rule["IPAddress"] == address["address"]
    assert address["status"] == "IN_USE"
    assert https_rule["portRange"] == "443-443" and http_rule["portRange"] == "80-80"
    assert https_rule["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    for labelled in (https_rule, http_rule, address):
        assert labelled["labels"] == {LABEL_ENV: ENV, LABEL_ROLE: "lb"}

    https_proxy = fake.resource(tail(https_rule["target"]))
    assert https_proxy["kind"] == "compute#targetHttpsProxy"
    (cert_link,) = https_proxy["sslCertificates"]
    cert = fake.resource(tail(cert_link))
    assert cert["type"] == "MANAGED"
    assert cert["managed"]["domains"] == ["model.example.com"]
    url_map = fake.resource(tail(https_proxy["urlMap"]))
    service = fake.resource(tail(url_map["defaultService"]))
    assert service["protocol"] == "HTTPS" and service["portName"] == "https"
    assert service["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    (check_link,) = service["healthChecks"]
    check = fake.resource(tail(check_link))
    assert check["type"] == "HTTPS"
    assert check["httpsHealthCheck"]["requestPath"] == "/healthz"

    members = set()
    for backend in service["backends"]:
        group = fake.resource(tail(backend["group"]))
        assert group["namedPorts"] == [{"name": "https", "port": 443}]
        members |= set(group_members(provider, backend["group"]))
    instances = fake.resources(project, "instances")
    assert members == {tail(i["selfLink"]) for i in instances}
    assert len(service["backends"]) == 2  # one unmanaged group per zone

    http_proxy = fake.resource(tail(http_rule["target"]))
    redirect = fake.resource(tail(http_proxy["urlMap"]))
    assert redirect["defaultUrlRedirect"]["httpsRedirect"] is True
    assert "defaultService" not in redirect

    assert lb.endpoint == "https://model.example.com"
    assert lb.resources["address"] == address["address"]
    assert sorted(t.instance_id for t in lb.targets) == sorted(i["id"] for i in instances)
    assert all(t.healthy for t in lb.targets)


def test_lb_follows_the_fleet(fake, provider, project, lb_spec):
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(fleet(3)))
    shrunk = provider.ensure_fleet(fleet(1))
    lb = provider.ensure_load_balancer(lb_spec, shrunk)
    (remaining,) = shrunk.instances
    service = by_name(fake.resources(project, "backendServices"))[f"mlops-vm-{ENV}-backend"]
    assert len(service["backends"]) == 1
    assert group_members(provider, service["backends"][0]["group"]) == [
        f"projects/{project}/zones/{remaining.zone}/instances/{remaining.name}"
    ]
    assert ("delete", "instance_group") in {(c.action, c.kind) for c in lb.changes}
    assert len(fake.resources(project, "instanceGroups")) == 1
    assert [t.instance_id for t in lb.targets] == [remaining.id]


def test_lb_self_managed_certificate_rotates(fake, provider, project, tmp_path):
    first = self_signed_certificate(tmp_path, "a.example.com")
    spec = LoadBalancerSpec(
        env=ENV, certificate=CertificateSpec(cert_file=first[0], key_file=first[1])
    )
    fleet_result = provider.ensure_fleet(fleet(1))
    lb = provider.ensure_load_balancer(spec, fleet_result)
    (old,) = fake.resources(project, "sslCertificates")
    assert old["type"] == "SELF_MANAGED"
    assert old["subjectAlternativeNames"] == ["a.example.com"]
    assert "privateKey" not in old
    assert lb.endpoint == f"https://{lb.resources['address']}"

    second = self_signed_certificate(tmp_path, "b.example.com")
    rotated = LoadBalancerSpec(
        env=ENV, certificate=CertificateSpec(cert_file=second[0], key_file=second[1])
    )
    again = provider.ensure_load_balancer(rotated, fleet_result)
    (new,) = fake.resources(project, "sslCertificates")
    assert new["name"] != old["name"]
    assert new["subjectAlternativeNames"] == ["b.example.com"]
    proxy = by_name(fake.resources(project, "targetHttpsProxies"))[f"mlops-vm-{ENV}-https-proxy"]
    assert [tail(link) for link in proxy["sslCertificates"]] == [tail(new["selfLink"])]
    assert [(c.action, c.kind) for c in again.changes] == [
        ("create", "ssl_certificate"),
        ("update", "target_https_proxy"),
        ("delete", "ssl_certificate"),
    ]


def test_lb_dry_run_plans_and_creates_nothing(fake, provider, project, lb_spec):
    fleet_result = provider.ensure_fleet(fleet(2))
    before = len(fake.resources(project))
    plan = provider.ensure_load_balancer(lb_spec, fleet_result, dry_run=True)
    kinds = {c.kind for c in plan.changes if c.action == "create"}
    assert kinds == {
        "instance_group",
        "health_check",
        "backend_service",
        "url_map",
        "ssl_certificate",
        "target_https_proxy",
        "global_address",
        "forwarding_rule",
        "target_http_proxy",
    }
    assert len(fake.resources(project)) == before
    assert plan.targets == []


def test_target_health_reports_unhealthy_instances(fake, provider, project, lb_spec):
    result = provider.ensure_fleet(fleet(2))
    provider.ensure_load_balancer(lb_spec, result)
    sick = result.instances[0]
    fake.set_health(sick.name, "UNHEALTHY")
    health = {t.instance_id: t for t in provider.target_health(lb_spec)}
    assert health[sick.id].healthy is False and health[sick.id].reason == "UNHEALTHY"
    assert health[result.instances[1].id].healthy is True
    with pytest.raises(ProvisionError) as caught:
        provider.wait_healthy(lb_spec, expected=2, timeout_s=0, poll_s=0)
    assert caught.value.code is ErrorCode.TIMEOUT
    assert provider.wait_healthy(lb_spec, expected=1, timeout_s=0, poll_s=0)


def test_lb_backend_port_must_match_the_service_port(fake, provider, project):
    result = provider.ensure_fleet(fleet(1, service_port=8443))
    spec = LoadBalancerSpec(
        env=ENV, backend_port=443, certificate=CertificateSpec(managed_domains=("x.example.com",))
    )
    with pytest.raises(ProvisionError) as caught:
        provider.ensure_load_balancer(spec, result)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert "service_port" in caught.value.hint
    assert fake.resources(project, "healthChecks") == []


# -- releases: one target out of the load balancer and back ------------------------------


def _released(provider, lb_spec, drain_seconds: int = 0):
    spec = replace(lb_spec, drain_seconds=drain_seconds)
    result = provider.ensure_fleet(fleet(2))
    provider.ensure_load_balancer(spec, result)
    return spec, result


def test_release_cycle_calls_compute_in_order(fake, provider, project, lb_spec):
    spec, result = _released(provider, lb_spec)
    target = result.instances[0]
    start = len(fake.calls)
    provider.deregister_target(spec, target)
    provider.register_target(spec, target)
    provider.wait_target_healthy(spec, target.id, timeout_s=5, poll_s=0.02)
    membership = {
        "compute.instanceGroups.removeInstances",
        "compute.instanceGroups.addInstances",
        "compute.instanceGroups.listInstances",
        "compute.backendServices.getHealth",
        "compute.zoneOperations.wait",
    }
    calls: list[str] = []
    for method, path in fake.calls[start:]:
        # An operation is waited on until DONE: one entry for its polls.
        if method in membership and f"/{project}/" in path and calls[-1:] != [method]:
            calls.append(method)
    assert calls[: calls.index("compute.backendServices.getHealth")] == [
        "compute.instanceGroups.listInstances",  # a member? then remove it
        "compute.instanceGroups.removeInstances",
        "compute.zoneOperations.wait",
        "compute.instanceGroups.listInstances",  # a member? then add it
        "compute.instanceGroups.addInstances",
        "compute.zoneOperations.wait",
    ]
    assert set(calls[calls.index("compute.backendServices.getHealth") :]) == {
        "compute.backendServices.getHealth"
    }


def test_deregister_waits_out_the_draining_time(fake, project, lb_spec):
    slept: list[float] = []
    settings = make_provider(fake, project).settings
    provider = GcpProvider(settings, credentials=AnonymousCredentials(), sleep=slept.append)
    spec, result = _released(provider, lb_spec, drain_seconds=7)
    slept.clear()
    provider.deregister_target(spec, result.instances[0])
    assert slept[-1] == 7  # after the removal's operation is done
    slept.clear()
    assert provider.deregister_target(spec, result.instances[0]) == []
    assert 7 not in slept


def test_deregister_keeps_the_draining_time_in_step(fake, provider, project, lb_spec):
    spec, result = _released(provider, lb_spec)
    longer = replace(spec, drain_seconds=1)
    changes = provider.deregister_target(longer, result.instances[0])
    assert [(c.action, c.kind) for c in changes] == [
        ("update", "backend_service"),
        ("delete", "target"),
    ]
    (service,) = fake.resources(project, "backendServices")
    assert service["connectionDraining"] == {"drainingTimeoutSec": 1}


def test_release_refuses_managed_instances_and_a_missing_lb(fake, provider, project, lb_spec):
    with pytest.raises(ProvisionError) as raised:
        provider.deregister_target(lb_spec, provider.ensure_fleet(fleet(1)).instances[0])
    assert raised.value.code is ErrorCode.NOT_FOUND
    provider.destroy(ENV)
    result = provider.ensure_fleet(scaling_group(1))
    provider.ensure_load_balancer(lb_spec, result)
    for call in (provider.deregister_target, provider.register_target):
        with pytest.raises(ProvisionError) as raised:
            call(lb_spec, result.instances[0])
        assert raised.value.code is ErrorCode.INVALID_INPUT
        assert "update policy" in raised.value.hint


# -- scaling-group mode --------------------------------------------------------------------


def _mig(fake: FakeCompute, project: str) -> dict[str, Any]:
    (mig,) = fake.resources(project, "instanceGroupManagers")
    return mig


def _instance_templates_of(fake: FakeCompute, project: str) -> set[str]:
    """The template each instance was created from (metadata `instance-template`)."""
    return {
        tail(next(i["value"] for i in inst["metadata"]["items"] if i["key"] == "instance-template"))
        for inst in fake.resources(project, "instances")
    }


def test_scaling_group_creates_template_mig_and_autoscaler(fake, provider, project):
    result = provider.ensure_fleet(scaling_group(2))
    (template,) = fake.resources(project, "instanceTemplates")
    properties = template["properties"]
    assert template["name"].startswith(f"mlops-vm-{ENV}-model-")
    assert properties["machineType"] == "e2-small"
    items = {i["key"]: i["value"] for i in properties["metadata"]["items"]}
    assert items["user-data"] == USER_DATA
    assert properties["labels"] == {LABEL_ENV: ENV, LABEL_ROLE: "model"}
    assert properties["disks"][0]["initializeParams"]["sourceImage"] == (
        "projects/debian-cloud/global/images/family/debian-12"
    )

    mig = _mig(fake, project)
    assert "/regions/us-central1/" in mig["selfLink"]
    assert [z["zone"].rsplit("/", 1)[1] for z in mig["distributionPolicy"]["zones"]] == [
        "us-central1-a",
        "us-central1-b",
    ]
    assert mig["namedPorts"] == [{"name": "https", "port": 443}]
    assert mig["updatePolicy"]["type"] == "PROACTIVE"
    assert mig["updatePolicy"]["maxUnavailable"] == {"fixed": 0}
    assert tail(mig["versions"][0]["instanceTemplate"]) == tail(template["selfLink"])
    assert mig["targetSize"] == 2

    (autoscaler,) = fake.resources(project, "autoscalers")
    assert tail(autoscaler["target"]) == tail(mig["selfLink"])
    policy = autoscaler["autoscalingPolicy"]
    assert (policy["minNumReplicas"], policy["maxNumReplicas"]) == (1, 4)
    assert policy["cpuUtilization"]["utilizationTarget"] == 0.6

    assert len(result.instances) == 2
    assert {i.zone for i in result.instances} == {"us-central1-a", "us-central1-b"}
    assert _instance_templates_of(fake, project) == {tail(template["selfLink"])}
    assert result.network["instance_group"] == mig["instanceGroup"]
    assert provider.ensure_fleet(scaling_group(2)).changes == []


def test_one_zone_makes_a_zonal_group(fake, provider, project):
    provider.ensure_fleet(scaling_group(1, zones=("us-central1-c",)))
    mig = _mig(fake, project)
    assert "/zones/us-central1-c/" in mig["selfLink"]
    (autoscaler,) = fake.resources(project, "autoscalers")
    assert "/zones/us-central1-c/" in autoscaler["selfLink"]


def test_user_data_change_rolls_out_a_new_template(fake, provider, project):
    first = provider.ensure_fleet(scaling_group(2))
    (old_template,) = fake.resources(project, "instanceTemplates")
    changed = InstanceSpec(machine_type="e2-small", user_data=USER_DATA + "# model v2\n")
    second = provider.ensure_fleet(scaling_group(2, instance=changed))

    # The old template stays: it is the previous release, which a rollback returns to.
    (new_template,) = [
        t for t in fake.resources(project, "instanceTemplates") if t["name"] != old_template["name"]
    ]
    assert old_template["name"] in {t["name"] for t in fake.resources(project, "instanceTemplates")}
    mig = _mig(fake, project)
    assert tail(mig["versions"][0]["instanceTemplate"]) == tail(new_template["selfLink"])
    assert mig["updatePolicy"]["type"] == "PROACTIVE"
    assert _instance_templates_of(fake, project) == {tail(new_template["selfLink"])}
    assert not {i.name for i in first.instances} & {i.name for i in second.instances}
    assert [(c.action, c.kind) for c in second.changes] == [
        ("create", "instance_template"),
        ("update", "instance_group_manager"),
    ]
    assert provider.ensure_fleet(scaling_group(2, instance=changed)).changes == []


def test_rolling_update_policy_never_drops_below_size(fake, provider, project):
    provider.ensure_fleet(scaling_group(2))
    policy = _mig(fake, project)["updatePolicy"]
    assert policy["type"] == "PROACTIVE"
    assert policy["minimalAction"] == "REPLACE"
    assert policy["maxUnavailable"] == {"fixed": 0}
    assert policy["maxSurge"] == {"fixed": 2}  # regional over two zones: one per zone
    assert policy["replacementMethod"] == "SUBSTITUTE"


def test_a_drifted_update_policy_is_put_back(fake, provider, project):
    provider.ensure_fleet(scaling_group(1, zones=("us-central1-c",)))
    mig = _mig(fake, project)
    with fake.store.lock:
        stored = fake.store.get(tail(mig["selfLink"]))
        stored["updatePolicy"] = {**stored["updatePolicy"], "maxUnavailable": {"fixed": 1}}
        stored["updatePolicy"].pop("replacementMethod")
    fixed = provider.ensure_fleet(scaling_group(1, zones=("us-central1-c",)))
    assert [c.detail for c in fixed.changes] == ["update policy: maxUnavailable, replacementMethod"]
    policy = _mig(fake, project)["updatePolicy"]
    assert policy["maxUnavailable"] == {"fixed": 0}
    assert policy["maxSurge"] == {"fixed": 1}  # zonal
    assert provider.ensure_fleet(scaling_group(1, zones=("us-central1-c",))).changes == []


@pytest.mark.parametrize(
    ("is_stable", "version_reached"), [(False, False), (True, False), (False, True)]
)
def test_old_templates_stay_until_the_rollout_is_over(fake, project, is_stable, version_reached):
    # Short waits only where the rollout is held (they must time out); the runs that wait
    # for a rollout that settles get the default, so a loaded machine cannot time them out.
    provider = make_provider(fake, project, stable_timeout_s=0.05)
    patient = make_provider(fake, project)
    patient.ensure_fleet(scaling_group(2))
    (old,) = fake.resources(project, "instanceTemplates")
    # v2 settles (v1 is kept as its previous release), then v3 is held mid-rollout: v1 is
    # the old template that waits for the rollout, v2 the one kept for a rollback.
    between = InstanceSpec(machine_type="e2-small", user_data=USER_DATA + "# model v1.5\n")
    patient.ensure_fleet(scaling_group(2, instance=between))
    changed = InstanceSpec(machine_type="e2-small", user_data=USER_DATA + "# model v2\n")
    mig_link = _mig(fake, project)["selfLink"]
    fake.hold_rollout(mig_link, is_stable=is_stable, version_reached=version_reached)
    with pytest.raises(ProvisionError) as raised:
        provider.ensure_fleet(scaling_group(2, instance=changed))
    assert raised.value.code is ErrorCode.TIMEOUT
    assert old["name"] in {t["name"] for t in fake.resources(project, "instanceTemplates")}
    # A later run while it still rolls: the old template is kept, and the run says so.
    later = provider.ensure_fleet(scaling_group(2, instance=changed))
    assert [(c.action, c.kind, c.name) for c in later.changes] == [
        ("update", "instance_template", old["name"])
    ]
    assert "kept until" in later.changes[0].detail
    assert len(fake.resources(project, "instanceTemplates")) == 3
    fake.release_rollout(mig_link)
    done = patient.ensure_fleet(scaling_group(2, instance=changed))
    assert [(c.action, c.kind, c.name) for c in done.changes] == [
        ("delete", "instance_template", old["name"])
    ]
    assert old["name"] not in {t["name"] for t in fake.resources(project, "instanceTemplates")}
    assert patient.ensure_fleet(scaling_group(2, instance=changed)).changes == []


def test_scaling_group_count_converges_without_autoscaling(fake, provider, project):
    fixed = AutoscalingSpec(target_cpu_percent=None, target_requests_per_instance=None)
    provider.ensure_fleet(scaling_group(2, autoscaling=fixed))
    assert fake.resources(project, "autoscalers") == []
    grown = provider.ensure_fleet(scaling_group(3, autoscaling=fixed))
    assert [c.detail for c in grown.changes] == ["resize 2 -> 3"]
    assert len(grown.instances) == 3 and _mig(fake, project)["targetSize"] == 3
    shrunk = provider.ensure_fleet(scaling_group(1, autoscaling=fixed))
    assert len(shrunk.instances) == 1 and _mig(fake, project)["targetSize"] == 1
    assert provider.ensure_fleet(scaling_group(1, autoscaling=fixed)).changes == []


def test_autoscaler_owns_the_size_and_its_bounds_converge(fake, provider, project):
    provider.ensure_fleet(scaling_group(2))
    assert provider.ensure_fleet(scaling_group(3)).changes == []  # the autoscaler decides
    narrower = provider.ensure_fleet(
        scaling_group(2, autoscaling=AutoscalingSpec(min_size=1, max_size=1))
    )
    assert [(c.action, c.kind) for c in narrower.changes] == [("update", "autoscaler")]
    (autoscaler,) = fake.resources(project, "autoscalers")
    assert autoscaler["autoscalingPolicy"]["maxNumReplicas"] == 1
    assert len(provider.list_instances(ENV)) == 1  # the (fake) autoscaler applied the bound
    dropped = provider.ensure_fleet(
        scaling_group(1, autoscaling=AutoscalingSpec(target_cpu_percent=None))
    )
    assert [(c.action, c.kind) for c in dropped.changes] == [("delete", "autoscaler")]


def test_lb_over_the_managed_group_scales_on_requests(fake, provider, project, lb_spec):
    spec = scaling_group(
        2,
        autoscaling=AutoscalingSpec(
            min_size=2, max_size=6, target_cpu_percent=None, target_requests_per_instance=600
        ),
    )
    result = provider.ensure_fleet(spec)
    lb = provider.ensure_load_balancer(lb_spec, result)
    mig = _mig(fake, project)
    (service,) = fake.resources(project, "backendServices")
    (backend,) = service["backends"]
    assert tail(backend["group"]) == tail(mig["instanceGroup"])
    assert backend["balancingMode"] == "RATE"
    assert backend["maxRatePerInstance"] == pytest.approx(600 / 60 / 0.8)
    (autoscaler,) = fake.resources(project, "autoscalers")
    assert autoscaler["autoscalingPolicy"]["loadBalancingUtilization"] == {"utilizationTarget": 0.8}
    assert "cpuUtilization" not in autoscaler["autoscalingPolicy"]
    assert len(lb.targets) == 2 and all(t.healthy for t in lb.targets)
    assert provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(spec)).changes == []

    removed = provider.destroy(ENV)
    assert {"autoscaler", "instance_group_manager", "instance_template", "backend_service"} <= {
        c.kind for c in removed
    }
    assert fake.resources(project) == []
    assert provider.destroy(ENV) == []


def test_scaling_group_dry_run_creates_nothing(fake, provider, project):
    plan = provider.ensure_fleet(scaling_group(2), dry_run=True)
    assert [c.kind for c in plan.changes] == [
        "network",
        "subnetwork",
        "firewall",
        "instance_template",
        "instance_group_manager",
        "autoscaler",
    ]
    assert fake.resources(project) == []
    mutations = [
        c
        for c in fake.calls
        if f"projects/{project}/" in c[1]
        and not c[0].rsplit(".", 1)[1].startswith(("get", "list", "aggregated"))
    ]
    assert mutations == []


# -- destroy -------------------------------------------------------------------------------


def test_destroy_dry_run_lists_and_keeps_everything(fake, provider, project, lb_spec):
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(fleet(2)))
    before = len(fake.resources(project))
    plan = provider.destroy(ENV, dry_run=True)
    assert len(fake.resources(project)) == before
    assert [c.kind for c in plan][:3] == [
        "forwarding_rule",
        "forwarding_rule",
        "target_https_proxy",
    ]
    assert plan[-1].kind == "network"
    done = provider.destroy(ENV)
    assert [str(c) for c in done] == [str(c) for c in plan]
    assert fake.resources(project) == []


def test_a_list_filter_that_lets_others_through_deletes_only_our_instances(
    fake, provider, project, monkeypatch
):
    provider.ensure_fleet(fleet(2))
    other = FleetSpec(env=f"{ENV}-eu", instance=InstanceSpec(machine_type="e2-small"), count=1)
    provider.ensure_fleet(other)
    # A filter the server gets wrong or ignores: every environment's instances come back.
    monkeypatch.setattr(gcp_instances, "label_filter", lambda env, role=None: "")
    provider.ensure_fleet(fleet(1))  # shrinking deletes only our surplus
    provider.destroy(ENV)
    assert {i["name"] for i in fake.resources(project, "instances")} == {
        f"mlops-vm-{ENV}-eu-model-0"
    }


def test_destroy_leaves_other_environments_alone(fake, provider, project, lb_spec):
    provider.ensure_fleet(fleet(1))
    other = FleetSpec(env=f"{ENV}-eu", instance=InstanceSpec(machine_type="e2-small"), count=1)
    provider.ensure_fleet(other)
    provider.destroy(ENV)
    remaining = {r["name"] for r in fake.resources(project)}
    assert f"mlops-vm-{ENV}-eu-net" in remaining
    assert [i.name for i in provider.list_instances(f"{ENV}-eu")] == [f"mlops-vm-{ENV}-eu-model-0"]
    assert not any(
        name.startswith(f"mlops-vm-{ENV}-") and not name.startswith(f"mlops-vm-{ENV}-eu-")
        for name in remaining
    )
