"""`--check` equals the run for the cloud_run target on a new environment, against the
Cloud Run fake (control plane). The image copy is Docker's (test_cloud_run.py runs it for
real); here a registry that keeps what was copied stands in for it, so this runs without
Docker and still sees a dry run copy nothing and a second run find the image there."""

import uuid
from dataclasses import replace

import pytest

from mlops_vm.services import images
from tests.check_equals_run import assert_same
from tests.fakes.gcp.run_server import FakeCloudRun
from tests.fakes.gcp.testing import local_only_environment
from tests.services.cloud_run_fixtures import CopiedImages, make_spec, make_target, new_project


@pytest.fixture(scope="module")
def fake():
    with local_only_environment(), FakeCloudRun(polls_to_done=2) as server:
        yield server


@pytest.fixture
def copied(monkeypatch: pytest.MonkeyPatch) -> CopiedImages:
    registry = CopiedImages()
    monkeypatch.setattr(images, "copy_image", registry.copy_image)
    return registry


def test_check_lists_what_the_run_does(fake, copied):
    project, env = new_project(), f"crplan{uuid.uuid4().hex[:6]}"
    target = make_target(fake, project)
    spec = make_spec(env, options={**make_spec(env).options, "traffic_steps": [50, 100]})

    planned = target.ensure_service(spec, dry_run=True).changes
    assert target.status(env) is None and copied.held == {}, "the dry run changed something"
    done = target.ensure_service(spec)
    assert_same(planned, done.changes)
    assert {c.kind for c in done.changes} >= {
        "artifact_registry_repository",
        "artifact_registry_image",
        "cloud_run_service",
        "cloud_run_invoker",
    }
    assert target.ensure_service(spec).changes == []

    # A release of a new image: a new revision, then the traffic in steps.
    newer = replace(spec, image=spec.image.replace(":1.0", ":1.1"))
    planned_release = target.release(newer, dry_run=True).changes
    assert target.status(env).active.id == done.record.active.id
    released = target.release(newer)
    assert_same(planned_release, released.changes)
    assert {c.kind for c in released.changes} == {
        "artifact_registry_image",
        "cloud_run_revision",
        "cloud_run_traffic",
    }
    assert target.release(newer).changes == []

    planned_rollback = target.rollback(env, dry_run=True).changes
    assert target.status(env).active.id == released.record.active.id
    assert_same(planned_rollback, target.rollback(env).changes)

    planned_removal = target.destroy(env, dry_run=True)
    assert target.status(env) is not None, "the destroy dry run deleted the service"
    removed = target.destroy(env)
    assert_same(planned_removal, removed)
    assert {(c.action, c.kind) for c in removed} == {
        ("delete", "cloud_run_service"),
        ("delete", "artifact_registry_repository"),
    }
    assert target.destroy(env) == []
