"""The Application Load Balancer in front of the fleet.

ALB (internet-facing, in the fleet's subnets, behind the LB security group that admits
the HTTPS and HTTP ports from anywhere), a target group (backend protocol and port,
health check on LoadBalancerSpec.health_path, deregistration delay = drain_seconds), an
HTTPS listener with the ACM certificate forwarding to it, and an HTTP listener that
answers 301 to HTTPS. Fleet instances are registered (surplus ones deregistered); a
scaling group is attached to the target group instead and gets its request-count policy.

A Lambda target group (target_type "lambda") has no protocol, port, VPC or drain delay:
the ALB invokes the function, and its health check (enabled explicitly: off by default for
Lambda) invokes it with a GET of health_path.

A target group's protocol and port cannot change: a new one (its name carries them) is
created, the listener switched to it, and the old one deleted.
"""

from operator import itemgetter
from typing import Any

from mlops_vm.plan import Change, ChangeLog
from mlops_vm.provision.aws import certificates, errors, names, network, scaling_group
from mlops_vm.provision.aws import security_groups as sg
from mlops_vm.provision.aws.client import AwsContext, Lookup
from mlops_vm.provision.errors import ErrorCode, ProvisionError, reporting_changes
from mlops_vm.provision.model import (
    ROLE_LB,
    FleetResult,
    LoadBalancerResult,
    LoadBalancerSpec,
    TargetHealth,
)

WORLD = "0.0.0.0/0"
DELAY_ATTRIBUTE = "deregistration_delay.timeout_seconds"
TAGS_PER_CALL = 20  # elbv2 describe_tags takes at most 20 ARNs
LOAD_BALANCER = Lookup("elbv2", "describe_load_balancers", "LoadBalancers", missing_ok=True)


def load_balancer_name(env: str) -> str:
    return names.elb_name(env, "alb")


def target_group_name(spec: LoadBalancerSpec) -> str:
    if spec.target_type == "lambda":
        return names.elb_name(spec.env, "lambda")
    return names.elb_name(spec.env, f"{spec.backend_protocol.lower()}{spec.backend_port}")


def lb_tags(env: str, name: str) -> list[dict[str, str]]:
    return names.tag_list(names.tag_dict(env, ROLE_LB, name))


# --- finding what exists ----------------------------------------------------------------


def tags_by_arn(ctx: AwsContext, arns: list[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), TAGS_PER_CALL):
        descriptions = ctx.call(
            "elbv2",
            "describe_tags",
            "read load balancer tags",
            ResourceArns=arns[start : start + TAGS_PER_CALL],
        )["TagDescriptions"]
        for description in descriptions:
            found[description["ResourceArn"]] = names.as_dict(description.get("Tags"))
    return found


# kind -> (describe operation, list key, ARN key); the names read "load balancer" etc.
ELB_KINDS: dict[str, tuple[str, str, str]] = {
    "load_balancer": ("describe_load_balancers", "LoadBalancers", "LoadBalancerArn"),
    "target_group": ("describe_target_groups", "TargetGroups", "TargetGroupArn"),
}


def _tagged(ctx: AwsContext, kind: str, env: str) -> list[dict[str, Any]]:
    """Every load balancer or target group of ENV (ELBv2 cannot filter by tag)."""
    operation, key, arn_key = ELB_KINDS[kind]
    found = ctx.pages("elbv2", operation, key, f"list the {kind.replace('_', ' ')}s")
    by_arn = tags_by_arn(ctx, [item[arn_key] for item in found])
    return [item for item in found if by_arn.get(item[arn_key], {}).get(names.TAG_ENV) == env]


def tagged_load_balancers(ctx: AwsContext, env: str) -> list[dict[str, Any]]:
    return _tagged(ctx, "load_balancer", env)


def tagged_target_groups(ctx: AwsContext, env: str) -> list[dict[str, Any]]:
    return _tagged(ctx, "target_group", env)


def find_by_name(ctx: AwsContext, kind: str, name: str, env: str) -> dict[str, Any] | None:
    """The load balancer or target group NAME, if it is ENV's (CONFLICT if another's)."""
    operation, key, arn_key = ELB_KINDS[kind]
    found = ctx.call(
        "elbv2",
        operation,
        f"find {kind.replace('_', ' ')} {name}",
        missing_ok=True,
        Names=[name],
    ).get(key, [])
    if not found:
        return None
    owner = tags_by_arn(ctx, [found[0][arn_key]]).get(found[0][arn_key], {}).get(names.TAG_ENV)
    if owner != env:
        raise errors.failure(
            ErrorCode.CONFLICT,
            f"{kind.replace('_', ' ')} {name} exists and belongs to "
            f"{'environment ' + owner if owner else 'no mlops-vm environment'}",
            "rename the environment, or delete that resource",
            f"find {kind.replace('_', ' ')} {name}",
        )
    return found[0]


# --- target group -----------------------------------------------------------------------


def health_check_settings(spec: LoadBalancerSpec) -> dict[str, Any]:
    if spec.target_type == "lambda":
        # Each check is an invoke: Lambda's defaults (35 s apart, 30 s to answer).
        return {
            "HealthCheckEnabled": True,
            "HealthCheckPath": spec.health_path,
            "HealthCheckIntervalSeconds": 35,
            "HealthCheckTimeoutSeconds": 30,
            "HealthyThresholdCount": 2,
            "UnhealthyThresholdCount": 3,
            "Matcher": {"HttpCode": "200"},
        }
    return {
        "HealthCheckProtocol": spec.backend_protocol,
        "HealthCheckPort": "traffic-port",
        "HealthCheckPath": spec.health_path,
        "HealthCheckIntervalSeconds": 15,
        "HealthCheckTimeoutSeconds": 5,
        "HealthyThresholdCount": 2,
        "UnhealthyThresholdCount": 3,
        "Matcher": {"HttpCode": "200"},
    }


def target_group_attributes(ctx: AwsContext, arn: str) -> dict[str, str]:
    attributes = ctx.call(
        "elbv2",
        "describe_target_group_attributes",
        "read the target group's attributes",
        TargetGroupArn=arn,
    )["Attributes"]
    return {item["Key"]: item["Value"] for item in attributes}


def create_target_group(ctx: AwsContext, spec: LoadBalancerSpec, name: str, vpc_id: str) -> str:
    """A new target group with its health check and drain delay (part of its creation)."""
    lambda_target = spec.target_type == "lambda"
    where = (
        {}
        if lambda_target
        else {"Protocol": spec.backend_protocol, "Port": spec.backend_port, "VpcId": vpc_id}
    )
    arn = ctx.call(
        "elbv2",
        "create_target_group",
        "create the target group",
        Name=name,
        TargetType=spec.target_type,
        Tags=lb_tags(spec.env, name),
        **where,
        **health_check_settings(spec),
    )["TargetGroups"][0]["TargetGroupArn"]
    if not lambda_target:
        set_drain_delay(ctx, arn, spec.drain_seconds)
    return arn


def ensure_target_group(
    ctx: AwsContext, spec: LoadBalancerSpec, vpc_id: str, log: ChangeLog
) -> str:
    """The target group's ARN (a stand-in when a dry run would create it)."""
    name = target_group_name(spec)
    group = find_by_name(ctx, "target_group", name, spec.env)
    if group is None:
        return log.create(
            "target_group",
            name,
            lambda: create_target_group(ctx, spec, name, vpc_id),
            "lambda"
            if spec.target_type == "lambda"
            else f"{spec.backend_protocol}:{spec.backend_port}",
            planned=names.planned("arn", name),
        )
    arn = group["TargetGroupArn"]
    health = health_check_settings(spec)
    drift = {key: value for key, value in health.items() if group.get(key) != value}
    if drift:
        log.update(
            "target_group",
            name,
            lambda: ctx.call(
                "elbv2",
                "modify_target_group",
                "update the target group's health check",
                TargetGroupArn=arn,
                **drift,
            ),
            ", ".join(sorted(drift)),
        )
    if spec.target_type != "lambda":
        ensure_drain_delay(ctx, spec, name, arn, log)
    return arn


def set_drain_delay(ctx: AwsContext, arn: str, seconds: int) -> None:
    ctx.call(
        "elbv2",
        "modify_target_group_attributes",
        "set the deregistration delay",
        TargetGroupArn=arn,
        Attributes=[{"Key": DELAY_ATTRIBUTE, "Value": str(seconds)}],
    )


def ensure_drain_delay(
    ctx: AwsContext, spec: LoadBalancerSpec, name: str, arn: str, log: ChangeLog
) -> None:
    """The deregistration delay is what bounds a drain: keep it at drain_seconds."""
    delay = str(spec.drain_seconds)
    if target_group_attributes(ctx, arn).get(DELAY_ATTRIBUTE) != delay:
        log.update(
            "target_group",
            name,
            lambda: set_drain_delay(ctx, arn, spec.drain_seconds),
            f"drain {delay}s",
        )


# --- load balancer ----------------------------------------------------------------------


def create_alb(
    ctx: AwsContext,
    spec: LoadBalancerSpec,
    name: str,
    subnet_ids: list[str],
    security_group_id: str,
) -> dict[str, Any]:
    """A new load balancer, once it is active."""
    alb = ctx.call(
        "elbv2",
        "create_load_balancer",
        "create the load balancer",
        Name=name,
        Subnets=subnet_ids,
        SecurityGroups=[security_group_id],
        Scheme="internet-facing",
        Type="application",
        IpAddressType="ipv4",
        Tags=lb_tags(spec.env, name),
    )["LoadBalancers"][0]
    wait_active(ctx, alb["LoadBalancerArn"])
    return alb


def ensure_alb(
    ctx: AwsContext,
    spec: LoadBalancerSpec,
    subnet_ids: list[str],
    security_group_id: str,
    log: ChangeLog,
) -> dict[str, Any]:
    """The load balancer as described (a stand-in without a DNS name when a dry run
    would create it)."""
    name = load_balancer_name(spec.env)
    alb = find_by_name(ctx, "load_balancer", name, spec.env)
    if alb is None:
        return log.create(
            "load_balancer",
            name,
            lambda: create_alb(ctx, spec, name, subnet_ids, security_group_id),
            "application, internet-facing",
            planned={"LoadBalancerArn": names.planned("arn", name), "DNSName": None},
        )
    arn = alb["LoadBalancerArn"]
    have_subnets = {zone["SubnetId"] for zone in alb.get("AvailabilityZones", [])}
    if have_subnets != set(subnet_ids):
        log.update(
            "load_balancer",
            name,
            lambda: ctx.call(
                "elbv2",
                "set_subnets",
                "move the load balancer to the fleet's subnets",
                LoadBalancerArn=arn,
                Subnets=subnet_ids,
            ),
            "subnets",
        )
    if set(alb.get("SecurityGroups", [])) != {security_group_id}:
        log.update(
            "load_balancer",
            name,
            lambda: ctx.call(
                "elbv2",
                "set_security_groups",
                "set the load balancer's security group",
                LoadBalancerArn=arn,
                SecurityGroups=[security_group_id],
            ),
            "security groups",
        )
    return alb


def wait_active(ctx: AwsContext, arn: str) -> None:
    def read() -> tuple[str, str, None]:
        found = ctx.call(
            "elbv2",
            "describe_load_balancers",
            "read the load balancer's state",
            LoadBalancerArns=[arn],
        )["LoadBalancers"]
        state = found[0]["State"] if found else {}
        return state.get("Code", ""), str(state.get("Reason")), None

    ctx.wait_for_state(
        read,
        "active",
        f"load balancer {arn}",
        fix="look at the load balancer in the console, then run destroy and again",
    )


# --- listeners --------------------------------------------------------------------------


def https_listener(
    ctx: AwsContext, spec: LoadBalancerSpec, certificate_arn: str | None, target_group_arn: str
) -> dict[str, Any]:
    return {
        "Protocol": "HTTPS",
        "Port": spec.https_port,
        "SslPolicy": ctx.options.ssl_policy,
        "Certificates": [{"CertificateArn": certificate_arn}],
        "DefaultActions": [{"Type": "forward", "TargetGroupArn": target_group_arn}],
    }


def http_listener(spec: LoadBalancerSpec) -> dict[str, Any]:
    return {
        "Protocol": "HTTP",
        "Port": spec.http_port,
        "DefaultActions": [
            {
                "Type": "redirect",
                "RedirectConfig": {
                    "Protocol": "HTTPS",
                    "Port": str(spec.https_port),
                    "Host": "#{host}",
                    "Path": "/#{path}",
                    "Query": "#{query}",
                    "StatusCode": "HTTP_301",
                },
            }
        ],
    }


def listener_differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    if current.get("Protocol") != wanted["Protocol"]:
        return True
    if wanted.get("SslPolicy") and current.get("SslPolicy") != wanted["SslPolicy"]:
        return True
    if wanted.get("Certificates"):
        have = [c.get("CertificateArn") for c in current.get("Certificates", [])]
        if have[:1] != [wanted["Certificates"][0]["CertificateArn"]]:
            return True
    action, want = (current.get("DefaultActions") or [{}])[0], wanted["DefaultActions"][0]
    if action.get("Type") != want["Type"]:
        return True
    if want["Type"] == "forward":
        return action.get("TargetGroupArn") != want["TargetGroupArn"]
    have_redirect = action.get("RedirectConfig", {})
    return any(have_redirect.get(k) != v for k, v in want["RedirectConfig"].items())


def ensure_listeners(
    ctx: AwsContext,
    spec: LoadBalancerSpec,
    alb_arn: str,
    certificate_arn: str,
    target_group_arn: str,
    log: ChangeLog,
) -> list[str]:
    """The HTTPS and HTTP listeners (others deleted); their ARNs (stand-ins in a dry run)."""
    name = load_balancer_name(spec.env)
    current = {}
    if not names.is_planned(alb_arn):
        found = ctx.call(
            "elbv2", "describe_listeners", "list the listeners", LoadBalancerArn=alb_arn
        )["Listeners"]
        current = {listener["Port"]: listener for listener in found}
    wanted = {
        spec.https_port: https_listener(ctx, spec, certificate_arn, target_group_arn),
        spec.http_port: http_listener(spec),
    }
    arns: list[str] = []
    for port, listener in current.items():
        if port not in wanted:
            log.delete(
                "listener",
                f"{name}:{port}",
                lambda arn=listener["ListenerArn"]: delete_listener(ctx, arn),
            )
    for port, listener in wanted.items():
        label = f"{name}:{port}"
        detail = "HTTPS -> target group" if listener["Protocol"] == "HTTPS" else "301 to HTTPS"
        existing = current.get(port)
        if existing is None:
            # ELBv2 creates are idempotent by their settings: a retry gets the same listener.
            created = log.create(
                "listener",
                label,
                lambda label=label, listener=listener: ctx.call(
                    "elbv2",
                    "create_listener",
                    f"create listener {label}",
                    LoadBalancerArn=alb_arn,
                    Tags=lb_tags(spec.env, label),
                    **listener,
                ),
                detail,
                planned={"Listeners": [{"ListenerArn": names.planned("arn", label)}]},
            )
            arns.append(created["Listeners"][0]["ListenerArn"])
            continue
        if listener_differs(existing, listener):
            log.update(
                "listener",
                label,
                lambda label=label, listener=listener, arn=existing["ListenerArn"]: ctx.call(
                    "elbv2",
                    "modify_listener",
                    f"update listener {label}",
                    ListenerArn=arn,
                    **listener,
                ),
                detail,
            )
        arns.append(existing["ListenerArn"])
    return arns


def delete_listener(ctx: AwsContext, arn: str) -> None:
    ctx.delete("elbv2", "delete_listener", "delete a listener", ListenerArn=arn)


# --- targets ----------------------------------------------------------------------------


def describe_health(ctx: AwsContext, target_group_arn: str) -> list[dict[str, Any]]:
    return ctx.call(
        "elbv2",
        "describe_target_health",
        "read the targets' health",
        TargetGroupArn=target_group_arn,
    )["TargetHealthDescriptions"]


def ensure_targets(
    ctx: AwsContext,
    spec: LoadBalancerSpec,
    target_group_arn: str,
    instance_ids: list[str],
    log: ChangeLog,
) -> None:
    """Register exactly INSTANCE_IDS (draining targets are already on their way out)."""
    registered = set()
    if not names.is_planned(target_group_arn):
        for description in describe_health(ctx, target_group_arn):
            if description.get("TargetHealth", {}).get("State") != "draining":
                registered.add(description["Target"]["Id"])
    missing = sorted(set(instance_ids) - registered)
    surplus = sorted(registered - set(instance_ids))
    log.apply_all(
        [
            Change("delete", "target", instance_id, f"drain {spec.drain_seconds}s")
            for instance_id in surplus
        ],
        lambda: deregister_targets(ctx, target_group_arn, surplus, "deregister surplus targets"),
    )
    log.apply_all(
        [Change("create", "target", instance_id) for instance_id in missing],
        lambda: register_targets(
            ctx, target_group_arn, missing, "register the instances as targets", spec.backend_port
        ),
    )


def drain_targets(ctx: AwsContext, env: str, instance_ids: list[str], log: ChangeLog) -> None:
    """Deregister INSTANCE_IDS from ENV's target groups and wait out the deregistration
    delay, so that requests in flight finish before the instances are terminated."""
    draining: dict[str, list[str]] = {}  # what was deregistered for real: waited for

    def deregister(arn: str, ours: list[str]) -> None:
        deregister_targets(ctx, arn, ours, "deregister instances before terminating them")
        draining[arn] = ours

    for group in tagged_target_groups(ctx, env) if instance_ids else []:
        arn = group["TargetGroupArn"]
        registered = {d["Target"]["Id"] for d in describe_health(ctx, arn)}
        ours = sorted(registered & set(instance_ids))
        if ours:
            delay = target_group_attributes(ctx, arn).get(DELAY_ATTRIBUTE)
            log.apply_all(
                [Change("delete", "target", i, f"drain {delay}s") for i in ours],
                lambda arn=arn, ours=ours: deregister(arn, ours),
            )
    if not draining:
        return

    def drained() -> bool:
        return not any(
            {d["Target"]["Id"] for d in describe_health(ctx, arn)} & set(ids)
            for arn, ids in draining.items()
        )

    ctx.wait_for(drained, f"targets {', '.join(sorted(set(instance_ids)))} are drained")


def target_health(ctx: AwsContext, spec: LoadBalancerSpec) -> list[TargetHealth]:
    group = find_by_name(ctx, "target_group", target_group_name(spec), spec.env)
    if group is None:
        return []
    health = []
    for description in describe_health(ctx, group["TargetGroupArn"]):
        state = description.get("TargetHealth", {})
        health.append(
            TargetHealth(
                instance_id=description["Target"]["Id"],
                healthy=state.get("State") == "healthy",
                reason=" ".join(
                    part
                    for part in (state.get("State"), state.get("Reason"), state.get("Description"))
                    if part and state.get("State") != "healthy"
                ),
            )
        )
    return sorted(health, key=lambda target: target.instance_id)


# --- the whole load balancer ------------------------------------------------------------


def lb_rules(spec: LoadBalancerSpec) -> set[sg.Rule]:
    return {sg.Rule.tcp(spec.https_port, WORLD), sg.Rule.tcp(spec.http_port, WORLD)}


def check_ports(spec: LoadBalancerSpec, fleet: FleetResult) -> None:
    service_port = fleet.network.get("service_port")
    if spec.https_port == spec.http_port or (
        service_port is not None and service_port != spec.backend_port
    ):
        raise errors.invalid(
            f"ports: https {spec.https_port}, http {spec.http_port}, backend "
            f"{spec.backend_port}, fleet service port {service_port}",
            "https_port and http_port must differ; backend_port must be the fleet's "
            "service_port (the only port the instances admit from the load balancer)",
            "check the load balancer ports",
        )


def fleet_network(ctx: AwsContext, spec: LoadBalancerSpec, fleet: FleetResult) -> dict[str, Any]:
    """The fleet's network ids: from FLEET, or found by the environment's tags when the
    result was built elsewhere (from an inventory, say) without them."""
    if fleet.network.get("vpc_id"):
        return fleet.network
    found = network.find_owned_network(ctx, spec.env)
    if found is None:
        raise errors.invalid(
            f"environment {spec.env} has no network to put a load balancer in",
            "run ensure_fleet first and pass its FleetResult",
            "find the fleet's network",
        )
    return {**found.as_dict(), **{k: v for k, v in fleet.network.items() if v is not None}}


def ensure_load_balancer(
    ctx: AwsContext, spec: LoadBalancerSpec, fleet: FleetResult, *, dry_run: bool
) -> LoadBalancerResult:
    """converge_load_balancer with a log of its own; a failure part-way still reports
    what the steps before it made."""
    log = ChangeLog(dry_run=dry_run)
    with reporting_changes(log.changes):
        return converge_load_balancer(ctx, spec, fleet, log)


def converge_load_balancer(
    ctx: AwsContext, spec: LoadBalancerSpec, fleet: FleetResult, log: ChangeLog
) -> LoadBalancerResult:
    check_ports(spec, fleet)
    net = fleet_network(ctx, spec, fleet)
    subnet_ids = [subnet for subnet in net.get("subnet_ids", []) if subnet]
    lb_group = net.get("lb_security_group_id")
    if net.get("lb_security_group_owned", True):
        sg.converge_ingress(ctx, lb_group, names.base_name(spec.env, ROLE_LB), lb_rules(spec), log)
    certificate_arn = certificates.ensure_certificate(ctx, spec, log)
    target_group_arn = ensure_target_group(ctx, spec, net["vpc_id"], log)
    alb = ensure_alb(ctx, spec, subnet_ids, lb_group, log)
    alb_arn = alb["LoadBalancerArn"]
    listener_arns = ensure_listeners(ctx, spec, alb_arn, certificate_arn, target_group_arn, log)
    group = net.get("scaling_group")
    if group:
        scaling_group.ensure_target_groups(ctx, group, target_group_arn, log)
        planned = names.is_planned(alb_arn) or names.is_planned(target_group_arn)
        label = "(new)" if planned else scaling_group.request_count_label(alb_arn, target_group_arn)
        scaling_group.ensure_request_policy(
            ctx, group, label, net.get("target_requests_per_instance"), log
        )
    elif spec.target_type == "instance":
        listed = [instance.id for instance in fleet.instances]
        instance_ids = sorted({*listed, *net.get("launched_instance_ids", [])})
        ensure_targets(ctx, spec, target_group_arn, instance_ids, log)
    delete_stale_target_groups(ctx, spec, target_group_arn, log)
    delete_stale_certificates(ctx, spec.env, certificate_arn, log)
    dns_name = alb["DNSName"] or f"{load_balancer_name(spec.env)}.elb.amazonaws.com"
    port = "" if spec.https_port == 443 else f":{spec.https_port}"
    return LoadBalancerResult(
        endpoint=f"https://{dns_name}{port}",
        changes=log.changes,
        targets=target_health(ctx, spec),
        # What exists: a dry run's stand-ins are None here (callers branch on them).
        resources={
            "load_balancer_arn": names.existing(alb_arn),
            "dns_name": alb["DNSName"],
            "target_group_arn": names.existing(target_group_arn),
            "listener_arns": [arn for arn in listener_arns if names.existing(arn)],
            "certificate_arn": names.existing(certificate_arn),
            "security_group_id": names.existing(lb_group),
        },
    )


def delete_stale_target_groups(
    ctx: AwsContext, spec: LoadBalancerSpec, keep_arn: str, log: ChangeLog
) -> None:
    """Target groups of the environment other than KEEP_ARN (a replaced protocol/port)."""
    groups = tagged_target_groups(ctx, spec.env)
    log.delete_each(
        "target_group",
        [group for group in groups if group["TargetGroupArn"] != keep_arn],
        itemgetter("TargetGroupName"),
        lambda group: delete_target_group(ctx, group["TargetGroupArn"]),
        "replaced",
    )


def delete_stale_certificates(ctx: AwsContext, env: str, keep_arn: str, log: ChangeLog) -> None:
    """Replaced certificates; one the listener has not let go of yet waits for a later run."""
    try:
        certificates.delete_stale_certificates(ctx, env, keep_arn, log)
    except ProvisionError as error:
        if error.code != ErrorCode.CONFLICT:
            raise


def register_targets(
    ctx: AwsContext, arn: str, ids: list[str], doing: str, port: int | None = None
) -> None:
    """IDS (instances on PORT, or a Lambda alias) become targets of the group ARN."""
    targets = [{"Id": id_} if port is None else {"Id": id_, "Port": port} for id_ in ids]
    ctx.call("elbv2", "register_targets", doing, TargetGroupArn=arn, Targets=targets)


def deregister_targets(ctx: AwsContext, arn: str, ids: list[str], doing: str) -> None:
    """IDS leave the group ARN (the group drains them for its deregistration delay)."""
    targets = [{"Id": id_} for id_ in ids]
    ctx.call("elbv2", "deregister_targets", doing, TargetGroupArn=arn, Targets=targets)


def delete_target_group(ctx: AwsContext, arn: str) -> None:
    ctx.delete(
        "elbv2",
        "delete_target_group",
        "delete a target group",
        TargetGroupArn=arn,
    )


def delete_load_balancer(ctx: AwsContext, arn: str) -> None:
    ctx.delete(
        "elbv2",
        "delete_load_balancer",
        "delete the load balancer",
        LoadBalancerArn=arn,
    )

    def gone() -> bool:
        doing = "check that the load balancer is gone"
        return ctx.first(LOAD_BALANCER, doing, LoadBalancerArns=[arn]) is None

    ctx.wait_for(gone, "the load balancer is deleted")
