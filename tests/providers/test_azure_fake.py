"""The fake ARM itself, over raw HTTP: it must hold to ARM's protocol, or the provider tests
prove nothing. Long-running operations, errors, child resources, reference checks, hooks."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.fakes.azure import SUBSCRIPTION_ID, FakeArm

API = "2024-05-01"
GROUP = "fake-protocol"
PREFIX = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{GROUP}/providers"
NSG = f"{PREFIX}/Microsoft.Network/networkSecurityGroups/nsg"
VNET = f"{PREFIX}/Microsoft.Network/virtualNetworks/vnet"
NIC = f"{PREFIX}/Microsoft.Network/networkInterfaces/nic"
GATEWAY = f"{PREFIX}/Microsoft.Network/applicationGateways/gw"
PUBLIC_IP = f"{PREFIX}/Microsoft.Network/publicIPAddresses/gw-ip"


pytestmark = pytest.mark.usefixtures("plain_http", "fresh_hooks")


@pytest.fixture(scope="module")
def arm(arm: FakeArm) -> FakeArm:
    """The shared ARM fake (conftest.py), with the resource group these tests write into."""
    plain_session().put(
        f"{arm.url}/subscriptions/{SUBSCRIPTION_ID}/resourcegroups/{GROUP}",
        params={"api-version": API},
        json={"location": "westeurope"},
        headers={"Authorization": "Bearer t"},
    ).raise_for_status()
    return arm


def plain_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy, no CA bundle: plain http to 127.0.0.1
    return session


def call(
    arm: FakeArm,
    method: str,
    path_or_url: str,
    body: Any = None,
    *,
    api_version: str | None = API,
    token: bool = True,
) -> requests.Response:
    url = path_or_url if path_or_url.startswith("http") else arm.url + path_or_url
    params = {"api-version": api_version} if api_version and "api-version" not in url else {}
    headers = {"Authorization": "Bearer test"} if token else {}
    return plain_session().request(method, url, params=params, json=body, headers=headers)


def error_code(response: requests.Response) -> str:
    return response.json()["error"]["code"]


def wait(arm: FakeArm, response: requests.Response) -> requests.Response:
    """Follow a long-running operation as the SDK does; return the last monitor answer."""
    monitor = response.headers.get("Azure-AsyncOperation") or response.headers["Location"]
    for _ in range(10):
        answer = call(arm, "GET", monitor)
        if "Azure-AsyncOperation" in response.headers:
            if answer.json()["status"] != "InProgress":
                return answer
        elif answer.status_code != 202:
            return answer
    raise AssertionError("operation never ended")


def put_nsg(arm: FakeArm, path: str = NSG) -> None:
    assert wait(arm, call(arm, "PUT", path, {"location": "westeurope"})).ok


def test_requests_need_an_api_version_and_a_token(arm):
    missing_version = call(arm, "GET", NSG, api_version=None)
    assert missing_version.status_code == 400
    assert error_code(missing_version) == "MissingApiVersionParameter"
    anonymous = call(arm, "GET", NSG, token=False)
    assert anonymous.status_code == 401 and error_code(anonymous) == "AuthenticationFailed"


def test_put_is_a_long_running_operation_that_ends_in_succeeded(arm):
    path = f"{PREFIX}/Microsoft.Network/networkSecurityGroups/lro"
    created = call(arm, "PUT", path, {"location": "westeurope", "tags": {"a": "b"}})
    assert created.status_code == 201
    assert created.json()["properties"]["provisioningState"] == "Creating"
    status_url = created.headers["Azure-AsyncOperation"]
    assert "api-version=" in status_url
    assert call(arm, "PUT", path, {"location": "westeurope"}).status_code == 409  # busy
    assert call(arm, "GET", status_url).json()["status"] == "InProgress"
    assert call(arm, "GET", status_url).json()["status"] == "Succeeded"
    shown = call(arm, "GET", path).json()
    assert shown["id"] == path and shown["name"] == "lro"
    assert shown["type"] == "Microsoft.Network/networkSecurityGroups"
    assert (shown["location"], shown["tags"]) == ("westeurope", {"a": "b"})
    assert shown["properties"]["provisioningState"] == "Succeeded"
    updated = call(arm, "PUT", path, {"location": "westeurope"})
    assert updated.status_code == 200
    assert updated.json()["properties"]["provisioningState"] == "Updating"
    wait(arm, updated)


def test_delete_answers_202_with_location_then_204_when_gone(arm):
    path = f"{PREFIX}/Microsoft.Network/networkSecurityGroups/doomed"
    put_nsg(arm, path)
    accepted = call(arm, "DELETE", path)
    assert accepted.status_code == 202 and "Location" in accepted.headers
    assert call(arm, "GET", path).json()["properties"]["provisioningState"] == "Deleting"
    assert call(arm, "GET", accepted.headers["Location"]).status_code == 202
    assert call(arm, "GET", accepted.headers["Location"]).status_code == 204
    gone = call(arm, "GET", path)
    assert gone.status_code == 404 and error_code(gone) == "ResourceNotFound"
    assert call(arm, "DELETE", path).status_code == 204


def test_missing_resource_group_is_its_own_error(arm):
    path = (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/nope"
        "/providers/Microsoft.Network/virtualNetworks/v"
    )
    answer = call(arm, "GET", path)
    assert answer.status_code == 404 and error_code(answer) == "ResourceGroupNotFound"
    put = call(arm, "PUT", path, {"location": "westeurope"})
    assert put.status_code == 404 and error_code(put) == "ResourceGroupNotFound"


def test_tag_names_cannot_hold_a_slash(arm):
    answer = call(arm, "PUT", NSG, {"location": "westeurope", "tags": {"mlops-vm/env": "x"}})
    assert answer.status_code == 400 and error_code(answer) == "InvalidTagNameCharacters"


def test_subnets_are_children_with_ids_and_can_be_put_alone(arm):
    body = {
        "location": "westeurope",
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.9.0.0/16"]},
            "subnets": [{"name": "a", "properties": {"addressPrefix": "10.9.0.0/24"}}],
        },
    }
    assert wait(arm, call(arm, "PUT", VNET, body)).ok
    vnet = call(arm, "GET", VNET).json()
    subnet_id = vnet["properties"]["subnets"][0]["id"]
    assert subnet_id == f"{VNET}/subnets/a"
    assert call(arm, "GET", subnet_id).json()["properties"]["addressPrefix"] == "10.9.0.0/24"
    added = call(arm, "PUT", f"{VNET}/subnets/b", {"properties": {"addressPrefix": "10.9.1.0/24"}})
    assert added.status_code == 201 and added.json()["id"] == f"{VNET}/subnets/b"
    wait(arm, added)
    names = [s["name"] for s in call(arm, "GET", VNET).json()["properties"]["subnets"]]
    assert names == ["a", "b"]
    outside = call(
        arm, "PUT", f"{VNET}/subnets/c", {"properties": {"addressPrefix": "10.8.0.0/24"}}
    )
    assert outside.status_code == 400 and error_code(outside) == "NetcfgSubnetRangeOutsideVnet"

    nic = {
        "location": "westeurope",
        "properties": {
            "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet_id}}}]
        },
    }
    wait(arm, call(arm, "PUT", NIC, nic))
    config = call(arm, "GET", NIC).json()["properties"]["ipConfigurations"][0]
    assert config["properties"]["privateIPAddress"] == "10.9.0.4"
    in_use = call(arm, "DELETE", subnet_id)
    assert in_use.status_code == 400 and error_code(in_use) == "InUseSubnetCannotBeDeleted"
    backref = call(arm, "GET", subnet_id).json()["properties"]["ipConfigurations"]
    assert backref == [{"id": config["id"]}]


def gateway_body(subnet_id: str, **rule_changes: Any) -> dict:
    def ref(collection: str, name: str) -> dict:
        return {"id": f"{GATEWAY}/{collection}/{name}"}

    rule = {
        "ruleType": "Basic",
        "priority": 10,
        "httpListener": ref("httpListeners", "l"),
        "backendAddressPool": ref("backendAddressPools", "p"),
        "backendHttpSettings": ref("backendHttpSettingsCollection", "s"),
        **rule_changes,
    }
    return {
        "location": "westeurope",
        "properties": {
            "sku": {"name": "Standard_v2", "tier": "Standard_v2", "capacity": 1},
            "gatewayIPConfigurations": [{"name": "g", "properties": {"subnet": {"id": subnet_id}}}],
            "frontendIPConfigurations": [
                {"name": "f", "properties": {"publicIPAddress": {"id": PUBLIC_IP}}}
            ],
            "frontendPorts": [{"name": "80", "properties": {"port": 80}}],
            "backendAddressPools": [{"name": "p"}],
            "backendHttpSettingsCollection": [
                {"name": "s", "properties": {"port": 80, "protocol": "Http"}}
            ],
            "httpListeners": [
                {
                    "name": "l",
                    "properties": {
                        "frontendIPConfiguration": ref("frontendIPConfigurations", "f"),
                        "frontendPort": ref("frontendPorts", "80"),
                        "protocol": "Http",
                    },
                }
            ],
            "requestRoutingRules": [{"name": "r", "properties": rule}],
        },
    }


def test_gateway_children_are_checked_and_readable_by_id(arm):
    body = {
        "location": "westeurope",
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.7.0.0/16"]},
            "subnets": [{"name": "gw", "properties": {"addressPrefix": "10.7.0.0/24"}}],
        },
    }
    vnet_path = f"{PREFIX}/Microsoft.Network/virtualNetworks/gwnet"
    wait(arm, call(arm, "PUT", vnet_path, body))
    ip = {
        "location": "westeurope",
        "sku": {"name": "Standard"},
        "properties": {"publicIPAllocationMethod": "Static"},
    }
    wait(arm, call(arm, "PUT", PUBLIC_IP, ip))
    subnet_id = f"{vnet_path}/subnets/gw"

    no_priority = call(arm, "PUT", GATEWAY, gateway_body(subnet_id, priority=None))
    assert no_priority.status_code == 400
    assert error_code(no_priority) == "ApplicationGatewayRequestRoutingRulePriorityCannotBeEmpty"
    dangling = gateway_body(
        subnet_id, backendAddressPool={"id": f"{GATEWAY}/backendAddressPools/x"}
    )
    answer = call(arm, "PUT", GATEWAY, dangling)
    assert answer.status_code == 400 and error_code(answer) == "InvalidResourceReference"

    wait(arm, call(arm, "PUT", GATEWAY, gateway_body(subnet_id)))
    pool = call(arm, "GET", f"{GATEWAY}/backendAddressPools/p")
    assert (
        pool.ok
        and pool.json()["type"] == "Microsoft.Network/applicationGateways/backendAddressPools"
    )
    assert call(arm, "GET", PUBLIC_IP).json()["properties"]["ipConfiguration"] == {
        "id": f"{GATEWAY}/frontendIPConfigurations/f"
    }
    in_use = call(arm, "DELETE", PUBLIC_IP)
    assert in_use.status_code == 400 and error_code(in_use) == "PublicIPAddressCannotBeDeleted"
    health = call(arm, "POST", f"{GATEWAY}/backendhealth")
    assert health.status_code == 202
    assert wait(arm, health).json()["backendAddressPools"][0]["backendAddressPool"] == {
        "id": f"{GATEWAY}/backendAddressPools/p"
    }


def test_injected_asynchronous_failure_fails_the_operation(arm):
    arm.fail(
        409,
        "AllocationFailed",
        "no capacity",
        path_contains="/networkSecurityGroups/async",
        asynchronous=True,
    )
    path = f"{PREFIX}/Microsoft.Network/networkSecurityGroups/async"
    accepted = call(arm, "PUT", path, {"location": "westeurope"})
    assert accepted.status_code == 201
    final = wait(arm, accepted).json()
    assert final["status"] == "Failed" and final["error"]["code"] == "AllocationFailed"
    assert call(arm, "GET", path).json()["properties"]["provisioningState"] == "Failed"


def test_sku_list_shows_restrictions(arm):
    arm.restrict_sku("Standard_B1s")
    skus = call(
        arm,
        "GET",
        f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Compute/skus?api-version=2021-07-01"
        "&$filter=location eq 'eastus'",
    ).json()["value"]
    assert {s["locations"][0] for s in skus} == {"eastus"}
    restricted = {s["name"]: s["restrictions"] for s in skus}
    assert restricted["Standard_B1s"][0]["reasonCode"] == "NotAvailableForSubscription"
    assert restricted["Standard_B2s"] == []


def test_denied_actions_answer_authorization_failed(arm):
    arm.deny("Microsoft.Network/networkSecurityGroups/write")
    answer = call(arm, "PUT", NSG, {"location": "westeurope"})
    assert answer.status_code == 403 and error_code(answer) == "AuthorizationFailed"
    assert "Microsoft.Network/networkSecurityGroups/write" in answer.json()["error"]["message"]
    assert call(arm, "GET", NSG).status_code in {200, 404}  # reads stay allowed
