"""The service's network and HTTPS load balancer (services/aws_alb.py, the AWS provider's
code): an IP target group that ECS registers the tasks into, and a task security group
that admits the container port from the ALB only."""

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import FleetSpec, LoadBalancerResult, LoadBalancerSpec
from mlops_vm.services import aws_alb
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.settings import EcsServiceConfig


def fleet_spec(spec: ServiceSpec, options: EcsServiceConfig) -> FleetSpec:
    """The network the tasks live in, as the AWS provider's fleet spec (no instances)."""
    return aws_alb.fleet_spec(spec, options.network)


def lb_spec(spec: ServiceSpec, options: EcsServiceConfig) -> LoadBalancerSpec:
    # awsvpc tasks: ECS registers their addresses
    return aws_alb.lb_spec(spec, "ip", options.drain_seconds)


def ensure_network_and_lb(
    ctx: AwsContext, log: ChangeLog, spec: ServiceSpec, options: EcsServiceConfig
) -> tuple[dict, LoadBalancerResult]:
    """(network ids, the load balancer): the AWS provider's, its changes into LOG."""
    return aws_alb.ensure_network_and_lb(
        ctx, log, spec, fleet_spec(spec, options), lb_spec(spec, options)
    )
