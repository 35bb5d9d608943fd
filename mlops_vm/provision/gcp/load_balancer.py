"""Global external Application Load Balancer (EXTERNAL_MANAGED) in front of the fleet.

    forwarding rule :443 -> target HTTPS proxy -> URL map -> backend service -> instance groups
                                 |                                  '-> health check (/healthz)
                                 '-> SSL certificate (Google-managed or self-managed)
    forwarding rule :80  -> target HTTP proxy  -> URL map (redirect to HTTPS)
    both rules on one reserved global address.

Backends: the MIG's instance group (scaling-group mode), or one unmanaged instance group per
zone holding the fleet's instances (fleet mode), each with the named port `https`.
Certificates are immutable, so each one is named with a hash of its content; a new one is
attached to the proxy before the old one is deleted.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from mlops_vm.plan import ChangeLog
from mlops_vm.provision import model
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.gcp.context import Context
from mlops_vm.provision.gcp.converge import (
    ApiFix,
    converge,
    create,
    delete,
    get_global,
    label_fix,
    patch_fields,
)
from mlops_vm.provision.gcp.errors import PROVIDER
from mlops_vm.provision.gcp.names import (
    basename,
    description,
    digest,
    label_filter,
    labels,
    path_of,
    same_link,
)
from mlops_vm.provision.gcp.scaling_group import NAMED_PORT

SCHEME = "EXTERNAL_MANAGED"


def lb_part(spec: model.LoadBalancerSpec, name: str, **fields: Any) -> dict[str, Any]:
    """The body of a part of SPEC's load balancer: NAME, the load balancer's description
    (the environment's, for what lists the project) and FIELDS."""
    return {"name": name, "description": description(spec.env, model.ROLE_LB), **fields}


def _invalid(message: str, hint: str) -> ProvisionError:
    return ProvisionError(
        ErrorCode.INVALID_INPUT,
        message,
        hint=hint,
        provider=PROVIDER,
        operation="check load balancer spec",
    )


def check_spec(spec: model.LoadBalancerSpec, service_port: int | None = None) -> None:
    """What the LB spec must say before anything is created."""
    cert = spec.certificate
    managed = bool(cert.managed_domains)
    uploaded = bool(cert.cert_file or cert.key_file)
    if cert.arn or cert.key_vault_secret_id:
        raise _invalid(
            "CertificateSpec.arn / key_vault_secret_id are not GCP certificates",
            "use managed_domains (Google-managed) or cert_file + key_file",
        )
    if managed == uploaded:
        raise _invalid(
            "the GCP load balancer needs exactly one certificate source",
            "set CertificateSpec.managed_domains, or cert_file and key_file",
        )
    if uploaded:
        for label, path in (("cert_file", cert.cert_file), ("key_file", cert.key_file)):
            if not path or not Path(path).is_file():
                raise _invalid(
                    f"CertificateSpec.{label} {path!r} is not a readable file",
                    "point cert_file/key_file at PEM files",
                )
        if "BEGIN CERTIFICATE" not in Path(cert.cert_file or "").read_text():
            raise _invalid(
                f"{cert.cert_file} holds no PEM certificate",
                "cert_file must be a PEM certificate (chain)",
            )
    if service_port is not None and spec.backend_port != service_port:
        raise _invalid(
            f"LoadBalancerSpec.backend_port {spec.backend_port} differs from the fleet's "
            f"service_port {service_port}",
            "the LB reaches the instances on the fleet's service_port: make them equal",
        )


# -- backends ------------------------------------------------------------------------------


def group_members(ctx: Context, zone: str, name: str) -> list[str]:
    items = ctx.client.list_post(
        f"list instances of instance group {name}",
        "instanceGroups",
        "listInstances",
        "items",
        zone=zone,
        instanceGroup=name,
        body={"instanceState": "ALL"},
    )
    return [item["instance"] for item in items]


def owned_fleet_groups(ctx: Context, env: str) -> list[dict[str, Any]]:
    """The environment's unmanaged instance groups (MIGs' groups are not ours by name)."""
    return ctx.list_owned("instanceGroups", "instance groups", env, aggregated=True)


def ensure_fleet_groups(
    ctx: Context, fleet: model.FleetResult, role: str, port: int, log: ChangeLog
) -> tuple[list[str], list[dict[str, Any]]]:
    """One unmanaged group per zone holding exactly the fleet's instances.
    Returns the groups' links and the groups no longer needed (deleted by the caller once
    the backend service lets go of them)."""
    name = ctx.names.instance_group(role)
    wanted: dict[str, list[str]] = {}
    # The fleet step's new instances are listed already, except in a dry run: once each.
    members = {(i.name, i.zone or "") for i in fleet.instances}
    members |= {(i["name"], i["zone"]) for i in fleet.network.get("created", [])}
    for instance_name, zone in sorted(members):
        wanted.setdefault(zone, []).append(ctx.links.zonal(zone, "instances", instance_name))
    existing = {
        basename(g["zone"]): g for g in owned_fleet_groups(ctx, ctx.names.env) if g["name"] == name
    }
    ports = [{"name": NAMED_PORT, "port": port}]
    links = []
    for zone in sorted(wanted):
        group = existing.get(zone)
        links.append(ctx.links.zonal(zone, "instanceGroups", name))
        if group is None:
            body = {
                "name": name,
                "description": description(ctx.names.env, role),
                "network": fleet.network.get("network"),
                "namedPorts": ports,
            }
            group_call(ctx, log, "create", name, zone, "insert", zone, body=body)
            current_members: list[str] = []
        else:
            if group.get("namedPorts", []) != ports:
                _set_named_ports(ctx, zone, group, ports, log)
            current_members = group_members(ctx, zone, name)
        _converge_members(ctx, zone, name, current_members, wanted[zone], log)
    stale = [group for zone, group in existing.items() if zone not in wanted]
    return links, stale


def _set_named_ports(
    ctx: Context, zone: str, group: dict[str, Any], ports: list[dict[str, Any]], log: ChangeLog
) -> None:
    name = group["name"]
    body = {"namedPorts": ports, "fingerprint": group.get("fingerprint")}
    detail = f"{zone}: named port {NAMED_PORT}:{ports[0]['port']}"
    group_call(ctx, log, "update", name, zone, "setNamedPorts", detail, body=body)


def _converge_members(
    ctx: Context, zone: str, name: str, current: list[str], wanted: list[str], log: ChangeLog
) -> None:
    add = [link for link in wanted if not any(same_link(link, c) for c in current)]
    remove = [link for link in current if not any(same_link(link, w) for w in wanted)]
    if add:
        change_members(ctx, zone, name, "add", add, log)
    if remove:
        change_members(ctx, zone, name, "remove", remove, log)


def group_request(
    ctx: Context, name: str, zone: str, method: str, **params: Any
) -> Callable[[], Any]:
    """One instanceGroups METHOD on the unmanaged group NAME in ZONE, as a call to make
    (deleting what is gone already counts as done)."""
    if method != "insert":
        params["instanceGroup"] = name
    run = ctx.client.delete if method == "delete" else ctx.client.mutate
    return lambda: run(
        f"{method} instance group {name} in {zone}",
        lambda s: getattr(s.instanceGroups(), method)(project=ctx.project, zone=zone, **params),
    )


def group_call(
    ctx: Context,
    log: ChangeLog,
    action: Literal["create", "update", "delete"],
    name: str,
    zone: str,
    method: str,
    detail: str,
    **params: Any,
) -> None:
    """group_request, logged as ACTION on the instance group."""
    log.apply(
        action, "instance_group", name, group_request(ctx, name, zone, method, **params), detail
    )


def members_request(
    ctx: Context, zone: str, name: str, verb: str, links: list[str]
) -> Callable[[], Any]:
    """Add LINKS to, or remove them from, the unmanaged group NAME (verb "add" or "remove")."""
    body = {"instances": [{"instance": link} for link in links]}
    return group_request(ctx, name, zone, f"{verb}Instances", body=body)


def change_members(
    ctx: Context, zone: str, name: str, verb: str, links: list[str], log: ChangeLog
) -> None:
    """members_request, logged as an update of the group."""
    detail = f"{zone}: {verb} {', '.join(basename(link) for link in links)}"
    log.update("instance_group", name, members_request(ctx, zone, name, verb, links), detail)


def delete_groups(ctx: Context, groups: list[dict[str, Any]], log: ChangeLog) -> None:
    for group in groups:
        zone = basename(group["zone"])
        group_call(ctx, log, "delete", group["name"], zone, "delete", zone)


# -- health check, backend service, URL maps -------------------------------------------------


def ensure_health_check(ctx: Context, spec: model.LoadBalancerSpec, log: ChangeLog) -> str:
    name = ctx.names.health_check
    protocol = spec.backend_protocol
    detail_key = "httpsHealthCheck" if protocol == "HTTPS" else "httpHealthCheck"
    probe = {"portSpecification": "USE_SERVING_PORT", "requestPath": spec.health_path}
    body = lb_part(
        spec,
        name,
        type=protocol,
        checkIntervalSec=10,
        timeoutSec=5,
        healthyThreshold=2,
        unhealthyThreshold=3,
        **{detail_key: probe},
    )

    def fixes(current: dict[str, Any]) -> list[ApiFix]:
        probe_now = current.get(detail_key) or {}
        differs = current.get("type") != protocol or any(
            probe_now.get(k) != v for k, v in probe.items()
        )
        return patch_fields(current, body, differs, f"{protocol} {spec.health_path}")

    converge(ctx, "health_check", body, log, fixes=fixes, detail=f"{protocol} {spec.health_path}")
    return ctx.links.global_("healthChecks", name)


def _backend(group: str, rate_per_instance: float | None) -> dict[str, Any]:
    if rate_per_instance is None:
        return {
            "group": group,
            "balancingMode": "UTILIZATION",
            "maxUtilization": 0.8,
            "capacityScaler": 1.0,
        }
    return {
        "group": group,
        "balancingMode": "RATE",
        "maxRatePerInstance": rate_per_instance,
        "capacityScaler": 1.0,
    }


def _backends_key(backends: list[dict[str, Any]]) -> list[tuple[str, str, float]]:
    """What decides whether the backends changed, however the API spells the links."""
    return sorted(
        (path_of(b["group"]), b.get("balancingMode", ""), float(b.get("maxRatePerInstance") or 0))
        for b in backends
    )


def ensure_backend_service(
    ctx: Context,
    spec: model.LoadBalancerSpec,
    groups: list[str],
    health_check: str,
    rate_per_instance: float | None,
    log: ChangeLog,
) -> str:
    name = ctx.names.backend_service
    body = lb_part(
        spec,
        name,
        protocol=spec.backend_protocol,
        portName=NAMED_PORT,
        timeoutSec=30,
        healthChecks=[health_check],
        loadBalancingScheme=SCHEME,
        connectionDraining={"drainingTimeoutSec": spec.drain_seconds},
        backends=[_backend(group, rate_per_instance) for group in groups],
    )

    def fixes(current: dict[str, Any]) -> list[ApiFix]:
        differs = (
            current.get("protocol") != body["protocol"]
            or current.get("portName") != body["portName"]
            or [basename(h) for h in current.get("healthChecks", [])] != [basename(health_check)]
            or (current.get("connectionDraining") or {}).get("drainingTimeoutSec")
            != spec.drain_seconds
            or _backends_key(current.get("backends", [])) != _backends_key(body["backends"])
        )
        detail = f"{len(groups)} backend group(s)"
        return patch_fields(current, body, differs, detail, "loadBalancingScheme")

    converge(
        ctx, "backend_service", body, log, fixes=fixes, detail=f"{len(groups)} backend group(s)"
    )
    return ctx.links.global_("backendServices", name)


def ensure_url_map(ctx: Context, spec: model.LoadBalancerSpec, service: str, log: ChangeLog) -> str:
    name = ctx.names.url_map
    body = lb_part(spec, name, defaultService=service)

    def fixes(current: dict[str, Any]) -> list[ApiFix]:
        differs = not same_link(current.get("defaultService"), service)
        return patch_fields(current, body, differs, f"default service {basename(service)}")

    converge(ctx, "url_map", body, log, fixes=fixes)
    return ctx.links.global_("urlMaps", name)


REDIRECT = {
    "httpsRedirect": True,
    "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT",
    "stripQuery": False,
}


def ensure_redirect_url_map(ctx: Context, spec: model.LoadBalancerSpec, log: ChangeLog) -> str:
    name = ctx.names.redirect_url_map
    body = lb_part(spec, name, defaultUrlRedirect=REDIRECT)

    def fixes(current: dict[str, Any]) -> list[ApiFix]:
        differs = current.get("defaultUrlRedirect") != REDIRECT or bool(
            current.get("defaultService")
        )
        # defaultService None: a URL map that once served traffic stops doing so.
        return patch_fields(current, {**body, "defaultService": None}, differs, "HTTP -> HTTPS")

    converge(ctx, "url_map", body, log, fixes=fixes, detail="HTTP -> HTTPS")
    return ctx.links.global_("urlMaps", name)


# -- certificate and proxies -------------------------------------------------------------------


def certificate_body(ctx: Context, spec: model.LoadBalancerSpec) -> dict[str, Any]:
    cert = spec.certificate
    if cert.managed_domains:
        domains = sorted(cert.managed_domains)
        return lb_part(
            spec,
            ctx.names.certificate(digest({"managed": domains})),
            type="MANAGED",
            managed={"domains": domains},
        )
    certificate = Path(cert.cert_file or "").read_text()
    private_key = Path(cert.key_file or "").read_text()
    return lb_part(
        spec,
        ctx.names.certificate(digest({"certificate": certificate, "key": private_key})),
        type="SELF_MANAGED",
        certificate=certificate,
        privateKey=private_key,
    )


def owned_certificates(ctx: Context, env: str) -> list[dict[str, Any]]:
    found = ctx.list_owned(
        "sslCertificates", "SSL certificates", env, name_prefix=f"{ctx.names.prefix}-cert-"
    )
    return [c for c in found if ctx.names.is_certificate(c["name"])]


def ensure_certificate(ctx: Context, spec: model.LoadBalancerSpec, log: ChangeLog) -> str:
    body = certificate_body(ctx, spec)
    detail = ", ".join(spec.certificate.managed_domains) or "self-managed"
    # Immutable: a new content is a new name, so an existing one never needs a fix.
    converge(ctx, "ssl_certificate", body, log, fixes=lambda current: [], detail=detail)
    return ctx.links.global_("sslCertificates", body["name"])


def delete_unused_certificates(
    ctx: Context, spec: model.LoadBalancerSpec, keep: str, log: ChangeLog
) -> None:
    # By name: a self link may spell the same certificate another way (host, project number).
    for cert in owned_certificates(ctx, spec.env):
        if cert["name"] != basename(keep):
            name = cert["name"]
            log.apply(
                "delete",
                "ssl_certificate",
                name,
                lambda n=name: delete(ctx, "ssl_certificate", n),
                detail="replaced",
            )


def url_map_fix(current: dict[str, Any], url_map: str) -> list[ApiFix]:
    """setUrlMap when a proxy points at another URL map."""
    if same_link(current.get("urlMap"), url_map):
        return []
    return [ApiFix("setUrlMap", {"urlMap": url_map}, f"URL map {basename(url_map)}")]


def ensure_https_proxy(
    ctx: Context, spec: model.LoadBalancerSpec, url_map: str, certificate: str, log: ChangeLog
) -> str:
    name = ctx.names.https_proxy
    body = lb_part(spec, name, urlMap=url_map, sslCertificates=[certificate])

    def fixes(current: dict[str, Any]) -> list[ApiFix]:
        found = url_map_fix(current, url_map)
        certs = current.get("sslCertificates", [])
        if len(certs) != 1 or not same_link(certs[0], certificate):
            wanted = {"sslCertificates": [certificate]}
            found.append(
                ApiFix("setSslCertificates", wanted, f"certificate {basename(certificate)}")
            )
        return found

    converge(ctx, "target_https_proxy", body, log, fixes=fixes)
    return ctx.links.global_("targetHttpsProxies", name)


def ensure_http_proxy(
    ctx: Context, spec: model.LoadBalancerSpec, url_map: str, log: ChangeLog
) -> str:
    name = ctx.names.http_proxy
    body = lb_part(spec, name, urlMap=url_map)
    converge(
        ctx, "target_http_proxy", body, log, fixes=lambda current: url_map_fix(current, url_map)
    )
    return ctx.links.global_("targetHttpProxies", name)


# -- address and forwarding rules ----------------------------------------------------------------


def ensure_address(ctx: Context, spec: model.LoadBalancerSpec, log: ChangeLog) -> str | None:
    """The reserved global IPv4 address; None in a dry run that would create it."""
    name = ctx.names.address
    wanted_labels = labels(spec.env, model.ROLE_LB)
    body = lb_part(spec, name, ipVersion="IPV4", addressType="EXTERNAL", labels=wanted_labels)
    current = converge(
        ctx, "global_address", body, log, fixes=lambda found: label_fix(found, wanted_labels)
    )
    if current is None:  # just created: the address is known once it exists (not in a dry run)
        current = get_global(ctx, "global_address", name) or {}
    return current.get("address")


def ensure_forwarding_rule(
    ctx: Context,
    spec: model.LoadBalancerSpec,
    name: str,
    address: str | None,
    port: int,
    target: str,
    log: ChangeLog,
) -> str:
    wanted_labels = labels(spec.env, model.ROLE_LB)
    body = lb_part(
        spec,
        name,
        IPProtocol="TCP",
        portRange=str(port),
        target=target,
        loadBalancingScheme=SCHEME,
        networkTier="PREMIUM",
        labels=wanted_labels,
    )
    if address:
        body["IPAddress"] = address
    current = get_global(ctx, "forwarding_rule", name)
    moved = current is not None and (
        current.get("IPAddress") != address
        or current.get("portRange") not in (str(port), f"{port}-{port}")
    )
    if moved:
        # Address and port of a forwarding rule are immutable: replace the rule.
        log.apply(
            "delete",
            "forwarding_rule",
            name,
            lambda: delete(ctx, "forwarding_rule", name),
            detail="address or port changed",
        )
        current = None

    def fixes(found: dict[str, Any]) -> list[ApiFix]:
        needed = []
        if not same_link(found.get("target"), target):
            needed.append(ApiFix("setTarget", {"target": target}, f"target {basename(target)}"))
        return needed + label_fix(found, wanted_labels)

    if current is None:
        create(ctx, "forwarding_rule", body, log, detail=f"{address or 'new address'}:{port}")
    else:
        converge(ctx, "forwarding_rule", body, log, fixes=fixes, current=current)
    return ctx.links.global_("forwardingRules", name)


def env_forwarding_rules(ctx: Context, env: str) -> list[dict[str, Any]]:
    found = ctx.client.list_all(
        f"list forwarding rules of {env}", "globalForwardingRules", filter=label_filter(env)
    )
    # Checked again here: destroy deletes what this returns, whatever the filter did.
    return [rule for rule in found if (rule.get("labels") or {}).get(model.LABEL_ENV) == env]


# -- the whole chain ---------------------------------------------------------------------------


def ensure(
    ctx: Context, spec: model.LoadBalancerSpec, fleet: model.FleetResult, log: ChangeLog
) -> dict[str, Any]:
    """Converge every part, each after what it points to; the parts' links by role."""
    role = str(fleet.network.get("role") or "model")
    port = int(fleet.network.get("service_port") or spec.backend_port)
    check_spec(spec, port)
    stale_groups: list[dict[str, Any]] = []
    if fleet.network.get("instance_group"):
        groups = [str(fleet.network["instance_group"])]
    else:
        groups, stale_groups = ensure_fleet_groups(ctx, fleet, role, port, log)
    health_check = ensure_health_check(ctx, spec, log)
    service = ensure_backend_service(
        ctx, spec, groups, health_check, fleet.network.get("max_rate_per_instance"), log
    )
    delete_groups(ctx, stale_groups, log)  # only now that the service let go of them
    url_map = ensure_url_map(ctx, spec, service, log)
    certificate = ensure_certificate(ctx, spec, log)
    https_proxy = ensure_https_proxy(ctx, spec, url_map, certificate, log)
    delete_unused_certificates(ctx, spec, certificate, log)
    address = ensure_address(ctx, spec, log)
    https_rule = ensure_forwarding_rule(
        ctx, spec, ctx.names.https_rule, address, spec.https_port, https_proxy, log
    )
    redirect_map = ensure_redirect_url_map(ctx, spec, log)
    http_proxy = ensure_http_proxy(ctx, spec, redirect_map, log)
    http_rule = ensure_forwarding_rule(
        ctx, spec, ctx.names.http_rule, address, spec.http_port, http_proxy, log
    )
    return {
        "address": address,
        "instance_groups": groups,
        "health_check": health_check,
        "backend_service": service,
        "url_map": url_map,
        "ssl_certificate": certificate,
        "target_https_proxy": https_proxy,
        "https_forwarding_rule": https_rule,
        "redirect_url_map": redirect_map,
        "target_http_proxy": http_proxy,
        "http_forwarding_rule": http_rule,
    }


def endpoint(spec: model.LoadBalancerSpec, address: str | None) -> str:
    host = (
        spec.certificate.managed_domains[0]
        if spec.certificate.managed_domains
        else (address or "address-not-yet-reserved")
    )
    return f"https://{host}" if spec.https_port == 443 else f"https://{host}:{spec.https_port}"
