"""The service on its own domain (service.domain): the global external Application Load
Balancer of the GCP provider (provision/gcp/load_balancer.py), with the Cloud Run service
as its backend through a serverless network endpoint group.

    forwarding rule :443 (global address) -> target HTTPS proxy -> URL map
        -> backend service (no health check: serverless NEGs take none) -> serverless NEG
           (the service, in its region)                 '-> SSL certificate
    The certificate: Google-managed for service.domain, or service.cert_file + key_file.

Everything is named like the VM load balancer's (mlops-vm-<env>-...) and marked as the
environment's, so the URL map, certificate, proxy, address and rule are converged by the
provider's own code; the NEG and the backend service are the serverless parts. DNS stays
the user's: `dns_record` says which A record to create.
"""

from collections.abc import Callable
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.gcp import load_balancer
from mlops_vm.provision.gcp.context import Context
from mlops_vm.provision.gcp.converge import ApiFix, converge, get_global, patch_fields
from mlops_vm.provision.gcp.converge import delete as delete_global
from mlops_vm.provision.gcp.names import Names, description, owned_by, same_link
from mlops_vm.provision.model import ROLE_LB, CertificateSpec, LoadBalancerSpec
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.cloud_run.apis import CloudRunApis

NEG_KIND = "network_endpoint_group"


def context(apis: CloudRunApis, env: str) -> Context:
    """The provider's context for ENV's load balancer parts, on the target's compute client."""
    return Context(apis.compute, apis.where.project, apis.where.region, Names(env))


def lb_spec(spec: ServiceSpec) -> LoadBalancerSpec:
    """The provider's LB spec for SPEC: a managed certificate for the domain, or the PEM
    files given (checked by load_balancer.check_spec)."""
    if spec.cert_file or spec.key_file:
        certificate = CertificateSpec(cert_file=spec.cert_file, key_file=spec.key_file)
    else:
        certificate = CertificateSpec(managed_domains=(spec.domain or "",))
    return LoadBalancerSpec(env=spec.env, certificate=certificate, backend_protocol="HTTPS")


def neg_name(ctx: Context) -> str:
    return f"{ctx.names.prefix}-neg"


def neg_call(ctx: Context, method: str, **params: Any) -> Callable[[Any], Any]:
    """One regionNetworkEndpointGroups METHOD in the service's region, as a request."""
    return lambda s: getattr(s.regionNetworkEndpointGroups(), method)(
        project=ctx.project, region=ctx.region, **params
    )


def get_neg(ctx: Context) -> dict[str, Any] | None:
    name = neg_name(ctx)
    return ctx.client.get(
        f"read network endpoint group {name}", neg_call(ctx, "get", networkEndpointGroup=name)
    )


def ensure_neg(ctx: Context, service: str, log: ChangeLog) -> str:
    """The serverless NEG of SERVICE, in the service's region (the API refuses another)."""
    name = neg_name(ctx)
    body = {
        "name": name,
        "description": description(ctx.names.env, ROLE_LB),
        "networkEndpointType": "SERVERLESS",
        "cloudRun": {"service": service},
    }
    if get_neg(ctx) is None:  # the service's name is the environment's: never changes
        log.create(
            NEG_KIND,
            name,
            lambda: ctx.client.mutate(
                f"create network endpoint group {name}", neg_call(ctx, "insert", body=body)
            ),
            detail=f"serverless: Cloud Run {service}",
        )
    return ctx.links.regional(ctx.region, "networkEndpointGroups", name)


def delete_neg(ctx: Context) -> bool:
    name = neg_name(ctx)
    return ctx.client.delete(
        f"delete network endpoint group {name}",
        neg_call(ctx, "delete", networkEndpointGroup=name),
    )


def ensure_backend_service(ctx: Context, neg: str, log: ChangeLog) -> str:
    """The backend service on the NEG: no health check, no port name (Cloud Run's)."""
    name = ctx.names.backend_service
    body = {
        "name": name,
        "description": description(ctx.names.env, ROLE_LB),
        "protocol": "HTTPS",
        "loadBalancingScheme": load_balancer.SCHEME,
        "backends": [{"group": neg}],
    }

    def fixes(current: dict[str, Any]) -> list[ApiFix]:
        groups = [b.get("group", "") for b in current.get("backends", [])]
        differs = (
            len(groups) != 1
            or not same_link(groups[0], neg)
            or bool(current.get("healthChecks"))
            or current.get("protocol") != "HTTPS"
        )
        return patch_fields(
            current,
            {**body, "healthChecks": None},
            differs,
            "serverless NEG",
            "loadBalancingScheme",
        )

    converge(ctx, "backend_service", body, log, fixes=fixes, detail="serverless NEG")
    return ctx.links.global_("backendServices", name)


def ensure(apis: CloudRunApis, spec: ServiceSpec, log: ChangeLog) -> str | None:
    """The whole chain in front of SPEC's service, each part after what it points to;
    the global address (None in a dry run that reserves it)."""
    ctx = context(apis, spec.env)
    lb = lb_spec(spec)
    load_balancer.check_spec(lb)
    neg = ensure_neg(ctx, spec.name, log)
    service = ensure_backend_service(ctx, neg, log)
    url_map = load_balancer.ensure_url_map(ctx, lb, service, log)
    certificate = load_balancer.ensure_certificate(ctx, lb, log)
    proxy = load_balancer.ensure_https_proxy(ctx, lb, url_map, certificate, log)
    load_balancer.delete_unused_certificates(ctx, lb, certificate, log)
    address = load_balancer.ensure_address(ctx, lb, log)
    load_balancer.ensure_forwarding_rule(
        ctx, lb, ctx.names.https_rule, address, lb.https_port, proxy, log
    )
    return address


def address_of(apis: CloudRunApis, env: str) -> str | None:
    """ENV's global address, when the environment has one."""
    ctx = context(apis, env)
    found = get_global(ctx, "global_address", ctx.names.address)
    return found.get("address") if owned_by(found, env) else None


def dns_record(domain: str, address: str | None) -> str:
    """The record the user creates at their DNS provider (mlops-vm never touches DNS)."""
    return f"{domain}. A {address or '(the address, once reserved)'}"


def destroy(apis: CloudRunApis, env: str, log: ChangeLog) -> None:
    """Every part, each after what points at it: forwarding rule, proxy, URL map, backend
    service, NEG, certificate, address. Only what carries ENV's marker."""
    ctx = context(apis, env)
    names = ctx.names

    def remove(kind: str, name: str) -> None:
        if owned_by(get_global(ctx, kind, name), env):
            log.delete(kind, name, lambda: delete_global(ctx, kind, name))

    for rule in load_balancer.env_forwarding_rules(ctx, env):
        log.delete(
            "forwarding_rule",
            rule["name"],
            lambda n=rule["name"]: delete_global(ctx, "forwarding_rule", n),
        )
    remove("target_https_proxy", names.https_proxy)
    remove("url_map", names.url_map)
    remove("backend_service", names.backend_service)
    if owned_by(get_neg(ctx), env):
        log.delete(NEG_KIND, neg_name(ctx), lambda: delete_neg(ctx))
    for cert in load_balancer.owned_certificates(ctx, env):
        remove("ssl_certificate", cert["name"])
    remove("global_address", names.address)
