"""service.lambda.endpoint: alb against moto in server mode: the AWS provider's ALB with a
Lambda target group on the alias, the HTTPS listener with the imported certificate, the
permission for Elastic Load Balancing to invoke the alias, health checks on the readiness
path; `--check` equals the run, a second run changes nothing, a release and a rollback
move the alias while the target stays on it, destroy removes it all.

Contract checks (moto): moto runs no image function, so the releases' readiness invokes
are answered by the same stand-ins as in test_aws_plan.py (the adapter's ALB event
handling is run for real in test_lambda_adapter.py)."""

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from mlops_vm.provision import ErrorCode, ProvisionError
from mlops_vm.services import ServiceSpec
from mlops_vm.services.lambda_ import limits
from tests.providers.cloud_fixtures import self_signed_certificate
from tests.services.test_aws_plan import (
    aws_environment,
    boto,
    converging,
    destroying,
    keys,
    lam,
    lambda_spec,
    moto_endpoint,
    plan_then_run,
    registry,
)

__all__ = ["aws_environment", "boto", "lam", "lambda_spec", "moto_endpoint", "registry"]

DOMAIN = "model.example.test"


@pytest.fixture
def alb_spec(lambda_spec: ServiceSpec, tmp_path: Path) -> ServiceSpec:
    cert_file, key_file = self_signed_certificate(tmp_path, DOMAIN)
    return replace(
        lambda_spec,
        domain=DOMAIN,
        cert_file=cert_file,
        key_file=key_file,
        readiness_path="/readyz",
        options={**lambda_spec.options, "endpoint": "alb"},
    )


def test_a_domain_is_refused_for_the_function_url_and_taken_for_the_alb(alb_spec):
    with pytest.raises(ProvisionError) as raised:
        limits.check_spec(alb_spec, "url")
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "service.lambda.endpoint: alb" in raised.value.hint
    limits.check_spec(alb_spec, "alb")
    with pytest.raises(ProvisionError, match=r"service\.access"):
        limits.check_spec(replace(alb_spec, access="authenticated"), "alb")


def alias_behind_the_alb(boto: Callable, spec: ServiceSpec) -> dict:
    """What the ALB holds for SPEC's function, read back from moto."""
    elb = boto("elbv2")
    (group,) = [
        g for g in elb.describe_target_groups()["TargetGroups"] if g["TargetType"] == "lambda"
    ]
    targets = elb.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
    policy = boto("lambda").get_policy(FunctionName=spec.name, Qualifier="live")["Policy"]
    return {
        "group": group,
        "targets": [t["Target"]["Id"] for t in targets["TargetHealthDescriptions"]],
        "statements": json.loads(policy)["Statement"],
        "alias": boto("lambda").get_alias(FunctionName=spec.name, Name="live"),
    }


def test_the_alias_behind_an_alb(lam, alb_spec, boto, registry):
    made = plan_then_run(converging(lam, alb_spec))
    kinds = {c.kind for c in made}
    assert {"vpc", "load_balancer", "target_group", "listener", "certificate"} <= kinds
    assert {"lambda_alias", "lambda_permission", "target"} <= kinds
    assert "function_url" not in kinds  # the ALB is the endpoint

    found = alias_behind_the_alb(boto, alb_spec)
    group, alias_arn = found["group"], found["alias"]["AliasArn"]
    assert group["HealthCheckEnabled"] is True
    assert group["HealthCheckPath"] == "/readyz"
    assert found["targets"] == [alias_arn]
    (permission,) = [s for s in found["statements"] if s["Sid"] == "mlops-vm-alb"]
    assert permission["Principal"] == {"Service": "elasticloadbalancing.amazonaws.com"}
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["Condition"]["ArnLike"]["AWS:SourceArn"] == group["TargetGroupArn"]

    elb, acm = boto("elbv2"), boto("acm")
    (balancer,) = elb.describe_load_balancers()["LoadBalancers"]
    listeners = {
        listener["Port"]: listener
        for listener in elb.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])[
            "Listeners"
        ]
    }
    (certificate,) = acm.list_certificates()["CertificateSummaryList"]
    https = listeners[443]
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"][0]["CertificateArn"] == certificate["CertificateArn"]
    assert https["DefaultActions"][0]["TargetGroupArn"] == group["TargetGroupArn"]
    assert lam.status(alb_spec.env).url == f"https://{DOMAIN}"

    assert lam.ensure_service(alb_spec).changes == []
    assert lam.ensure_service(alb_spec, dry_run=True).changes == []

    # A release moves the alias; the ALB's target stays the alias.
    release = replace(alb_spec, image=alb_spec.image.replace(":1.0", ":1.1"), source="deploy")
    made = plan_then_run(converging(lam, release))
    assert {c.kind for c in made} == {"ecr_image", "lambda_function", "lambda_version"} | {
        "lambda_alias"
    }
    after_release = alias_behind_the_alb(boto, alb_spec)
    assert after_release["alias"]["FunctionVersion"] == "2"
    assert after_release["targets"] == [alias_arn]

    rolled = lam.rollback(alb_spec.env)
    assert keys(rolled.changes) == [("update", "lambda_alias", f"{alb_spec.name}:live")]
    after_rollback = alias_behind_the_alb(boto, alb_spec)
    assert after_rollback["alias"]["FunctionVersion"] == "1"
    assert after_rollback["targets"] == [alias_arn]
    assert after_rollback["statements"] == found["statements"]

    deleted = plan_then_run(destroying(lam, alb_spec.env))
    assert {"lambda_function", "load_balancer", "target_group", "certificate", "vpc"} <= {
        c.kind for c in deleted
    }
    assert lam.destroy(alb_spec.env) == []
    assert elb.describe_load_balancers()["LoadBalancers"] == []
    assert elb.describe_target_groups()["TargetGroups"] == []
    assert acm.list_certificates()["CertificateSummaryList"] == []


def test_switching_the_endpoint_removes_the_other_one(lam, alb_spec, boto, registry):
    """url -> alb: the function URL and its public permission go; alb -> url: the ALB,
    its network and the load balancer's permission go. Each planned as it is then made."""
    url_spec = replace(alb_spec, domain=None, cert_file=None, key_file=None)
    url_spec = replace(url_spec, options={**alb_spec.options, "endpoint": "url"})
    lam.ensure_service(url_spec)
    made = plan_then_run(converging(lam, alb_spec))
    assert ("delete", "function_url") in {(c.action, c.kind) for c in made}
    assert ("delete", "lambda_permission") in {(c.action, c.kind) for c in made}
    functions = boto("lambda")
    with pytest.raises(functions.exceptions.ResourceNotFoundException):
        functions.get_function_url_config(FunctionName=alb_spec.name, Qualifier="live")
    assert lam.ensure_service(alb_spec).changes == []

    made = plan_then_run(converging(lam, url_spec))
    assert {("create", "function_url"), ("delete", "load_balancer")} <= {
        (c.action, c.kind) for c in made
    }
    assert boto("elbv2").describe_load_balancers()["LoadBalancers"] == []
    statements = json.loads(
        boto("lambda").get_policy(FunctionName=alb_spec.name, Qualifier="live")["Policy"]
    )["Statement"]
    assert [s["Sid"] for s in statements] == ["mlops-vm-public-url"]
    assert lam.ensure_service(url_spec).changes == []
    assert lam.destroy(alb_spec.env)


def test_a_changed_domain_is_what_status_prints(lam, alb_spec, boto, registry):
    lam.ensure_service(alb_spec)
    moved = replace(alb_spec, domain="api.example.test")
    assert keys(plan_then_run(converging(lam, moved))) == [
        ("update", "lambda_function", alb_spec.name)
    ]
    record = lam.status(alb_spec.env)
    balancer = boto("elbv2").describe_load_balancers()["LoadBalancers"][0]
    assert record.url == "https://api.example.test"
    # The ALB's own URL and the record the user creates for the domain.
    assert record.resources["platform_url"] == f"https://{balancer['DNSName']}"
    assert record.resources["dns_record"] == {
        "name": "api.example.test",
        "type": "CNAME",
        "value": balancer["DNSName"],
    }
    plan_then_run(converging(lam, replace(alb_spec, domain=None)))
    record = lam.status(alb_spec.env)
    assert record.url == f"https://{balancer['DNSName']}"
    assert "dns_record" not in record.resources
    assert lam.ensure_service(replace(alb_spec, domain=None)).changes == []
    lam.destroy(alb_spec.env)
