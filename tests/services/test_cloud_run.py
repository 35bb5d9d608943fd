"""The Cloud Run target end to end in-process: its control plane against the fake (a
contract: run v2 / artifactregistry v1 / logging v2 held to their discovery documents),
the image really copied (the local TLS registry stands in for Artifact Registry, the
source registry being the same one), and the revision's container really run on the local
Docker engine the way Cloud Run runs it (PORT = containerPort 9090, not 8080; the startup
and liveness probes the target configures), answering /predict through the service URL."""

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import replace

import pytest

from tests.fakes.gcp.run_server import FakeCloudRun
from tests.fakes.gcp.testing import local_only_environment
from tests.services.cloud_run_fixtures import REGION, make_spec, make_target, new_project

pytestmark = pytest.mark.slow
SAMPLE = [[5.1, 3.5, 1.4, 0.2]]


@pytest.fixture(scope="module")
def fake():
    with local_only_environment(), FakeCloudRun() as server:
        yield server


def http(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}
    except OSError:  # not listening yet (the port proxy resets the connection)
        return 0, {}


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def run_like_cloud_run(container: dict, revision: str, name: str) -> str:
    """CONTAINER (a revision's spec as the target sent it) run the Cloud Run way: PORT set
    to its containerPort, its plain env, only that port reachable; waits on its startup
    probe as Cloud Run does. Returns its base URL on 127.0.0.1."""
    port = container["ports"][0]["containerPort"]
    env = [f"{e['name']}={e['value']}" for e in container.get("env", []) if "value" in e]
    env += [f"PORT={port}", f"K_REVISION={revision}", "K_SERVICE=model"]
    flags = [item for pair in (("-e", value) for value in env) for item in pair]
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1::{port}", *flags, container["image"])
    host_port = docker("port", name, str(port)).splitlines()[0].rsplit(":", 1)[1]
    base = f"http://127.0.0.1:{host_port}"
    startup = container["startupProbe"]
    deadline = time.monotonic() + startup["periodSeconds"] * startup["failureThreshold"]
    while http(base + startup["httpGet"]["path"])[0] != 200:
        assert time.monotonic() < deadline, docker("logs", "--tail", "20", name)
        time.sleep(0.5)
    return base


def test_lifecycle_with_the_model_running_the_cloud_run_way(fake, reference_model):
    """Contract (fake control plane) + real (image copy, container on Docker): create,
    no-change second run, stepped tagged release, rollback,
    logs, destroy twice."""
    project, env = new_project(), f"cr{uuid.uuid4().hex[:6]}"
    target = make_target(fake, project)
    spec = make_spec(env, options={**make_spec(env).options, "traffic_steps": [50, 100]})

    created = target.ensure_service(spec)
    record = created.record
    assert record.healthy and record.url and record.traffic == {record.active.id: 100}
    assert record.active.image == spec.image and record.active.source == "provision"
    assert target.ensure_service(spec).changes == []

    # The revision's container, as the target described it, run for real.
    stored = fake.service(project, REGION, spec.name)
    container = stored["template"]["containers"][0]
    assert container["ports"] == [{"name": "http1", "containerPort": 9090}]
    assert container["startupProbe"]["httpGet"]["path"] == spec.readiness_path
    assert container["livenessProbe"]["httpGet"]["path"] == spec.health_path
    name = f"mlops-vm-test-cloudrun-{uuid.uuid4().hex[:6]}"
    try:
        base = run_like_cloud_run(container, record.active.id, name)
        assert http(base + spec.health_path)[0] == 200
        fake.serve_image(container["image"], base)
        code, answer = http(record.url + "/predict", {"instances": SAMPLE})
        assert code == 200
        assert answer["predictions"] == reference_model.predict(SAMPLE).tolist()
    finally:
        subprocess.run(["docker", "rm", "-f", name], check=False, capture_output=True)

    # A release: a new revision with no traffic and a tag, checked through the tag URL,
    # then 50% and 100%.
    first = record.active.id
    mark = len(fake.calls)
    deploy = replace(spec, image=spec.image.replace(":1.0", ":1.1"), source="deploy")
    released = target.release(deploy).record
    assert released.active.image == deploy.image and released.traffic == {released.active.id: 100}
    assert released.previous.id == first
    masks = [q.get("updateMask") for m, _, q in fake.calls[mark:] if m.endswith("services.patch")]
    assert masks == ["template,traffic", "traffic,annotations", "traffic,annotations"]
    assert any(m == "app" and "/tags/candidate/readyz" in p for m, p, _ in fake.calls[mark:])

    rolled = target.rollback(env).record
    assert rolled.active.id == first and rolled.active.source == "rollback"
    assert rolled.previous.id == released.active.id

    fake.add_log(spec.name, "second", "2026-01-01T00:00:02Z")
    fake.add_log(spec.name, "first", "2026-01-01T00:00:01Z")
    assert target.logs(env, tail=10) == ["first", "second"]

    removed = target.destroy(env)
    assert {c.kind for c in removed} == {"cloud_run_service", "artifact_registry_repository"}
    assert target.destroy(env) == []
    assert target.status(env) is None
