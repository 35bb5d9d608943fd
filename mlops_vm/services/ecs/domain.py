"""service.domain on ECS: the ALB answers for the domain (its certificate covers it) and
the user points the domain at the ALB with a CNAME (mlops-vm never changes DNS).

The service's mlops-vm/domain tag records the domain, so that status names the endpoint
https://<domain> and says which DNS record to create from the cloud alone, without the
environment file; a domain removed from the environment removes the tag."""

from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs import names


def domain_of(service: dict[str, Any]) -> str | None:
    """The domain SERVICE (as described, with its tags) answers for, None when none."""
    return names.as_dict(service.get("tags")).get(names.TAG_DOMAIN) or None


def creation_tags(spec: ServiceSpec) -> dict[str, str]:
    """The tags a new service carries besides the environment's: the domain, if any."""
    return {**spec.tags, **({names.TAG_DOMAIN: spec.domain} if spec.domain else {})}


def ensure_domain_tag(
    ctx: AwsContext, log: ChangeLog, spec: ServiceSpec, service: dict[str, Any]
) -> None:
    """SERVICE's domain tag as SPEC wants it: set or changed to service.domain, or
    removed when the environment no longer names a domain."""
    current = domain_of(service)
    if current == spec.domain:
        return
    if spec.domain:
        call, doing = "tag_resource", "record the domain on the service"
        change: dict[str, Any] = {"tags": [{"key": names.TAG_DOMAIN, "value": spec.domain}]}
    else:
        call, doing = "untag_resource", "remove the domain from the service"
        change = {"tagKeys": [names.TAG_DOMAIN]}
    log.update(
        "ecs_service",
        service["serviceName"],
        lambda: ctx.call("ecs", call, doing, resourceArn=service["serviceArn"], **change),
        f"domain {current or 'none'} -> {spec.domain or 'none'}",
    )
