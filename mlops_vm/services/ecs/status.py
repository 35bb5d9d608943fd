"""The service as ECS and the ALB report it: URL, revisions, traffic, health."""

from typing import Any

from mlops_vm.provision.aws import load_balancer
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.services.aws_alb import custom_domain
from mlops_vm.services.base import ServiceRecord
from mlops_vm.services.ecs import names
from mlops_vm.services.ecs.domain import domain_of
from mlops_vm.services.ecs.service import deployment_outcome, find_service
from mlops_vm.services.ecs.task_definition import as_revision


def endpoint(
    ctx: AwsContext, env: str, domain: str | None = None
) -> tuple[str | None, dict[str, Any]]:
    """(the service's URL, what the record says of the ALB: its ARN; on DOMAIN, the ALB's
    own URL and the DNS record that points the domain at it). The domain names the URL."""
    alb = load_balancer.find_by_name(
        ctx, "load_balancer", load_balancer.load_balancer_name(env), env
    )
    if alb is None:
        return None, {"load_balancer_arn": None}
    resources: dict[str, Any] = {"load_balancer_arn": alb["LoadBalancerArn"]}
    if not domain:
        return f"https://{alb['DNSName']}", resources
    resources.update(custom_domain(domain, alb["DNSName"]))
    return f"https://{domain}", resources


def traffic(service: dict[str, Any]) -> dict[str, int]:
    """Revision -> share of the running tasks (ECS splits traffic by tasks while rolling)."""
    deployments = service.get("deployments", [])
    running = sum(d.get("runningCount", 0) for d in deployments)
    if not running:
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
        return {primary["taskDefinition"]: 100} if primary else {}
    return {
        d["taskDefinition"]: round(100 * d.get("runningCount", 0) / running)
        for d in deployments
        if d.get("runningCount")
    }


def health(ctx: AwsContext, service: dict[str, Any]) -> tuple[bool, str]:
    """Healthy: the active revision's deployment is done and every ALB target is healthy."""
    done, state = deployment_outcome(service, service["taskDefinition"])
    problems = [] if done else [state]
    for group in service.get("loadBalancers", []):
        for target in load_balancer.describe_health(ctx, group["targetGroupArn"]):
            status = target.get("TargetHealth", {})
            if status.get("State") != "healthy":
                problems.append(
                    f"target {target['Target']['Id']} {status.get('State')} "
                    f"{status.get('Reason', '')}".strip()
                )
    return not problems, "; ".join(problems)


def service_record(ctx: AwsContext, env: str) -> ServiceRecord | None:
    service = find_service(ctx, env)
    if service is None:
        return None
    url, alb = endpoint(ctx, env, domain_of(service))
    healthy, reason = health(ctx, service)
    previous = names.as_dict(service.get("tags")).get(names.TAG_PREVIOUS)
    return ServiceRecord(
        name=service["serviceName"],
        url=url,
        active=as_revision(ctx, service["taskDefinition"]),
        previous=as_revision(ctx, previous),
        traffic=traffic(service),
        healthy=healthy,
        reason=reason,
        running=service.get("runningCount", 0),
        desired=service.get("desiredCount", 0),
        resources={
            "service_arn": service["serviceArn"],
            "cluster": names.cluster_name(env),
            **alb,
            "target_group_arns": [g["targetGroupArn"] for g in service.get("loadBalancers", [])],
        },
    )
