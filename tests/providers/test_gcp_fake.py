"""The Compute Engine fake holds requests to the real contract (the discovery document).

If the fake accepted what the real API refuses, the provider tests would prove nothing:
these tests pin the refusals (paths, methods, query parameters, bodies) and the stateful
rules (operations, not found, already exists, in use) the provider relies on.
"""

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from googleapiclient import discovery
from googleapiclient.errors import HttpError

from mlops_vm.provision.gcp.client import api_endpoint
from tests.fakes.gcp import FakeCompute

pytestmark = pytest.mark.usefixtures("clean_faults")

REGION, ZONE = "us-central1", "us-central1-a"
DEBIAN_12 = "projects/debian-cloud/global/images/family/debian-12"


@pytest.fixture
def compute(fake: FakeCompute) -> Any:
    return discovery.build(
        "compute",
        "v1",
        credentials=AnonymousCredentials(),
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": api_endpoint(fake.endpoint_url)},
    )


def settle(compute: Any, project: str, operation: dict[str, Any]) -> dict[str, Any]:
    """Poll OPERATION (global, regional or zonal) until DONE."""
    name = operation["name"]
    while operation["status"] != "DONE":
        if "zone" in operation:
            request = compute.zoneOperations().wait(
                project=project, zone=operation["zone"].rsplit("/", 1)[1], operation=name
            )
        elif "region" in operation:
            request = compute.regionOperations().wait(
                project=project, region=operation["region"].rsplit("/", 1)[1], operation=name
            )
        else:
            request = compute.globalOperations().wait(project=project, operation=name)
        operation = request.execute()
    return operation


def api_error(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HttpError) as caught:
        call.execute()
    return caught.value.resp.status, json.loads(caught.value.content)["error"]


def raw(fake: FakeCompute, method: str, path: str, body: bytes | None = None):
    request = urllib.request.Request(
        fake.endpoint_url + path,
        data=body,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def network(compute: Any, project: str, name: str = "n1") -> dict[str, Any]:
    return settle(
        compute,
        project,
        compute.networks()
        .insert(project=project, body={"name": name, "autoCreateSubnetworks": False})
        .execute(),
    )


def subnetwork(compute: Any, project: str) -> dict[str, Any]:
    """Subnetwork s1 of network n1 (made by `network`), in REGION."""
    return settle(
        compute,
        project,
        compute.subnetworks()
        .insert(
            project=project,
            region=REGION,
            body={"name": "s1", "network": "global/networks/n1", "ipCidrRange": "10.1.0.0/24"},
        )
        .execute(),
    )


# -- the discovery contract --------------------------------------------------------------------


def test_unknown_path_is_404_and_wrong_method_is_400(fake, project):
    status, answer = raw(fake, "GET", f"compute/v1/projects/{project}/global/gizmos")
    assert status == 404 and answer["error"]["errors"][0]["reason"] == "notFound"
    status, answer = raw(fake, "PUT", f"compute/v1/projects/{project}/global/networks")
    assert status == 400 and answer["error"]["code"] == 400


def test_unknown_query_parameter_is_refused(fake, project):
    status, answer = raw(fake, "GET", f"compute/v1/projects/{project}/global/networks?colour=blue")
    assert status == 400
    assert "colour" in answer["error"]["message"]


def test_unknown_body_field_is_refused_with_the_real_error_shape(compute, project):
    status, error = api_error(
        compute.networks().insert(
            project=project, body={"name": "n1", "autoCreateSubnetworks": False, "colour": "x"}
        )
    )
    assert status == 400
    assert set(error) >= {"code", "message", "errors"}
    (detail,) = error["errors"]
    assert set(detail) == {"reason", "message", "domain"}
    assert 'Unknown name "colour"' in detail["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "i1", "machineType": 42}, "machineType"),
        ({"name": "i1", "canIpForward": "yes"}, "canIpForward"),
        ({"name": "i1", "disks": {"boot": True}}, "disks"),
        ({"name": "i1", "scheduling": {"provisioningModel": "CHEAP"}}, "provisioningModel"),
        ({"name": "I_1"}, "resource.name"),
        ({"machineType": "zones/us-central1-a/machineTypes/e2-small"}, "resource.name"),
        ({"name": "i1", "labels": {"Team": "x"}}, "labels"),
    ],
)
def test_wrong_types_enums_names_and_labels_are_refused(compute, project, body, fragment):
    status, error = api_error(compute.instances().insert(project=project, zone=ZONE, body=body))
    assert status == 400
    assert fragment in error["message"]


def test_required_fields_from_the_discovery_annotations(compute, project):
    status, error = api_error(
        compute.instanceGroupManagers().insert(
            project=project,
            zone=ZONE,
            body={
                "name": "m1",
                "baseInstanceName": "m1",
                "instanceTemplate": "global/instanceTemplates/t",
            },
        )
    )
    assert status == 400
    assert error["errors"][0]["reason"] == "required"
    assert "targetSize" in error["message"]


def test_patch_bodies_are_checked_too(compute, project):
    network(compute, project)
    settle(
        compute,
        project,
        compute.firewalls()
        .insert(
            project=project,
            body={
                "name": "f1",
                "network": f"projects/{project}/global/networks/n1",
                "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}],
            },
        )
        .execute(),
    )
    status, error = api_error(
        compute.firewalls().patch(
            project=project, firewall="f1", body={"sourceRanges": ["10.0.0.0/8"]}
        )
    )
    assert status == 400 and "resource.name" in error["message"]


# -- state ---------------------------------------------------------------------------------------


def test_operations_are_pending_then_done_and_apply_only_when_done(compute, project):
    operation = (
        compute.networks()
        .insert(project=project, body={"name": "n1", "autoCreateSubnetworks": False})
        .execute()
    )
    assert operation["status"] == "PENDING"
    assert operation["targetLink"].endswith(f"projects/{project}/global/networks/n1")
    status, _ = api_error(compute.networks().get(project=project, network="n1"))
    assert status == 404  # not there until the operation is DONE
    polled = compute.globalOperations().get(project=project, operation=operation["name"])
    assert polled.execute()["status"] == "RUNNING"
    assert polled.execute()["status"] == "DONE"
    created = compute.networks().get(project=project, network="n1").execute()
    assert created["kind"] == "compute#network"
    assert created["id"].isdigit() and created["creationTimestamp"]
    assert created["selfLink"] == (
        f"https://www.googleapis.com/compute/v1/projects/{project}/global/networks/n1"
    )


def test_not_found_and_already_exists(compute, project):
    status, error = api_error(compute.networks().delete(project=project, network="n1"))
    assert (status, error["errors"][0]["reason"]) == (404, "notFound")
    network(compute, project)
    status, error = api_error(
        compute.networks().insert(
            project=project, body={"name": "n1", "autoCreateSubnetworks": False}
        )
    )
    assert (status, error["errors"][0]["reason"]) == (409, "alreadyExists")


def test_references_must_exist(compute, project):
    status, error = api_error(
        compute.backendServices().insert(
            project=project,
            body={
                "name": "b1",
                "healthChecks": [f"projects/{project}/global/healthChecks/missing"],
            },
        )
    )
    assert status == 404
    assert f"projects/{project}/global/healthChecks/missing" in error["message"]


def test_delete_of_a_resource_in_use_is_refused(compute, project):
    network(compute, project)
    settle(
        compute,
        project,
        compute.healthChecks()
        .insert(
            project=project,
            body={"name": "h1", "type": "HTTPS", "httpsHealthCheck": {"requestPath": "/healthz"}},
        )
        .execute(),
    )
    settle(
        compute,
        project,
        compute.backendServices()
        .insert(project=project, body={"name": "b1", "healthChecks": ["global/healthChecks/h1"]})
        .execute(),
    )
    subnetwork(compute, project)
    for call, user in (
        (compute.healthChecks().delete(project=project, healthCheck="h1"), "backendServices/b1"),
        (compute.networks().delete(project=project, network="n1"), "subnetworks/s1"),
    ):
        status, error = api_error(call)
        assert (status, error["errors"][0]["reason"]) == (400, "resourceInUseByAnotherResource")
        assert user in error["message"]


def test_template_used_by_a_group_cannot_be_deleted(compute, project):
    network(compute, project)
    settle(
        compute,
        project,
        compute.instanceTemplates()
        .insert(
            project=project,
            body={
                "name": "t1",
                "properties": {
                    "machineType": "e2-small",
                    "disks": [
                        {
                            "boot": True,
                            "initializeParams": {"sourceImage": DEBIAN_12},
                        }
                    ],
                    "networkInterfaces": [{"network": f"projects/{project}/global/networks/n1"}],
                },
            },
        )
        .execute(),
    )
    settle(
        compute,
        project,
        compute.instanceGroupManagers()
        .insert(
            project=project,
            zone=ZONE,
            body={
                "name": "m1",
                "baseInstanceName": "m1",
                "targetSize": 2,
                "instanceTemplate": "global/instanceTemplates/t1",
            },
        )
        .execute(),
    )
    status, error = api_error(
        compute.instanceTemplates().delete(project=project, instanceTemplate="t1")
    )
    assert (status, error["errors"][0]["reason"]) == (400, "resourceInUseByAnotherResource")
    listed = compute.instances().list(project=project, zone=ZONE).execute()["items"]
    assert len(listed) == 2  # the group made its instances


def test_lists_page_and_filter(fake, compute, project):
    for index in range(3):
        network(compute, project, f"n{index}")
    fake.store.page_size = 2
    request = compute.networks().list(project=project)
    first = request.execute()
    assert len(first["items"]) == 2 and first["nextPageToken"]
    second = compute.networks().list_next(request, first)
    assert second is not None
    assert [n["name"] for n in second.execute()["items"]] == ["n2"]
    picked = compute.networks().list(project=project, filter='name eq "n[12]"').execute()
    assert sorted(n["name"] for n in picked["items"]) == ["n1", "n2"]
    nothing = compute.networks().list(project=project, filter='name = "zz"').execute()
    assert "items" not in nothing  # the real API omits empty items
    fake.store.page_size = 500


def test_operation_faults_end_in_an_operation_error(fake, compute, project):
    network(compute, project)
    fake.faults.quota_exceeded("compute.subnetworks.insert", metric="SUBNETWORKS")
    operation = subnetwork(compute, project)
    assert operation["error"]["errors"][0]["code"] == "QUOTA_EXCEEDED"
    assert compute.subnetworks().list(project=project, region=REGION).execute().get("items") is None
    fake.reset_faults()


def test_a_repeated_request_id_is_the_same_operation_and_one_resource(fake, compute, project):
    body = {"name": "net-a", "autoCreateSubnetworks": False}
    first = compute.networks().insert(project=project, body=body, requestId="r-1").execute()
    again = compute.networks().insert(project=project, body=body, requestId="r-1").execute()
    assert again["name"] == first["name"]
    settle(compute, project, first)
    assert [n["name"] for n in fake.resources(project, "networks")] == ["net-a"]
    status, error = api_error(compute.networks().insert(project=project, body=body))
    assert (status, error["errors"][0]["reason"]) == (409, "alreadyExists")  # no id: refused


def test_throttling_asks_for_a_wait_and_throttles_early_retries(fake, compute, project):
    fake.faults.throttle("compute.networks.list", retry_after_s=30)
    for _ in range(2):  # the second comes too early: throttled again, not counted
        with pytest.raises(HttpError) as caught:
            compute.networks().list(project=project).execute()
        assert caught.value.resp.status == 429
        assert 0 < int(caught.value.resp["retry-after"]) <= 30
