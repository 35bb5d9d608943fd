"""Cloud Run on the user's domain (issue 25): service.domain puts the global external HTTPS
load balancer in front of the service (serverless NEG, backend service without a health
check, URL map, HTTPS proxy, certificate, global address, forwarding rule), against the
Cloud Run fake with compute v1 on the same root (request bodies and paths held to the
compute discovery document). `--check` lists what the run does, a second run changes
nothing, destroy removes it all in dependency order; the fake refuses what the API does."""

import uuid
from dataclasses import replace

import pytest

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.services import images
from mlops_vm.services.cloud_run import load_balancer
from mlops_vm.services.cloud_run.options import INTERNAL_LB
from tests.check_equals_run import assert_same
from tests.fakes.gcp.run_server import FakeCloudRun
from tests.fakes.gcp.testing import local_only_environment
from tests.providers.cloud_fixtures import self_signed_certificate
from tests.services.cloud_run_fixtures import (
    REGION,
    CopiedImages,
    make_spec,
    make_target,
    new_project,
)

DOMAIN = "api.example.com"
LB_KINDS = {
    "network_endpoint_group",
    "backend_service",
    "url_map",
    "ssl_certificate",
    "target_https_proxy",
    "global_address",
    "forwarding_rule",
}
DESTROY_ORDER = [
    "forwarding_rule",
    "target_https_proxy",
    "url_map",
    "backend_service",
    "network_endpoint_group",
    "ssl_certificate",
    "global_address",
    "cloud_run_service",
    "artifact_registry_repository",
]


@pytest.fixture(scope="module")
def fake():
    with local_only_environment(), FakeCloudRun(polls_to_done=2) as server:
        yield server


@pytest.fixture(autouse=True)
def copied(monkeypatch: pytest.MonkeyPatch) -> CopiedImages:
    registry = CopiedImages()
    monkeypatch.setattr(images, "copy_image", registry.copy_image)
    return registry


def compute(fake: FakeCloudRun, project: str, collection: str = "") -> list[dict]:
    """PROJECT's compute resources (of COLLECTION, or all), as the API shows them."""
    with fake.compute.store.lock:
        return [
            fake.compute.render(path, resource)
            for path, resource in fake.compute.store.resources.items()
            if path.startswith(f"projects/{project}/")
            and (not collection or f"/{collection}/" in path)
        ]


def converge_and_destroy(fake: FakeCloudRun, project: str, spec) -> dict:
    """Check, run, run again, status, destroy's check, destroy, destroy again: what the
    compute fake held once the chain was up."""
    target = make_target(fake, project)
    target.validate(spec)
    planned = target.ensure_service(spec, dry_run=True).changes
    assert compute(fake, project) == [], "the dry run created load balancer parts"
    done = target.ensure_service(spec)
    assert_same(planned, done.changes)
    assert {c.kind for c in done.changes} >= LB_KINDS
    assert target.ensure_service(spec).changes == []

    address = compute(fake, project, "addresses")[0]["address"]
    for record in (done.record, target.status(spec.env)):
        assert record.url == f"https://{DOMAIN}"
        assert record.resources["platform_url"] == fake.service(project, REGION, spec.name)["uri"]
        assert record.resources["dns_record"] == {"name": DOMAIN, "type": "A", "value": address}
    assert any(DOMAIN in note and address in note for note in done.notes), done.notes
    held = {c: compute(fake, project, c) for c in ("networkEndpointGroups", "backendServices")}
    held["sslCertificates"] = compute(fake, project, "sslCertificates")
    held["service"] = fake.service(project, REGION, spec.name)

    planned_removal = target.destroy(spec.env, dry_run=True)
    assert compute(fake, project, "forwardingRules"), "the destroy dry run deleted the rule"
    removed = target.destroy(spec.env)
    assert_same(planned_removal, removed)
    assert [c.kind for c in removed] == DESTROY_ORDER
    assert compute(fake, project) == []
    assert target.destroy(spec.env) == []
    return held


def assert_serverless_chain(held: dict, service: str) -> None:
    (neg,) = held["networkEndpointGroups"]
    assert neg["networkEndpointType"] == "SERVERLESS"
    assert neg["cloudRun"] == {"service": service}
    assert neg["region"].endswith(f"/regions/{REGION}")
    (backend,) = held["backendServices"]
    assert "healthChecks" not in backend
    assert [b["group"] for b in backend["backends"]] == [neg["selfLink"]]
    assert backend["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert held["service"]["ingress"] == INTERNAL_LB


def test_a_domain_puts_the_load_balancer_with_a_managed_certificate_in_front(fake):
    project, env = new_project(), f"crdom{uuid.uuid4().hex[:6]}"
    spec = make_spec(env, domain=DOMAIN)
    held = converge_and_destroy(fake, project, spec)
    assert_serverless_chain(held, spec.name)
    (certificate,) = held["sslCertificates"]
    assert certificate["type"] == "MANAGED"
    assert certificate["managed"]["domains"] == [DOMAIN]


def test_a_provided_certificate_is_uploaded(fake, tmp_path):
    project, env = new_project(), f"crpem{uuid.uuid4().hex[:6]}"
    cert_file, key_file = self_signed_certificate(tmp_path, DOMAIN)
    spec = make_spec(env, domain=DOMAIN, cert_file=cert_file, key_file=key_file)
    held = converge_and_destroy(fake, project, spec)
    assert_serverless_chain(held, spec.name)
    (certificate,) = held["sslCertificates"]
    assert certificate["type"] == "SELF_MANAGED"
    assert certificate["subjectAlternativeNames"] == [DOMAIN]


def test_removing_the_domain_removes_the_load_balancer_and_opens_ingress(fake):
    project, env = new_project(), f"crnodom{uuid.uuid4().hex[:6]}"
    target = make_target(fake, project)
    spec = make_spec(env, domain=DOMAIN)
    target.ensure_service(spec)
    plain = replace(spec, domain=None)
    planned = target.ensure_service(plain, dry_run=True).changes
    done = target.ensure_service(plain)
    assert_same(planned, done.changes)
    assert {c.kind for c in done.changes if c.action == "delete"} == LB_KINDS
    assert compute(fake, project) == []
    assert fake.service(project, REGION, spec.name)["ingress"] == "INGRESS_TRAFFIC_ALL"
    assert done.record.url == fake.service(project, REGION, spec.name)["uri"]
    asked = len(fake.compute.calls)
    assert target.ensure_service(plain).changes == []
    assert target.status(env).url == done.record.url
    assert target.destroy(env) != []
    assert len(fake.compute.calls) == asked, "a service without a domain asked Compute Engine"


def test_the_fake_refuses_a_serverless_neg_in_another_region(fake):
    project, env = new_project(), f"crneg{uuid.uuid4().hex[:6]}"
    target = make_target(fake, project)
    target.ensure_service(make_spec(env))
    ctx = load_balancer.context(target.apis, env)
    with pytest.raises(ProvisionError) as refused:
        ctx.client.mutate(
            "create a NEG elsewhere",
            lambda s: s.regionNetworkEndpointGroups().insert(
                project=project,
                region="us-central1",
                body={
                    "name": "elsewhere",
                    "networkEndpointType": "SERVERLESS",
                    "cloudRun": {"service": f"mlops-vm-{env}"},
                },
            ),
        )
    assert refused.value.code == ErrorCode.INVALID_INPUT
    assert "does not exist in region 'us-central1'" in str(refused.value)
    target.destroy(env)


def test_the_fake_refuses_a_health_check_on_a_serverless_neg(fake):
    project, env = new_project(), f"crhc{uuid.uuid4().hex[:6]}"
    target = make_target(fake, project)
    spec = make_spec(env, domain=DOMAIN)
    target.ensure_service(spec)
    ctx = load_balancer.context(target.apis, env)
    neg = ctx.links.regional(REGION, "networkEndpointGroups", load_balancer.neg_name(ctx))
    check = compute_health_check(ctx)
    with pytest.raises(ProvisionError) as refused:
        ctx.client.mutate(
            "create a checked backend service",
            lambda s: s.backendServices().insert(
                project=project,
                body={
                    "name": "checked",
                    "loadBalancingScheme": "EXTERNAL_MANAGED",
                    "healthChecks": [check],
                    "backends": [{"group": neg}],
                },
            ),
        )
    assert refused.value.code == ErrorCode.INVALID_INPUT
    assert "cannot have a healthcheck with Serverless network endpoint group" in str(refused.value)
    ctx.client.delete(
        "delete the health check",
        lambda s: s.healthChecks().delete(project=project, healthCheck="hc"),
    )
    target.destroy(env)


def compute_health_check(ctx) -> str:
    ctx.client.mutate(
        "create a health check",
        lambda s: s.healthChecks().insert(
            project=ctx.project,
            body={"name": "hc", "type": "HTTPS", "httpsHealthCheck": {"port": 443}},
        ),
    )
    return ctx.links.global_("healthChecks", "hc")
