"""The Cloud Run canary: a new revision's first traffic step judged on Cloud Monitoring's
figures (request_count by response_code_class, request_latencies), promoted or the
traffic put back; and the figures `status` shows per revision. Against the fake (run v2
and monitoring v3 held to their discovery documents; the series recorded as Cloud Run
writes them). No Docker: the revisions' readiness is the fake's."""

import urllib.error
import urllib.request
import uuid
from dataclasses import replace

import pytest

from mlops_vm.commands.status import figures_rows, platform_figures
from mlops_vm.environment.config import CloudRunServiceConfig
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.services import images
from mlops_vm.services.cloud_run import metrics, release
from mlops_vm.services.cloud_run.service import create_service, get_service, serving
from mlops_vm.services.cloud_run.template import revision_template
from mlops_vm.services.settings import CanaryConfig
from tests.fakes.gcp.run_server import FakeCloudRun
from tests.fakes.gcp.testing import local_only_environment
from tests.services.cloud_run_fixtures import (
    REGION,
    CopiedImages,
    make_spec,
    make_target,
    new_project,
)

CANARY_ON = {"enabled": True, "window_s": 0, "min_requests": 50}
CANARY = CanaryConfig(**CANARY_ON)


@pytest.fixture(scope="module")
def fake():
    with local_only_environment(), FakeCloudRun() as server:
        yield server


def two_revisions(fake, env: str):
    """A service whose first revision serves everything and a second, ready, with none."""
    project = new_project()
    target = make_target(fake, project)
    spec = make_spec(env)
    options = CloudRunServiceConfig()
    first = revision_template(spec, options, project, "example/model:1")
    body = {
        "labels": {"mlops-vm-env": spec.env},
        "template": first,
        "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
    }
    service = create_service(target.apis, spec.name, body)
    second = revision_template(spec, options, project, "example/model:2")
    service = release.deploy_candidate(
        target.apis,
        service,
        second,
        readiness_path="/readyz",
        token=None,
        timeout_s=5,
        check_url=False,
    )
    return target, project, spec, service, first["revision"], second["revision"]


def move(target, spec, service, revision):
    return release.move_traffic(
        target.apis,
        service,
        revision,
        [10, 100],
        source="deploy",
        inventory_image=spec.image,
        gate=metrics.gate(target.apis, CANARY, spec.name, revision),
    )


def test_a_canary_that_serves_as_well_is_promoted(fake):
    target, project, spec, service, old, new = two_revisions(fake, f"cc{uuid.uuid4().hex[:6]}")
    fake.record_requests(project, REGION, spec.name, old, ok=891, errors=9, latencies_ms=[40] * 900)
    fake.record_requests(project, REGION, spec.name, new, ok=99, errors=1, latencies_ms=[42] * 100)
    move(target, spec, service, new)
    assert serving(get_service(target.apis, spec.name)) == {new: 100}


def test_a_canary_with_more_errors_is_rolled_back_naming_the_figures(fake):
    target, project, spec, service, old, new = two_revisions(fake, f"cc{uuid.uuid4().hex[:6]}")
    fake.record_requests(project, REGION, spec.name, old, ok=900, errors=0, latencies_ms=[40] * 900)
    fake.record_requests(project, REGION, spec.name, new, ok=88, errors=12, latencies_ms=[40] * 100)
    with pytest.raises(ProvisionError) as failed:
        move(target, spec, service, new)
    assert failed.value.code == ErrorCode.CANARY
    assert "5xx share 12.0% against 0.0%" in failed.value.message
    assert f"traffic is back on revision {old}" in failed.value.message
    assert serving(get_service(target.apis, spec.name)) == {old: 100}


def test_a_slower_canary_is_rolled_back_on_its_p99(fake):
    target, project, spec, service, old, new = two_revisions(fake, f"cc{uuid.uuid4().hex[:6]}")
    fake.record_requests(project, REGION, spec.name, old, ok=900, errors=0, latencies_ms=[40] * 900)
    fake.record_requests(
        project, REGION, spec.name, new, ok=100, errors=0, latencies_ms=[400] * 100
    )
    with pytest.raises(ProvisionError) as failed:
        move(target, spec, service, new)
    assert "p99 latency" in failed.value.message
    assert serving(get_service(target.apis, spec.name)) == {old: 100}


def test_status_figures_per_revision_from_cloud_monitoring(fake):
    target, project, spec, _service, old, _new = two_revisions(fake, f"cc{uuid.uuid4().hex[:6]}")
    # 600 requests in the last minute, 6 of them 5xx; half at 10 ms, half at 100 ms.
    fake.record_requests(
        project, REGION, spec.name, old, ok=594, errors=6, latencies_ms=[10] * 300 + [100] * 300
    )
    figures = target.figures(spec.env, 60)
    assert set(figures) == {f"revision {old}"}
    found = figures[f"revision {old}"]
    assert (found.requests, found.errors, found.seconds) == (600, 6, 60)
    assert found.rate == 10 and found.error_share == 0.01
    # Interpolated inside the 1.4-growth buckets that hold 10 ms and 100 ms.
    assert 7.5 < found.p50_ms <= 10.6 and 79.4 < found.p99_ms <= 111.2
    assert found.mean_ms == 55  # the distributions' own mean
    printed = dict(figures_rows(platform_figures(target.figures, spec.env, 60)))
    assert printed[f"revision {old}"] == "60 s: 10.0 req/s, 5xx 1.0%, p50 10 ms, p99 110 ms"
    # Another service's revisions and another project's are not counted.
    other = make_target(fake, new_project())
    assert other.figures(spec.env, 60) == {}


def test_time_series_requests_are_held_to_the_contract(fake):
    """Contract: the fake refuses what Cloud Monitoring refuses (no metric.type, a period
    under 60s, a reducer without an aligner) and parameters the document does not have."""
    base = fake.endpoint_url + f"monitoring/v3/projects/{new_project()}/timeSeries"
    interval = "interval.endTime=2026-12-05T10:00:00Z"
    bad = [
        f'?filter=resource.type%3D"x"&{interval}',
        f'?filter=metric.type%3D"x"&{interval}&aggregation.alignmentPeriod=10s'
        "&aggregation.perSeriesAligner=ALIGN_DELTA",
        f'?filter=metric.type%3D"x"&{interval}&aggregation.alignmentPeriod=60s'
        "&aggregation.crossSeriesReducer=REDUCE_SUM",
        f'?filter=metric.type%3D"x"&{interval}&colour=blue',
    ]
    for query in bad:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + query)
        assert refused.value.code == 400, query


@pytest.fixture
def copied(monkeypatch: pytest.MonkeyPatch) -> CopiedImages:
    registry = CopiedImages()
    monkeypatch.setattr(images, "copy_image", registry.copy_image)
    return registry


@pytest.mark.parametrize(("new_errors", "promoted"), [(1, True), (15, False)])
def test_a_release_with_the_canary_on(fake, copied, new_errors, promoted):
    """The target's own release: `--check` names the canary, the revision it plans is the
    one judged, and the release ends promoted or exits with the figures."""
    project, env = new_project(), f"cc{uuid.uuid4().hex[:6]}"
    target = make_target(fake, project)
    options = {**make_spec(env).options, "traffic_steps": [10, 100], "canary": CANARY_ON}
    spec = make_spec(env, options=options)
    old = target.ensure_service(spec).record.active.id
    newer = replace(spec, image=spec.image.replace(":1.0", ":1.1"))
    planned = target.release(newer, dry_run=True).changes
    new = next(c.name for c in planned if c.kind == "cloud_run_revision")
    traffic = next(c for c in planned if c.kind == "cloud_run_traffic")
    assert "canary judged over 0s" in traffic.detail
    fake.record_requests(project, REGION, spec.name, old, ok=900, errors=0, latencies_ms=[30] * 900)
    fake.record_requests(
        project,
        REGION,
        spec.name,
        new,
        ok=100 - new_errors,
        errors=new_errors,
        latencies_ms=[30] * 100,
    )
    if promoted:
        result = target.release(newer)
        assert target.status(env).traffic == {new: 100}
        assert any(n.startswith(f"canary revision {new} held: 100 requests") for n in result.notes)
    else:
        with pytest.raises(ProvisionError) as failed:
            target.release(newer)
        assert failed.value.code == ErrorCode.CANARY and "5xx share 15.0%" in str(failed.value)
        assert target.status(env).traffic == {old: 100}
