"""The HTTPS load balancer of an AWS managed target (ECS, Lambda): the AWS provider's own
code (VPC over two zones, security groups, ALB, HTTPS listener with the certificate, HTTP
redirect), given specs in which there are no instances: the target group holds what the
service registers itself (ECS its tasks' addresses, Lambda its alias)."""

from typing import Literal

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import load_balancer, network
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import (
    CertificateSpec,
    FleetResult,
    FleetSpec,
    InstanceSpec,
    LoadBalancerResult,
    LoadBalancerSpec,
    NetworkSpec,
)
from mlops_vm.schema import NetworkConfig
from mlops_vm.services.base import ServiceSpec

NO_INSTANCES = "fargate"  # no instance type: nothing runs on instances of ours


def fleet_spec(spec: ServiceSpec, settings: NetworkConfig) -> FleetSpec:
    """The network the load balancer (and ECS's tasks) live in, as the AWS provider's
    fleet spec (no instances)."""
    return FleetSpec(
        env=spec.env,
        instance=InstanceSpec(machine_type=NO_INSTANCES, tags=dict(spec.tags)),
        count=0,
        network=NetworkSpec(
            cidr=settings.cidr,
            ssh_cidr=None,  # no SSH to anything
            existing=dict(settings.existing),
        ),
        service_port=spec.port,
    )


def lb_spec(
    spec: ServiceSpec, target_type: Literal["ip", "lambda"], drain_seconds: int = 30
) -> LoadBalancerSpec:
    return LoadBalancerSpec(
        env=spec.env,
        certificate=CertificateSpec(
            arn=spec.certificate, cert_file=spec.cert_file, key_file=spec.key_file
        ),
        backend_port=spec.port,
        backend_protocol="HTTP",  # TLS ends at the ALB
        health_path=spec.readiness_path,
        drain_seconds=drain_seconds,
        target_type=target_type,
    )


def ensure_network_and_lb(
    ctx: AwsContext, log: ChangeLog, spec: ServiceSpec, fleet: FleetSpec, lb: LoadBalancerSpec
) -> tuple[dict, LoadBalancerResult]:
    """(network ids, the load balancer): the AWS provider's, its changes into LOG."""
    ids, changes = network.ensure_network(ctx, fleet, dry_run=log.dry_run)
    log.extend(changes)
    net = {
        **ids.as_dict(),
        "service_port": spec.port,
        "lb_security_group_owned": not fleet.network.existing.get("lb_security_group_id"),
    }
    result = load_balancer.ensure_load_balancer(
        ctx, lb, FleetResult(instances=[], network=net), dry_run=log.dry_run
    )
    log.extend(result.changes)
    return net, result


def custom_domain(domain: str, alb_dns_name: str) -> dict[str, object]:
    """What a record shows for a target on its own domain: the ALB's own URL, and the
    record the user creates (mlops-vm never changes DNS): the domain, a CNAME of the ALB."""
    return {
        "platform_url": f"https://{alb_dns_name}",
        "dns_record": {"name": domain, "type": "CNAME", "value": alb_dns_name},
    }
