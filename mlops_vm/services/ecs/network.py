"""The service's network and HTTPS load balancer: the AWS provider's own code (VPC over
two zones, security groups, ALB, HTTPS listener, HTTP redirect), given specs in which the
"instances" are the service's tasks: an IP target group that ECS registers them into, and
a task security group that admits the container port from the ALB only."""

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
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.settings import EcsServiceConfig

FARGATE = "fargate"  # no instance type: the tasks' size is in the task definition


def fleet_spec(spec: ServiceSpec, options: EcsServiceConfig) -> FleetSpec:
    """The network the tasks live in, as the AWS provider's fleet spec (no instances)."""
    settings = options.network
    return FleetSpec(
        env=spec.env,
        instance=InstanceSpec(machine_type=FARGATE, tags=dict(spec.tags)),
        count=0,
        network=NetworkSpec(
            cidr=settings.cidr,
            ssh_cidr=None,  # tasks have no SSH
            existing=dict(settings.existing),
        ),
        service_port=spec.port,
    )


def lb_spec(spec: ServiceSpec, options: EcsServiceConfig) -> LoadBalancerSpec:
    return LoadBalancerSpec(
        env=spec.env,
        certificate=CertificateSpec(
            arn=spec.certificate, cert_file=spec.cert_file, key_file=spec.key_file
        ),
        backend_port=spec.port,
        backend_protocol="HTTP",  # TLS ends at the ALB; tasks are in the VPC only
        health_path=spec.readiness_path,
        drain_seconds=options.drain_seconds,
        target_type="ip",  # awsvpc tasks: ECS registers their addresses
    )


def ensure_network_and_lb(
    ctx: AwsContext, log: ChangeLog, spec: ServiceSpec, options: EcsServiceConfig
) -> tuple[dict, LoadBalancerResult]:
    """(network ids, the load balancer): the AWS provider's, its changes into LOG."""
    fleet = fleet_spec(spec, options)
    ids, changes = network.ensure_network(ctx, fleet, dry_run=log.dry_run)
    log.extend(changes)
    net = {
        **ids.as_dict(),
        "service_port": spec.port,
        "lb_security_group_owned": not fleet.network.existing.get("lb_security_group_id"),
    }
    lb = load_balancer.ensure_load_balancer(
        ctx, lb_spec(spec, options), FleetResult(instances=[], network=net), dry_run=log.dry_run
    )
    log.extend(lb.changes)
    return net, lb
