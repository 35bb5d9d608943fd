"""The Cloud Run fake itself and the target's calls that need no image: contract tests
(the fake, held to the run v2 / artifactregistry v1 / secretmanager v1 discovery documents
shipped inside google-api-python-client). No Docker."""

import json
import urllib.error
import urllib.request

import pytest

from mlops_vm.environment.config import CloudRunServiceConfig
from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.services.cloud_run import access
from mlops_vm.services.cloud_run.service import create_service, get_service, patch_service
from mlops_vm.services.cloud_run.template import revision_template
from tests.fakes.gcp.run_server import FakeCloudRun
from tests.fakes.gcp.testing import local_only_environment
from tests.services.cloud_run_fixtures import make_spec, make_target, new_project


@pytest.fixture(scope="module")
def fake():
    with local_only_environment(), FakeCloudRun(polls_to_done=3) as server:
        yield server


def body_for(project: str, spec, image: str = "example/model:1") -> dict:
    template = revision_template(spec, CloudRunServiceConfig(), project, image)
    return {
        "labels": {"mlops-vm-env": spec.env},
        "template": template,
        "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
    }


def raw(fake, method: str, path: str, body=None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(fake.endpoint_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_requests_are_held_to_the_discovery_documents(fake):
    """Contract: unknown fields, wrong types, unknown query parameters and methods the
    documents do not have are refused before any behaviour runs."""
    parent = f"run/v2/projects/{new_project()}/locations/europe-west1/services"
    code, answer = raw(fake, "POST", f"{parent}?serviceId=a", {"template": {"nope": 1}})
    assert code == 400 and "nope" in answer["error"]["message"]
    code, answer = raw(fake, "POST", f"{parent}?serviceId=a", {"template": {"containers": "x"}})
    assert code == 400
    code, answer = raw(fake, "GET", f"{parent}?colour=blue")
    assert code == 400 and "colour" in answer["error"]["message"]
    code, _ = raw(fake, "PUT", f"{parent}/a")
    assert code == 400
    assert fake.everything()["services"] == []


def test_operations_start_not_done_and_the_service_reconciles(fake):
    """Contract: create answers an operation that is not done; until it is, the service is
    reconciling; the client's wait polls it to done and reads a ready service back."""
    project = new_project()
    target = make_target(fake, project)
    spec = make_spec("ops")
    operation = target.apis.run.execute(
        "create",
        lambda s: (
            s.projects()
            .locations()
            .services()
            .create(
                parent=target.apis.where.parent, serviceId=spec.name, body=body_for(project, spec)
            )
        ),
    )
    assert operation["done"] is False
    service = get_service(target.apis, spec.name)
    assert service["reconciling"] is True
    assert service["terminalCondition"]["state"] == "CONDITION_RECONCILING"
    target.apis.run_operation("create", operation)
    service = get_service(target.apis, spec.name)
    assert service["reconciling"] is False
    assert service["terminalCondition"]["state"] == "CONDITION_SUCCEEDED"
    assert service["trafficStatuses"][0]["percent"] == 100
    polls = [c for c in fake.calls if c[0] == "run.projects.locations.operations.get"]
    assert len(polls) >= 3


def test_traffic_and_etags_are_checked(fake):
    """Contract: traffic must sum to 100 and name revisions that exist; a patch with a
    stale etag is ABORTED (the target's read-modify-write cannot lose a change)."""
    project = new_project()
    target = make_target(fake, project)
    spec = make_spec("etag")
    service = create_service(target.apis, spec.name, body_for(project, spec))
    bad_traffic = [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "x-1", "percent": 100}
    ]
    with pytest.raises(ProvisionError) as refused:
        patch_service(target.apis, service, {"traffic": bad_traffic}, "traffic")
    assert refused.value.code is ErrorCode.INVALID_INPUT
    fresh = patch_service(target.apis, service, {"annotations": {"a": "1"}}, "annotations")
    assert fresh["etag"] != service["etag"]
    with pytest.raises(ProvisionError) as stale:
        patch_service(target.apis, service, {"annotations": {"a": "2"}}, "annotations")
    assert stale.value.code is ErrorCode.CONFLICT


def access_changes(target, name: str, wanted: str, *, dry_run: bool) -> list[Change]:
    log = ChangeLog(dry_run=dry_run)
    access.ensure_access(target.apis, name, wanted, log)
    return log.changes


def test_access_is_an_iam_binding_with_etags(fake):
    """Contract: public = allUsers bound to roles/run.invoker (set with the etag read);
    authenticated = the binding removed; the service URL then refuses anonymous calls."""
    project = new_project()
    target = make_target(fake, project)
    spec = make_spec("iam")
    service = create_service(target.apis, spec.name, body_for(project, spec))
    name = service["name"]
    assert access_changes(target, name, "public", dry_run=True)
    assert fake.state.policies[name]["bindings"] == []  # the dry run changed nothing
    assert access_changes(target, name, "public", dry_run=False)
    assert fake.state.policies[name]["bindings"] == [
        {"role": "roles/run.invoker", "members": ["allUsers"]}
    ]
    assert access_changes(target, name, "public", dry_run=False) == []
    probe_url = service["uri"] + spec.readiness_path
    with urllib.request.urlopen(probe_url) as answer:
        assert answer.status == 200
    assert access_changes(target, name, "authenticated", dry_run=False)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(probe_url)
    assert refused.value.code == 403
    stale = {"policy": {"etag": "c3RhbGU=", "bindings": []}}
    code, _ = raw(fake, "POST", f"run/v2/{name}:setIamPolicy", stale)
    assert code == 409


@pytest.mark.parametrize(
    ("changes", "region", "expected"),
    [
        (
            {"gpu": 1, "cpu": 4, "memory_mb": 16384},
            "europe-north1",
            "no nvidia-l4 GPUs in europe-north1",
        ),
        ({"gpu": 1, "cpu": 2, "memory_mb": 8192}, "europe-west1", "at least 4 CPUs"),
        ({"gpu": 2, "cpu": 8, "memory_mb": 32768}, "europe-west1", "exactly one GPU"),
        ({"cpu": 0.5, "memory_mb": 512, "concurrency": 10}, "europe-west1", "concurrency 1"),
        ({"concurrency": 5000}, "europe-west1", "concurrency 5000"),
        ({"max_instances": 2000}, "europe-west1", "max_instances"),
        ({"cpu": 3}, "europe-west1", "not a Cloud Run CPU limit"),
        ({"memory_mb": 10240, "cpu": 2}, "europe-west1", "needs at least 4 CPUs"),
        ({"env_vars": {"PORT": "1"}}, "europe-west1", "PORT is reserved"),
        (
            {"secrets": {"TOKEN": "projects/p/secrets/missing/versions/1"}},
            "europe-west1",
            "does not exist",
        ),
    ],
)
def test_bad_input_is_refused_before_anything_exists(fake, changes, region, expected):
    """Contract: validate refuses what Cloud Run would (the limits table, a secret that is
    not in Secret Manager) with INVALID_INPUT, and nothing is created."""
    project = new_project()
    target = make_target(fake, project, region)
    before = len(fake.calls)
    with pytest.raises(ProvisionError) as refused:
        target.validate(make_spec("bad", **changes))
    assert refused.value.code is ErrorCode.INVALID_INPUT
    assert expected in str(refused.value)
    made = [c[0] for c in fake.calls[before:]]
    assert all(call.startswith("secretmanager.") for call in made), made
    assert not [n for n in fake.everything()["services"] if project in n]


def test_existing_secrets_pass_and_become_references(fake):
    """Contract: a secret that exists passes validation and reaches the template as a
    Secret Manager reference, never a value."""
    project = new_project()
    fake.add_secret(project, "api-token", "3")
    spec = make_spec("sec", secrets={"API_TOKEN": "api-token:3"})
    make_target(fake, project).validate(spec)
    template = revision_template(spec, CloudRunServiceConfig(), project, "x/y:1")
    env = {e["name"]: e for e in template["containers"][0]["env"]}
    assert env["API_TOKEN"] == {
        "name": "API_TOKEN",
        "valueSource": {
            "secretKeyRef": {"secret": f"projects/{project}/secrets/api-token", "version": "3"}
        },
    }


def test_gpu_template_has_the_limit_and_the_accelerator():
    """Contract: a GPU service asks for nvidia.com/gpu with the accelerator node selector
    and CPU always allocated."""
    spec = make_spec("gpu", gpu=1, cpu=4, memory_mb=16384)
    template = revision_template(spec, CloudRunServiceConfig(), "p", "x/y:1")
    resources = template["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1"
    assert resources["cpuIdle"] is False
    assert template["nodeSelector"] == {"accelerator": "nvidia-l4"}
