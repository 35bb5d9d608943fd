"""The Azure provider against the fake ARM (tests/fakes/azure): the provider contract, every
resource and the references between them, second runs, count changes, scale set model
updates, dry runs, destroy, and the error paths (SKU, quota, authorization, throttling)."""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlops_vm.provision import (
    AutoscalingSpec,
    CertificateSpec,
    ErrorCode,
    FleetSpec,
    InstanceSpec,
    InstanceStatus,
    LoadBalancerSpec,
    NetworkSpec,
    ProviderSettings,
    ProvisionError,
    get_provider,
)
from mlops_vm.provision.azure import AzureProvider, targets
from mlops_vm.provision.azure.drift import differences
from mlops_vm.provision.azure.names import Ids
from tests.fakes.azure import SUBSCRIPTION_ID, FakeArm, FakeBearerPolicy, StaticTokenCredential
from tests.providers.cloud_fixtures import self_signed_certificate
from tests.providers.contract import ProviderContract

LOCATION = "westeurope"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMlopsVmFakeKeyForTests0000000000000000 test"
SSH_CIDR = "198.51.100.0/24"
USER_DATA = "#cloud-config\nruncmd:\n  - [sh, -c, 'echo configure from roles']\n"
DEBIAN = {"publisher": "Debian", "offer": "debian-12", "sku": "12-gen2", "version": "latest"}
VM_TYPE = "Microsoft.Compute/virtualMachines"


pytestmark = pytest.mark.usefixtures("plain_http", "fresh_hooks")


def make_provider(arm: FakeArm, region: str = LOCATION, **options: object) -> AzureProvider:
    settings = ProviderSettings(
        name="azure",
        region=region,
        endpoint_url=arm.url,
        options={
            "subscription_id": SUBSCRIPTION_ID,
            "poll_interval_s": 0.02,
            "retry_base_delay_s": 0.01,
            **options,
        },
    )
    return AzureProvider(
        settings, credential=StaticTokenCredential(), authentication_policy=FakeBearerPolicy()
    )


@pytest.fixture
def env() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def provider(arm: FakeArm) -> AzureProvider:
    return make_provider(arm)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), "model.example.test")


def instance_spec(**changes: object) -> InstanceSpec:
    fields: dict = {
        "machine_type": "Standard_B2s",
        "ssh_user": "azureuser",
        "ssh_public_key": SSH_KEY,
        "user_data": USER_DATA,
        "tags": {"team": "ml"},
    }
    return InstanceSpec(**{**fields, **changes})


@pytest.fixture
def fleet_spec(env: str) -> Callable[..., FleetSpec]:
    def make(count: int, **changes: object) -> FleetSpec:
        fields: dict = {
            "env": env,
            "instance": instance_spec(),
            "count": count,
            "network": NetworkSpec(ssh_cidr=SSH_CIDR),
        }
        return FleetSpec(**{**fields, **changes})

    return make


@pytest.fixture
def scale_set_spec(fleet_spec: Callable[..., FleetSpec]) -> Callable[..., FleetSpec]:
    def make(count: int, **changes: object) -> FleetSpec:
        scaling = AutoscalingSpec(min_size=1, max_size=4, target_cpu_percent=60.0)
        return fleet_spec(count, mode="scaling_group", autoscaling=scaling, **changes)

    return make


@pytest.fixture
def lb_spec(env: str, certificate: tuple[str, str]) -> LoadBalancerSpec:
    cert_file, key_file = certificate
    return LoadBalancerSpec(
        env=env, certificate=CertificateSpec(cert_file=cert_file, key_file=key_file)
    )


def ids_for(env: str) -> Ids:
    return Ids(SUBSCRIPTION_ID, f"mlops-vm-{env}")


def by_name(items: list[dict]) -> dict[str, dict]:
    return {item["name"]: item for item in items}


def ref(item: dict, field: str) -> str:
    return item["properties"][field]["id"].lower()


def env_tags_ok(resource: dict, env: str, role: str) -> bool:
    tags = resource.get("tags") or {}
    return tags.get("mlops-vm-env") == env and tags.get("mlops-vm-role") == role


def leaf_sha256(cert_file: str) -> str:
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex()


class TestAzureContract(ProviderContract):
    """The shared contract (tests/providers/contract.py) against the fake ARM."""


# -- fleet mode ------------------------------------------------------------------------------


def test_dispatcher_routes_to_the_azure_provider() -> None:
    provider = get_provider(ProviderSettings(name="azure", region=LOCATION))
    assert isinstance(provider, AzureProvider)


def test_fleet_network_and_vms_are_wired_as_specified(provider, arm, fleet_spec, env):
    result = provider.ensure_fleet(fleet_spec(2))
    ids = ids_for(env)

    group = arm.resource(ids.group)
    assert group is not None and env_tags_ok(group, env, "network")
    vnet = arm.resource(ids.vnet(f"mlops-vm-{env}-vnet"))
    nsg = arm.resource(ids.nsg(f"mlops-vm-{env}-nsg"))
    assert vnet and nsg
    assert env_tags_ok(vnet, env, "network") and env_tags_ok(nsg, env, "network")
    subnets = by_name(vnet["properties"]["subnets"])
    assert set(subnets) == {"instances", "appgw"}
    assert subnets["instances"]["properties"]["addressPrefix"] == "10.42.0.0/24"
    gateway_prefix = subnets["appgw"]["properties"]["addressPrefix"]
    assert gateway_prefix == "10.42.1.0/24"
    # NSG -> instance subnet, and only that subnet (the gateway subnet stays NSG-free).
    assert ref(subnets["instances"], "networkSecurityGroup") == nsg["id"].lower()
    assert "networkSecurityGroup" not in subnets["appgw"]["properties"]
    assert [s["id"].lower() for s in nsg["properties"]["subnets"]] == [
        subnets["instances"]["id"].lower()
    ]
    rules = by_name(nsg["properties"]["securityRules"])
    web = rules["allow-gateway-to-service"]["properties"]
    assert web["sourceAddressPrefix"] == gateway_prefix
    assert sorted(web["destinationPortRanges"]) == ["443", "80"]
    assert web["access"] == "Allow" and web["direction"] == "Inbound"
    ssh = rules["allow-ssh"]["properties"]
    assert (ssh["sourceAddressPrefix"], ssh["destinationPortRange"]) == (SSH_CIDR, "22")

    vms = arm.resources(VM_TYPE, f"mlops-vm-{env}")
    assert sorted(vm["name"] for vm in vms) == [
        f"mlops-vm-{env}-model-0",
        f"mlops-vm-{env}-model-1",
    ]
    for vm in vms:
        props = vm["properties"]
        assert env_tags_ok(vm, env, "model") and vm["tags"]["team"] == "ml"
        assert props["hardwareProfile"]["vmSize"] == "Standard_B2s"
        assert props["storageProfile"]["imageReference"] == DEBIAN
        os_disk = props["storageProfile"]["osDisk"]
        assert os_disk["createOption"] == "FromImage"
        assert os_disk["managedDisk"]["storageAccountType"] == "StandardSSD_LRS"
        assert os_disk["diskSizeGB"] == 30  # the image's disk: 20 GiB would be refused
        linux = props["osProfile"]["linuxConfiguration"]
        assert linux["disablePasswordAuthentication"] is True
        assert linux["ssh"]["publicKeys"][0]["keyData"] == SSH_KEY
        assert props["osProfile"]["adminUsername"] == "azureuser"
        sent = arm.stored(vm["id"])
        assert sent is not None
        assert base64.b64decode(sent["properties"]["osProfile"]["customData"]).decode() == USER_DATA
        disk = arm.resource(os_disk["managedDisk"]["id"])
        assert disk is not None and env_tags_ok(disk, env, "model")
        nic = arm.resource(props["networkProfile"]["networkInterfaces"][0]["id"])
        assert nic is not None and env_tags_ok(nic, env, "model")
        (ip_config,) = nic["properties"]["ipConfigurations"]
        assert ref(ip_config, "subnet") == subnets["instances"]["id"].lower()
        assert "publicIPAddress" not in ip_config["properties"]
    instances = {i.id: i for i in result.instances}
    assert set(instances) == {vm["id"] for vm in vms}
    assert all(
        i.public_ip is None and i.private_ip.startswith("10.42.0.") for i in instances.values()
    )
    assert all(i.ssh_user == "azureuser" and i.connection == "ssh" for i in instances.values())
    assert result.network["gateway_subnet_id"].lower() == subnets["appgw"]["id"].lower()


def test_ssh_stays_closed_without_ssh_cidr(provider, arm, fleet_spec, env):
    provider.ensure_fleet(fleet_spec(1, network=NetworkSpec()))
    nsg = arm.resource(ids_for(env).nsg(f"mlops-vm-{env}-nsg"))
    assert nsg is not None
    assert [r["name"] for r in nsg["properties"]["securityRules"]] == ["allow-gateway-to-service"]


def test_gateway_parts_reference_each_other_and_the_fleet_nics(
    provider, arm, fleet_spec, lb_spec, certificate, env
):
    fleet = provider.ensure_fleet(fleet_spec(2))
    result = provider.ensure_load_balancer(lb_spec, fleet)
    ids = ids_for(env)
    gateway = arm.resource(ids.gateway(f"mlops-vm-{env}-appgw"))
    public_ip = arm.resource(ids.public_ip(f"mlops-vm-{env}-appgw-ip"))
    assert gateway is not None and public_ip is not None
    assert env_tags_ok(gateway, env, "lb") and env_tags_ok(public_ip, env, "lb")
    assert public_ip["sku"]["name"] == "Standard"
    assert public_ip["properties"]["publicIPAllocationMethod"] == "Static"
    assert result.endpoint == f"https://{public_ip['properties']['ipAddress']}"

    props = gateway["properties"]
    gateway_id = gateway["id"].lower()
    assert props["sku"]["name"] == props["sku"]["tier"] == "Standard_v2"
    (gateway_ip,) = props["gatewayIPConfigurations"]
    assert ref(gateway_ip, "subnet") == fleet.network["gateway_subnet_id"].lower()
    (frontend,) = props["frontendIPConfigurations"]
    assert ref(frontend, "publicIPAddress") == public_ip["id"].lower()
    ports = {p["id"].lower(): p["properties"]["port"] for p in props["frontendPorts"]}
    certs = {c["id"].lower() for c in props["sslCertificates"]}
    listeners = by_name(props["httpListeners"])
    https, http = listeners["https"], listeners["http"]
    assert https["properties"]["protocol"] == "Https"
    assert ports[ref(https, "frontendPort")] == 443
    assert ref(https, "sslCertificate") in certs
    assert ref(https, "frontendIPConfiguration") == frontend["id"].lower()
    assert http["properties"]["protocol"] == "Http" and ports[ref(http, "frontendPort")] == 80
    assert "sslCertificate" not in http["properties"]
    # The certificate the gateway holds is the PEM pair turned into a PFX.
    parsed = arm.certificate(gateway["id"], "default")
    assert parsed is not None and parsed["sha256"] == leaf_sha256(certificate[0])

    (redirect,) = props["redirectConfigurations"]
    assert ref(redirect, "targetListener") == https["id"].lower()
    assert redirect["properties"]["redirectType"] == "Permanent"
    (pool,) = props["backendAddressPools"]
    (settings,) = props["backendHttpSettingsCollection"]
    (probe,) = props["probes"]
    rules = by_name(props["requestRoutingRules"])
    forward, redirecting = rules["https"]["properties"], rules["http-redirect"]["properties"]
    assert forward["httpListener"]["id"].lower() == https["id"].lower()
    assert forward["backendAddressPool"]["id"].lower() == pool["id"].lower()
    assert forward["backendHttpSettings"]["id"].lower() == settings["id"].lower()
    assert redirecting["httpListener"]["id"].lower() == http["id"].lower()
    assert redirecting["redirectConfiguration"]["id"].lower() == redirect["id"].lower()
    assert forward["priority"] != redirecting["priority"]
    assert probe["properties"]["path"] == "/healthz"
    assert probe["properties"]["protocol"] == "Https"
    assert settings["properties"]["protocol"] == "Https"
    assert settings["properties"]["port"] == lb_spec.backend_port
    assert ref(settings, "probe") == probe["id"].lower()
    assert settings["properties"]["connectionDraining"]["drainTimeoutInSec"] == 30
    for child in (pool, settings, probe, redirect, https, http):
        assert child["id"].lower().startswith(gateway_id + "/")

    # Backend pool -> the fleet VMs' NIC IP configurations, and nothing else.
    vms = arm.resources(VM_TYPE, f"mlops-vm-{env}")
    nic_configs = set()
    for vm in vms:
        nic = arm.resource(vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"])
        assert nic is not None
        nic_configs.add(nic["properties"]["ipConfigurations"][0]["id"].lower())
    members = {m["id"].lower() for m in pool["properties"]["backendIPConfigurations"]}
    assert members == nic_configs
    assert sorted(t.instance_id for t in result.targets) == sorted(i.id for i in fleet.instances)
    assert all(t.healthy for t in result.targets)


def test_second_runs_change_and_write_nothing(provider, arm, fleet_spec, lb_spec):
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(fleet_spec(2)))
    arm.clear_requests()
    fleet = provider.ensure_fleet(fleet_spec(2))
    again = provider.ensure_load_balancer(lb_spec, fleet)
    assert fleet.changes == [] and again.changes == []
    assert arm.writes() == []


def test_a_region_given_by_display_name_converges_once(arm, fleet_spec, lb_spec):
    """ARM answers "westeurope" to a PUT of "West Europe": a second run must not see drift."""
    provider = make_provider(arm, region="West Europe")
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(fleet_spec(1)))
    arm.clear_requests()
    fleet = provider.ensure_fleet(fleet_spec(1))
    again = provider.ensure_load_balancer(lb_spec, fleet)
    assert fleet.changes == [] and again.changes == []
    assert arm.writes() == []


@pytest.mark.parametrize(
    ("desired", "actual"),
    [
        ({"location": "West Europe"}, {"location": "westeurope"}),
        ({"properties": {"urlPathMaps": []}}, {"properties": {}}),  # ARM may leave [] out
        ({"properties": {"urlPathMaps": []}}, {"properties": {"urlPathMaps": []}}),
        (
            {"id": "/subscriptions/S/resourceGroups/RG"},
            {"id": "/subscriptions/S/resourcegroups/rg"},
        ),
    ],
)
def test_what_arm_spells_its_own_way_is_no_drift(desired, actual):
    assert differences(desired, actual) == []
    assert differences({"location": "northeurope"}, {"location": "westeurope"}) == ["location"]


def test_the_gateway_as_arm_shows_it_is_no_drift(provider, arm, fleet_spec, lb_spec, env):
    """ARM shows [] for every list field a PUT left out (the fake does too): not a change."""
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(fleet_spec(1)))
    group = f"mlops-vm-{env}"
    gateway_id = Ids(SUBSCRIPTION_ID, group).gateway(f"{group}-appgw")
    shown = arm.resource(gateway_id)["properties"]
    assert shown["urlPathMaps"] == [] and shown["rewriteRuleSets"] == []
    assert all(listener["properties"]["hostNames"] == [] for listener in shown["httpListeners"])
    arm.clear_requests()
    assert (
        provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(fleet_spec(1))).changes == []
    )
    assert arm.writes() == []


def test_target_health_reports_a_failing_backend(provider, arm, fleet_spec, lb_spec):
    fleet = provider.ensure_fleet(fleet_spec(2))
    provider.ensure_load_balancer(lb_spec, fleet)
    sick = fleet.instances[1]
    arm.set_backend_health(sick.private_ip, "Down")
    health = {t.instance_id: t for t in provider.target_health(lb_spec)}
    assert health[fleet.instances[0].id].healthy
    assert not health[sick.id].healthy and "502" in health[sick.id].reason
    with pytest.raises(ProvisionError) as caught:
        provider.wait_healthy(lb_spec, expected=2, timeout_s=0, poll_s=0)
    assert caught.value.code == ErrorCode.TIMEOUT


def test_shrink_deletes_vm_nic_and_disk_and_growth_joins_the_pool(
    provider, arm, fleet_spec, lb_spec, env
):
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(fleet_spec(3)))
    arm.clear_requests()
    shrunk = provider.ensure_fleet(fleet_spec(1))
    assert {(c.action, c.kind) for c in shrunk.changes} == {
        ("delete", "instance"),
        ("delete", "network_interface"),
        ("delete", "disk"),
    }
    group = f"mlops-vm-{env}"
    assert [vm["name"] for vm in arm.resources(VM_TYPE, group)] == [f"mlops-vm-{env}-model-0"]
    assert len(arm.resources("Microsoft.Network/networkInterfaces", group)) == 1
    assert len(arm.resources("Microsoft.Compute/disks", group)) == 1
    deletes = [r.path.split("/providers/")[1].split("/")[1] for r in arm.writes()]
    # Each VM goes before its NIC, each NIC before the disks.
    assert deletes == ["virtualMachines"] * 2 + ["networkInterfaces"] * 2 + ["disks"] * 2

    grown = provider.ensure_fleet(fleet_spec(2))
    lb = provider.ensure_load_balancer(lb_spec, grown)
    assert [str(c) for c in lb.changes] == [
        f"update target mlops-vm-{env}-model-1 (register in backend pool)"
    ]
    gateway = arm.resource(ids_for(env).gateway(f"mlops-vm-{env}-appgw"))
    assert gateway is not None
    members = gateway["properties"]["backendAddressPools"][0]["properties"]
    assert len(members["backendIPConfigurations"]) == 2


def test_dry_run_of_growth_plans_only_the_new_vm(provider, arm, fleet_spec, env):
    provider.ensure_fleet(fleet_spec(1))
    arm.clear_requests()
    plan = provider.ensure_fleet(fleet_spec(2), dry_run=True)
    assert [str(c) for c in plan.changes if c.kind == "instance"] == [
        f"create instance mlops-vm-{env}-model-1 (Standard_B2s, Debian 12 (default))"
    ]
    assert arm.writes() == []


def test_load_balancer_dry_run_plans_and_creates_nothing(provider, arm, fleet_spec, lb_spec, env):
    fleet = provider.ensure_fleet(fleet_spec(2))
    arm.clear_requests()
    plan = provider.ensure_load_balancer(lb_spec, fleet, dry_run=True)
    assert [(c.action, c.kind) for c in plan.changes] == [
        ("create", "public_ip"),
        ("create", "application_gateway"),
        ("update", "target"),
        ("update", "target"),
    ]
    assert arm.writes() == []
    assert arm.resources("Microsoft.Network/applicationGateways", f"mlops-vm-{env}") == []


# -- releases: one VM out of the backend pool and back ---------------------------------------


def _released(provider, fleet_spec, lb_spec, drain_seconds: int = 1):
    spec = replace(lb_spec, drain_seconds=drain_seconds)
    fleet = provider.ensure_fleet(fleet_spec(2))
    provider.ensure_load_balancer(spec, fleet)
    return spec, fleet


def test_release_cycle_calls_arm_in_order(provider, arm, fleet_spec, lb_spec, monkeypatch):
    monkeypatch.setattr(targets, "sleep", lambda seconds: None)
    spec, fleet = _released(provider, fleet_spec, lb_spec)
    target = fleet.instances[0]
    arm.clear_requests()
    provider.deregister_target(spec, target)
    provider.register_target(spec, target)
    provider.wait_target_healthy(spec, target.id, timeout_s=5, poll_s=0.02)
    steps = []
    for request in arm.requests:
        path = request.path.lower()
        if "/networkinterfaces/" in path and request.method == "PUT":
            steps.append("PUT nic")
        elif "/operations/" in path or "operationresults" in path or "asyncoperations" in path:
            steps.append("poll")
        elif path.endswith("/backendhealth"):
            steps.append("POST backendHealth")
    collapsed = [s for i, s in enumerate(steps) if i == 0 or steps[i - 1] != s]
    assert collapsed[:4] == ["PUT nic", "poll", "PUT nic", "poll"]
    assert collapsed[4] == "POST backendHealth"


def test_deregister_takes_the_nic_out_of_the_pool_and_waits_the_drain(
    provider, arm, fleet_spec, lb_spec, monkeypatch
):
    slept: list[float] = []
    monkeypatch.setattr(targets, "sleep", slept.append)
    spec, fleet = _released(provider, fleet_spec, lb_spec, drain_seconds=9)
    target = fleet.instances[0]
    provider.deregister_target(spec, target)
    assert slept == [9]
    nics = arm.resources("Microsoft.Network/networkInterfaces", f"mlops-vm-{spec.env}")
    pools = {
        (n["properties"].get("virtualMachine") or {}).get("id", "").lower(): n["properties"][
            "ipConfigurations"
        ][0]["properties"].get("applicationGatewayBackendAddressPools", [])
        for n in nics
    }
    assert pools[target.id.lower()] == []
    assert len(pools[fleet.instances[1].id.lower()]) == 1
    assert provider.deregister_target(spec, target) == []
    assert slept == [9]  # not registered: no wait


def test_deregister_keeps_the_gateway_draining_in_step(provider, arm, fleet_spec, lb_spec):
    spec, fleet = _released(provider, fleet_spec, lb_spec, drain_seconds=0)
    longer = replace(spec, drain_seconds=1)
    changes = provider.deregister_target(longer, fleet.instances[0])
    assert [(c.action, c.kind) for c in changes] == [
        ("update", "application_gateway"),
        ("delete", "target"),
    ]
    (gateway,) = arm.resources("Microsoft.Network/applicationGateways", f"mlops-vm-{spec.env}")
    (settings,) = gateway["properties"]["backendHttpSettingsCollection"]
    assert settings["properties"]["connectionDraining"] == {
        "enabled": True,
        "drainTimeoutInSec": 1,
    }
    # The GET-modify-PUT kept the rest of the gateway (its certificate too) as the LB step
    # wants it: that step only brings the deregistered VM back.
    again = provider.ensure_load_balancer(longer, provider.ensure_fleet(fleet_spec(2)))
    assert [(c.kind, c.detail) for c in again.changes] == [("target", "register in backend pool")]


def test_release_refuses_scale_set_instances_and_a_missing_gateway(
    provider, fleet_spec, scale_set_spec, lb_spec
):
    with pytest.raises(ProvisionError) as raised:
        provider.deregister_target(lb_spec, provider.ensure_fleet(fleet_spec(1)).instances[0])
    assert raised.value.code is ErrorCode.NOT_FOUND
    member = provider.ensure_fleet(scale_set_spec(1)).instances[0]
    for call in (provider.deregister_target, provider.register_target):
        with pytest.raises(ProvisionError) as raised:
            call(lb_spec, member)
        assert raised.value.code is ErrorCode.INVALID_INPUT
        assert "Rolling" in raised.value.hint


# -- scaling-group mode ----------------------------------------------------------------------


def scale_set_of(arm: FakeArm, env: str) -> dict:
    found = arm.resource(ids_for(env).scale_set(f"mlops-vm-{env}-model"))
    assert found is not None
    return found


def test_scale_set_model_autoscale_and_gateway_pool(provider, arm, scale_set_spec, lb_spec, env):
    fleet = provider.ensure_fleet(scale_set_spec(2))
    scale_set = scale_set_of(arm, env)
    props = scale_set["properties"]
    profile = props["virtualMachineProfile"]
    assert scale_set["sku"] == {"name": "Standard_B2s", "tier": "Standard", "capacity": 2}
    assert env_tags_ok(scale_set, env, "model")
    assert props["upgradePolicy"]["mode"] == "Rolling"
    assert props["upgradePolicy"]["rollingUpgradePolicy"]["maxSurge"] is True
    assert props["overprovision"] is False
    assert profile["storageProfile"]["imageReference"] == DEBIAN
    assert profile["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] is True
    sent = arm.stored(scale_set["id"])
    assert sent is not None
    custom = sent["properties"]["virtualMachineProfile"]["osProfile"]["customData"]
    assert base64.b64decode(custom).decode() == USER_DATA
    (health,) = profile["extensionProfile"]["extensions"]
    assert health["properties"]["type"] == "ApplicationHealthLinux"
    assert health["properties"]["settings"]["requestPath"] == "/healthz"
    (nic_config,) = profile["networkProfile"]["networkInterfaceConfigurations"]
    ip_config = nic_config["properties"]["ipConfigurations"][0]["properties"]
    assert ip_config["subnet"]["id"].lower() == fleet.network["instance_subnet_id"].lower()
    assert [i.id for i in fleet.instances] == [
        f"{scale_set['id']}/virtualMachines/0",
        f"{scale_set['id']}/virtualMachines/1",
    ]
    assert all(i.private_ip and i.status == InstanceStatus.RUNNING for i in fleet.instances)

    (autoscale,) = arm.resources("Microsoft.Insights/autoscaleSettings", f"mlops-vm-{env}")
    settings = autoscale["properties"]
    assert settings["targetResourceUri"].lower() == scale_set["id"].lower()
    assert env_tags_ok(autoscale, env, "model") and settings["enabled"] is True
    (default,) = settings["profiles"]
    assert default["capacity"] == {"minimum": "1", "maximum": "4", "default": "2"}
    rules = {r["scaleAction"]["direction"]: r for r in default["rules"]}
    out, scale_in = rules["Increase"]["metricTrigger"], rules["Decrease"]["metricTrigger"]
    assert out["metricName"] == scale_in["metricName"] == "Percentage CPU"
    assert out["metricResourceUri"].lower() == scale_set["id"].lower()
    assert (out["operator"], out["threshold"]) == ("GreaterThan", 60.0)
    assert scale_in["operator"] == "LessThan" and scale_in["threshold"] < 60.0

    lb = provider.ensure_load_balancer(lb_spec, fleet)
    gateway = arm.resource(ids_for(env).gateway(f"mlops-vm-{env}-appgw"))
    assert gateway is not None
    (pool,) = gateway["properties"]["backendAddressPools"]
    model_ip_config = scale_set_of(arm, env)["properties"]["virtualMachineProfile"][
        "networkProfile"
    ]["networkInterfaceConfigurations"][0]["properties"]["ipConfigurations"][0]
    assert [
        p["id"].lower()
        for p in model_ip_config["properties"]["applicationGatewayBackendAddressPools"]
    ] == [pool["id"].lower()]
    vms = arm.scale_set_instances(scale_set["id"])
    assert all(vm["properties"]["latestModelApplied"] for vm in vms)
    instance_configs = {
        c["id"].lower()
        for nic in arm.scale_set_nics(scale_set["id"])
        for c in nic["properties"]["ipConfigurations"]
    }
    members = {m["id"].lower() for m in pool["properties"]["backendIPConfigurations"]}
    assert members == instance_configs and len(members) == 2
    assert sorted(t.instance_id for t in lb.targets) == sorted(i.id for i in fleet.instances)

    arm.clear_requests()
    assert provider.ensure_fleet(scale_set_spec(2)).changes == []
    assert provider.ensure_load_balancer(lb_spec, fleet).changes == []
    assert arm.writes() == []


def test_image_change_updates_the_model_and_rolls_the_instances(
    provider, arm, scale_set_spec, lb_spec, env
):
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(scale_set_spec(2)))
    new_image = "Debian:debian-12:12-gen2:0.20250610.2137"
    arm.clear_requests()
    result = provider.ensure_fleet(scale_set_spec(2, instance=instance_spec(image=new_image)))
    assert [c.detail for c in result.changes] == [
        "new image",
        "roll 2 instance(s) to the latest model",
    ]
    expected = dict(
        zip(("publisher", "offer", "sku", "version"), new_image.split(":"), strict=True)
    )
    scale_set = scale_set_of(arm, env)
    profile = scale_set["properties"]["virtualMachineProfile"]
    assert profile["storageProfile"]["imageReference"] == expected
    for vm in arm.scale_set_instances(scale_set["id"]):
        assert vm["properties"]["storageProfile"]["imageReference"] == expected
        assert vm["properties"]["latestModelApplied"]
    assert [r.path.rsplit("/", 1)[1] for r in arm.writes() if r.method == "POST"] == [
        "manualupgrade"
    ]
    # The fleet run kept the load balancer's pool in the model.
    pools = profile["networkProfile"]["networkInterfaceConfigurations"][0]["properties"][
        "ipConfigurations"
    ][0]["properties"]["applicationGatewayBackendAddressPools"]
    assert len(pools) == 1
    assert (
        provider.ensure_fleet(scale_set_spec(2, instance=instance_spec(image=new_image))).changes
        == []
    )


NEW_IMAGE = "Debian:debian-12:12-gen2:0.20250610.2137"


def test_scale_set_rolls_in_small_health_gated_batches(provider, arm, scale_set_spec, env):
    provider.ensure_fleet(scale_set_spec(2))
    policy = scale_set_of(arm, env)["properties"]["upgradePolicy"]
    assert policy["mode"] == "Rolling"
    rolling = policy["rollingUpgradePolicy"]
    assert rolling["maxBatchInstancePercent"] == 20
    assert rolling["maxUnhealthyInstancePercent"] == 20
    assert rolling["maxUnhealthyUpgradedInstancePercent"] == 0
    assert rolling["pauseTimeBetweenBatches"] == "PT0S"
    assert rolling["prioritizeUnhealthyInstances"] is True
    assert rolling["maxSurge"] is True
    extensions = scale_set_of(arm, env)["properties"]["virtualMachineProfile"]["extensionProfile"][
        "extensions"
    ]
    assert [e["properties"]["type"] for e in extensions] == ["ApplicationHealthLinux"]


def test_a_completed_rolling_upgrade_is_read_and_accepted(provider, arm, scale_set_spec):
    provider.ensure_fleet(scale_set_spec(2))
    arm.clear_requests()
    changed = scale_set_spec(2, instance=instance_spec(image=NEW_IMAGE))
    assert provider.ensure_fleet(changed).changes
    reads = [r.path for r in arm.requests if r.path.lower().endswith("/rollingupgrades/latest")]
    assert len(reads) == 1
    assert provider.ensure_fleet(changed).changes == []


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            "AllocationFailed",
            "Allocation failed. We do not have sufficient capacity for the requested VM size.",
            ErrorCode.CAPACITY,
        ),
        (
            "OperationNotAllowed",
            "Operation could not be completed as it results in exceeding approved "
            "standardBSFamily Cores quota.",
            ErrorCode.QUOTA,
        ),
        (
            "ImageNotFound",
            "The platform image 'Debian:debian-99' is not available.",
            ErrorCode.INVALID_INPUT,
        ),
    ],
)
def test_scale_set_instances_that_cannot_be_provisioned_fail_with_the_reason(
    provider, arm, scale_set_spec, env, code, message, expected
):
    group = f"mlops-vm-{env}"
    arm.fail_scale_set_instances(
        Ids(SUBSCRIPTION_ID, group).scale_set(f"{group}-model"), code, message
    )
    error = raised(lambda: provider.ensure_fleet(scale_set_spec(2)))
    assert error.code == expected
    assert code in error.message and message in error.message


@pytest.mark.parametrize(
    ("code", "expected"), [("Faulted", ErrorCode.INTERNAL), ("Cancelled", ErrorCode.CONFLICT)]
)
def test_a_failed_rolling_upgrade_is_an_error_with_its_reason(
    provider, arm, scale_set_spec, env, code, expected
):
    provider.ensure_fleet(scale_set_spec(2))
    scale_set = scale_set_of(arm, env)
    reason = "Application Health extension reports Unhealthy on /healthz"
    arm.fault_rolling_upgrade(scale_set["id"], code, reason)
    with pytest.raises(ProvisionError) as raised:
        provider.ensure_fleet(scale_set_spec(2, instance=instance_spec(image=NEW_IMAGE)))
    assert raised.value.code is expected
    assert f"{code.lower()}: {reason}" in raised.value.message
    assert "0 upgraded, 2 failed" in raised.value.message
    assert "/healthz" in raised.value.hint
    # The instances stayed on the old model: the next run tries again and, healthy, passes.
    assert not any(
        vm["properties"]["latestModelApplied"] for vm in arm.scale_set_instances(scale_set["id"])
    )
    again = provider.ensure_fleet(scale_set_spec(2, instance=instance_spec(image=NEW_IMAGE)))
    assert [c.detail for c in again.changes] == ["roll 2 instance(s) to the latest model"]


def test_user_data_change_is_a_new_model(provider, arm, scale_set_spec, env):
    provider.ensure_fleet(scale_set_spec(2))
    new_user_data = USER_DATA + "write_files: []\n"
    result = provider.ensure_fleet(
        scale_set_spec(2, instance=instance_spec(user_data=new_user_data))
    )
    assert [c.detail for c in result.changes] == [
        "new user data",
        "roll 2 instance(s) to the latest model",
    ]
    sent = arm.stored(scale_set_of(arm, env)["id"])
    assert sent is not None
    custom = sent["properties"]["virtualMachineProfile"]["osProfile"]["customData"]
    assert base64.b64decode(custom).decode() == new_user_data


def test_scale_set_count_converges_but_autoscale_owns_the_size_between_runs(
    provider, arm, scale_set_spec, env
):
    provider.ensure_fleet(scale_set_spec(2))
    grown = provider.ensure_fleet(scale_set_spec(3))
    assert "capacity 2 -> 3" in grown.changes[0].detail
    assert len(grown.instances) == 3
    (autoscale,) = arm.resources("Microsoft.Insights/autoscaleSettings", f"mlops-vm-{env}")
    assert autoscale["properties"]["profiles"][0]["capacity"]["default"] == "3"
    # Autoscale scales out to 4; the next run with the same count leaves that alone.
    arm_client = provider.arm.compute.virtual_machine_scale_sets
    arm_client.begin_update(
        f"mlops-vm-{env}", f"mlops-vm-{env}-model", {"sku": {"capacity": 4}}
    ).result()
    again = provider.ensure_fleet(scale_set_spec(3))
    assert again.changes == [] and len(again.instances) == 4
    shrunk = provider.ensure_fleet(scale_set_spec(1))
    assert "capacity 4 -> 1" in shrunk.changes[0].detail
    assert len(provider.list_instances(scale_set_spec(1).env)) == 1


def test_scale_set_dry_run_plans_and_creates_nothing(provider, arm, scale_set_spec, env):
    arm.clear_requests()
    plan = provider.ensure_fleet(scale_set_spec(2), dry_run=True)
    assert [c.kind for c in plan.changes if c.action == "create"] == [
        "resource_group",
        "network_security_group",
        "virtual_network",
        "scale_set",
        "autoscale_setting",
    ]
    assert arm.writes() == []
    assert arm.resource(ids_for(env).group) is None


# -- destroy ---------------------------------------------------------------------------------


def test_destroy_of_an_owned_group_deletes_the_group(provider, arm, fleet_spec, env):
    provider.ensure_fleet(fleet_spec(1))
    planned = provider.destroy(env, dry_run=True)
    assert arm.resource(ids_for(env).group) is not None
    removed = provider.destroy(env)
    assert [str(c) for c in removed] == [str(c) for c in planned]
    assert removed[-1].kind == "resource_group"
    assert arm.resource(ids_for(env).group) is None
    assert arm.resources(resource_group=f"mlops-vm-{env}") == []


def test_destroy_in_a_reused_group_goes_in_dependency_order_and_spares_others(
    provider, arm, fleet_spec, lb_spec, env
):
    shared = f"shared-{env}"
    arm.create_resource_group(SUBSCRIPTION_ID, shared, LOCATION)
    bystander = provider.arm.network.network_security_groups.begin_create_or_update(
        shared, "someone-elses-nsg", {"location": LOCATION}
    ).result()
    spec = fleet_spec(
        2, network=NetworkSpec(ssh_cidr=SSH_CIDR, existing={"resource_group": shared})
    )
    provider.validate(spec, lb_spec)
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(spec))
    assert provider.list_instances(env) != []
    arm.clear_requests()

    removed = provider.destroy(env)
    kinds = [c.kind for c in removed]
    assert kinds == ["instance"] * 2 + ["network_interface"] * 2 + ["disk"] * 2 + [
        "application_gateway",
        "public_ip",
        "virtual_network",
        "network_security_group",
    ]
    deleted_types = [r.path.split("/providers/")[1].split("/")[1] for r in arm.writes()]
    assert deleted_types == [
        *["virtualMachines"] * 2,
        *["networkInterfaces"] * 2,
        *["disks"] * 2,
        "applicationGateways",
        "publicIPAddresses",
        "virtualNetworks",
        "networkSecurityGroups",
    ]
    assert arm.resource(f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{shared}") is not None
    assert [r["id"] for r in arm.resources(resource_group=shared)] == [bystander.id]
    assert provider.list_instances(env) == []
    assert provider.destroy(env) == []


def test_destroy_removes_a_scale_set_environment(provider, arm, scale_set_spec, lb_spec, env):
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(scale_set_spec(2)))
    removed = provider.destroy(env)
    assert {c.kind for c in removed} >= {"scale_set", "autoscale_setting", "application_gateway"}
    assert arm.resources(resource_group=f"mlops-vm-{env}") == []
    assert provider.destroy(env) == []


# -- validation and errors -------------------------------------------------------------------


def raised(call: Callable[[], object]) -> ProvisionError:
    with pytest.raises(ProvisionError) as caught:
        call()
    return caught.value


def test_validate_rejects_an_unknown_location(arm, fleet_spec, lb_spec):
    provider = make_provider(arm, region="marsnorth")
    arm.clear_requests()
    error = raised(lambda: provider.validate(fleet_spec(1), lb_spec))
    assert error.code == ErrorCode.INVALID_INPUT
    assert "marsnorth" in error.message and "region" in error.hint
    assert arm.writes() == []


def test_validate_rejects_a_restricted_or_unknown_size(provider, arm, fleet_spec, lb_spec):
    arm.restrict_sku("Standard_D4s_v5")
    arm.clear_requests()
    restricted = fleet_spec(1, instance=instance_spec(machine_type="Standard_D4s_v5"))
    error = raised(lambda: provider.validate(restricted, lb_spec))
    assert error.code == ErrorCode.INVALID_INPUT
    assert "NotAvailableForSubscription" in error.message and "machine_type" in error.hint
    unknown = fleet_spec(1, instance=instance_spec(machine_type="Standard_Z99"))
    error = raised(lambda: provider.validate(unknown, lb_spec))
    assert error.code == ErrorCode.INVALID_INPUT and "Standard_B2s" in error.hint
    assert arm.writes() == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"instance": instance_spec(ssh_user="admin")}, "ssh_user"),
        ({"instance": instance_spec(ssh_public_key=None)}, "ssh_public_key"),
        ({"instance": instance_spec(image="debian-12")}, "URN"),
        ({"env": "Not_Valid"}, "environment name"),
        ({"network": NetworkSpec(existing={"resource_group": "no-such-group"})}, "no-such-group"),
    ],
)
def test_validate_rejects_bad_fleet_input(provider, arm, fleet_spec, lb_spec, change, words):
    arm.clear_requests()
    error = raised(lambda: provider.validate(fleet_spec(1, **change), lb_spec))
    assert error.code == ErrorCode.INVALID_INPUT and words in error.message
    assert error.hint
    assert arm.writes() == []


def test_validate_rejects_bad_certificates(provider, fleet_spec, env, certificate, tmp_path):
    cert_file, _ = certificate
    other_key = tmp_path / "other.pem"
    other_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cases = {
        "does not match": CertificateSpec(cert_file=cert_file, key_file=str(other_key)),
        "does not exist": CertificateSpec(cert_file=cert_file, key_file="/nonexistent.pem"),
        "managed identity": CertificateSpec(
            key_vault_secret_id="https://kv.vault.azure.net/secrets/tls"
        ),
        "exactly one": CertificateSpec(),
    }
    for words, spec in cases.items():
        error = raised(
            lambda spec=spec: provider.validate(fleet_spec(1), LoadBalancerSpec(env, spec))
        )
        assert error.code == ErrorCode.INVALID_INPUT and words in error.message, words


def test_key_vault_certificate_uses_the_gateway_identity(arm, fleet_spec, env):
    identity = (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/identities/providers"
        "/Microsoft.ManagedIdentity/userAssignedIdentities/appgw"
    )
    provider = make_provider(arm, gateway_identity_id=identity)
    secret = "https://kv-example.vault.azure.net/secrets/tls/0123"
    lb = LoadBalancerSpec(env, CertificateSpec(key_vault_secret_id=secret))
    provider.ensure_load_balancer(lb, provider.ensure_fleet(fleet_spec(1)))
    gateway = arm.resource(ids_for(env).gateway(f"mlops-vm-{env}-appgw"))
    assert gateway is not None
    assert gateway["properties"]["sslCertificates"][0]["properties"]["keyVaultSecretId"] == secret
    assert list(gateway["identity"]["userAssignedIdentities"]) == [identity]


def test_sku_not_available_at_create_is_a_capacity_error(provider, arm, fleet_spec):
    arm.restrict_sku("Standard_B2s")  # validate() was skipped: the create finds out
    error = raised(lambda: provider.ensure_fleet(fleet_spec(1)))
    assert error.code == ErrorCode.CAPACITY
    assert error.message.startswith("SkuNotAvailable") and "Standard_B2s" in error.message
    assert "machine_type" in error.hint and error.operation == "create virtual machine"


def test_allocation_failure_during_the_operation_is_a_capacity_error(provider, arm, fleet_spec):
    arm.fail(
        409,
        "AllocationFailed",
        "Allocation failed. We do not have sufficient capacity for the requested VM size.",
        path_contains="/virtualMachines/",
        asynchronous=True,
    )
    error = raised(lambda: provider.ensure_fleet(fleet_spec(1)))
    assert error.code == ErrorCode.CAPACITY and "AllocationFailed" in error.message


def test_quota_exceeded_is_a_quota_error(arm, fleet_spec):
    provider = make_provider(arm, region="northeurope")  # a location of its own: no usage
    arm.set_core_quota(2)  # one Standard_B2s fits, two do not
    error = raised(lambda: provider.ensure_fleet(fleet_spec(2)))
    assert error.code == ErrorCode.QUOTA
    assert "quota" in error.message.lower() and "quota increase" in error.hint


def test_authorization_failed_is_a_permission_error(provider, arm, fleet_spec):
    arm.deny("Microsoft.Network/virtualNetworks/write")
    error = raised(lambda: provider.ensure_fleet(fleet_spec(1)))
    assert error.code == ErrorCode.PERMISSION
    assert "Microsoft.Network/virtualNetworks/write" in error.message
    assert "role" in error.hint and error.operation == "create virtual network"


def test_a_fleet_failing_at_the_network_reports_what_it_made_before(provider, arm, fleet_spec):
    arm.deny("Microsoft.Network/virtualNetworks/write")
    error = raised(lambda: provider.ensure_fleet(fleet_spec(1)))
    made = [(change.action, change.kind) for change in error.changes_so_far]
    assert made == [("create", "resource_group"), ("create", "network_security_group")]


def test_rejected_credentials_are_an_auth_error(provider, arm, fleet_spec):
    arm.reject_tokens()
    error = raised(lambda: provider.ensure_fleet(fleet_spec(1)))
    assert error.code == ErrorCode.AUTH and "az login" in error.hint


def test_throttling_and_server_errors_are_retried(provider, arm, fleet_spec, env):
    arm.fail(
        429,
        "TooManyRequests",
        "Rate limit",
        method="PUT",
        path_contains="/virtualNetworks/",
        times=2,
    )
    arm.fail(
        503,
        "ServiceUnavailable",
        "Try later",
        method="GET",
        path_contains="/networkSecurityGroups/",
        times=1,
    )
    result = provider.ensure_fleet(fleet_spec(1))
    assert len(result.instances) == 1
    vnet_puts = [
        r.status for r in arm.requests if r.method == "PUT" and f"mlops-vm-{env}-vnet" in r.path
    ]
    assert vnet_puts == [429, 429, 201]


def nsg_puts(arm: FakeArm, env: str) -> list[int]:
    return [r.status for r in arm.requests if r.method == "PUT" and f"mlops-vm-{env}-nsg" in r.path]


def test_retry_after_is_waited_out_before_the_retry(provider, arm, fleet_spec, env):
    # ARM answers a retry that comes before the asked wait with a new wait (the fake too).
    arm.fail(
        429,
        "TooManyRequests",
        "Rate limit",
        method="PUT",
        path_contains="/networkSecurityGroups/",
        times=2,
        retry_after_s=1,
    )
    started = time.monotonic()
    assert len(provider.ensure_fleet(fleet_spec(1)).instances) == 1
    assert time.monotonic() - started >= 2  # both waits, as asked
    assert nsg_puts(arm, env) == [429, 429, 201]  # no retry came early


def test_a_wait_beyond_the_retry_budget_fails_at_once(arm, fleet_spec, env):
    provider = make_provider(arm, retry_budget_s=5)
    arm.fail(
        429,
        "TooManyRequests",
        "Rate limit",
        method="PUT",
        path_contains="/networkSecurityGroups/",
        retry_after_s=120,
    )
    started = time.monotonic()
    error = raised(lambda: provider.ensure_fleet(fleet_spec(1)))
    assert time.monotonic() - started < 5  # no sleeping towards a certain failure
    assert error.code == ErrorCode.THROTTLED and "retry_budget_s" in error.hint
    assert "retry budget" in error.message
    assert nsg_puts(arm, env) == [429]


def test_persistent_server_errors_surface_after_the_retries(arm, fleet_spec):
    provider = make_provider(arm, retry_attempts=3)
    arm.fail(
        500, "InternalServerError", "boom", method="PUT", path_contains="/resourcegroups/", times=5
    )
    error = raised(lambda: provider.ensure_fleet(fleet_spec(1)))
    assert error.code == ErrorCode.INTERNAL and error.operation == "create resource group"
    attempts = [r for r in arm.requests if r.method == "PUT" and r.status == 500]
    assert len(attempts) == 3


def test_target_health_without_a_gateway_is_not_found(provider, lb_spec):
    error = raised(lambda: provider.target_health(lb_spec))
    assert error.code == ErrorCode.NOT_FOUND and "provision" in error.hint


def test_every_request_carries_an_api_version(provider, arm, fleet_spec, lb_spec):
    arm.clear_requests()
    provider.ensure_load_balancer(lb_spec, provider.ensure_fleet(fleet_spec(1)))
    assert arm.requests and all(r.api_version for r in arm.requests)


def test_settings_are_checked(arm):
    missing = AzureProvider(ProviderSettings(name="azure", region=LOCATION))
    assert raised(lambda: missing.arm).code == ErrorCode.INVALID_INPUT
    unknown = make_provider(arm, colour="blue")
    assert "colour" in raised(lambda: unknown.arm).message


def test_production_credentials_come_from_default_azure_credential():
    from azure.identity import DefaultAzureCredential

    provider = AzureProvider(
        ProviderSettings(name="azure", region=LOCATION, options={"subscription_id": "x"})
    )
    assert isinstance(provider.arm.credential, DefaultAzureCredential)


@pytest.mark.cloud
def test_validate_against_real_azure():
    """Read-only: needs AZURE_SUBSCRIPTION_ID and a credential DefaultAzureCredential finds."""
    subscription = os.environ.get("AZURE_SUBSCRIPTION_ID")
    if not subscription:
        pytest.skip("no AZURE_SUBSCRIPTION_ID: real-cloud test")
    provider = AzureProvider(
        ProviderSettings(
            name="azure", region="westeurope", options={"subscription_id": subscription}
        )
    )
    spec = FleetSpec(env="cloudcheck", instance=instance_spec(), count=1)
    provider.validate(spec, None)


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (404, "ResourceGroupNotFound", "Resource group 'x' could not be found.", "not_found"),
        (404, "ResourceNotFound", "The Resource was not found.", "not_found"),
        (409, "OperationNotAllowed", "results in exceeding approved Cores quota", "quota"),
        (409, "OperationNotAllowed", "The operation is not allowed now.", "conflict"),
        (409, "SkuNotAvailable", "The requested VM size is not available.", "capacity"),
        (403, "RequestDisallowedByPolicy", "Resource was disallowed by policy.", "permission"),
        (400, "InvalidParameter", "The value of parameter x is invalid.", "invalid_input"),
    ],
)
def test_arm_error_codes_are_classified(provider, arm, fleet_spec, status, code, message, expected):
    arm.fail(status, code, message, method="PUT", path_contains="/networkSecurityGroups/")
    error = raised(lambda: provider.ensure_fleet(fleet_spec(1)))
    assert (error.code, error.operation) == (expected, "create network security group")
    assert error.message == f"{code}: {message}" and error.hint


def test_a_stuck_operation_times_out(arm, fleet_spec):
    provider = make_provider(arm, operation_timeout_s=0.05)
    arm.set_polls_in_progress(20)
    try:
        error = raised(lambda: provider.ensure_fleet(fleet_spec(1)))
    finally:
        arm.set_polls_in_progress(1)
    assert error.code == ErrorCode.TIMEOUT and "operation_timeout_s" in error.hint


def test_a_reused_virtual_network_is_left_alone(provider, arm, fleet_spec, lb_spec, env):
    shared = f"net-{env}"
    arm.create_resource_group(SUBSCRIPTION_ID, shared, LOCATION)
    network = provider.arm.network.virtual_networks
    network.begin_create_or_update(
        shared,
        "corp",
        {
            "location": LOCATION,
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.80.0.0/16"]},
                "subnets": [
                    {"name": "apps", "properties": {"addressPrefix": "10.80.1.0/24"}},
                    {"name": "gateways", "properties": {"addressPrefix": "10.80.9.0/24"}},
                ],
            },
        },
    ).result()
    existing = {
        "resource_group": shared,
        "vnet": "corp",
        "subnet": "apps",
        "gateway_subnet": "gateways",
    }
    spec = fleet_spec(1, network=NetworkSpec(ssh_cidr=SSH_CIDR, existing=existing))
    provider.validate(spec, lb_spec)
    fleet = provider.ensure_fleet(spec)
    provider.ensure_load_balancer(lb_spec, fleet)
    assert "virtual_network" not in {c.kind for c in fleet.changes}
    ids = Ids(SUBSCRIPTION_ID, shared)
    vnet = arm.resource(ids.vnet("corp"))
    assert vnet is not None
    assert all("networkSecurityGroup" not in s["properties"] for s in vnet["properties"]["subnets"])
    nsg = arm.resource(ids.nsg(f"mlops-vm-{env}-nsg"))
    assert nsg is not None
    rule = by_name(nsg["properties"]["securityRules"])["allow-gateway-to-service"]
    assert rule["properties"]["sourceAddressPrefix"] == "10.80.9.0/24"
    (vm,) = arm.resources(VM_TYPE, shared)
    nic = arm.resource(vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"])
    assert nic is not None and ref(nic, "networkSecurityGroup") == nsg["id"].lower()
    assert (
        ref(nic["properties"]["ipConfigurations"][0], "subnet")
        == ids.subnet("corp", "apps").lower()
    )
    gateway = arm.resource(ids.gateway(f"mlops-vm-{env}-appgw"))
    assert gateway is not None
    subnet = gateway["properties"]["gatewayIPConfigurations"][0]
    assert ref(subnet, "subnet") == ids.subnet("corp", "gateways").lower()

    provider.destroy(env)
    assert [r["name"] for r in arm.resources(resource_group=shared)] == ["corp"]


def test_a_rolling_upgrade_azure_already_started_is_not_an_error(provider, arm, scale_set_spec):
    provider.ensure_fleet(scale_set_spec(2))
    arm.fail(
        409,
        "OperationNotAllowed",
        "Cannot start a manual upgrade while a rolling upgrade is in progress.",
        method="POST",
        path_contains="/manualupgrade",
    )
    result = provider.ensure_fleet(
        scale_set_spec(2, instance=instance_spec(image="Debian:debian-12:12-gen2:0.1.2"))
    )
    assert result.changes[-1].detail.endswith("(Azure's rolling upgrade is already under way)")
    arm.fail(
        409, "OperationNotAllowed", "quota exceeded", method="POST", path_contains="/manualupgrade"
    )
    error = raised(
        lambda: provider.ensure_fleet(
            scale_set_spec(2, instance=instance_spec(image="Debian:debian-12:12-gen2:0.1.3"))
        )
    )
    assert error.code == ErrorCode.QUOTA


# -- the plan is the run ---------------------------------------------------------------------


def provision(
    provider: AzureProvider, spec: FleetSpec, lb: LoadBalancerSpec, *, dry_run: bool
) -> list[tuple[str, str, str]]:
    """The (action, kind, name) of every change of one `provision`: fleet, then gateway."""
    fleet = provider.ensure_fleet(spec, dry_run=dry_run)
    balancer = provider.ensure_load_balancer(lb, fleet, dry_run=dry_run)
    return [(c.action, c.kind, c.name) for c in [*fleet.changes, *balancer.changes]]


@pytest.mark.parametrize("mode", ["fleet", "scaling_group"])
def test_check_of_a_new_environment_lists_exactly_what_the_run_does(
    provider, arm, fleet_spec, scale_set_spec, lb_spec, env, mode
):
    """--check equals the run: on a new environment the dry run's changes (action, kind,
    name) are the real run's, in order, and it writes nothing; a second run changes
    nothing; destroy's dry run equals destroy."""
    spec = fleet_spec(2) if mode == "fleet" else scale_set_spec(2)
    arm.clear_requests()
    planned = provision(provider, spec, lb_spec, dry_run=True)
    assert arm.writes() == []
    done = provision(provider, spec, lb_spec, dry_run=False)
    assert planned == done
    assert ("create", "application_gateway", f"mlops-vm-{env}-appgw") in done
    assert provision(provider, spec, lb_spec, dry_run=False) == []

    planned_destroy = [(c.action, c.kind, c.name) for c in provider.destroy(env, dry_run=True)]
    assert planned_destroy == [(c.action, c.kind, c.name) for c in provider.destroy(env)]
    assert planned_destroy and provider.destroy(env) == []
