"""What ECS on Fargate would refuse, found before anything is created."""

from mlops_vm.provision.aws import secret_refs as aws_secrets
from mlops_vm.provision.aws import validate as aws_validate
from mlops_vm.provision.errors import ProvisionError
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs.sizes import size_problem


def invalid(message: str, hint: str = "") -> ProvisionError:
    return aws_validate.invalid(message, hint, "check the ECS service")


def check_spec(spec: ServiceSpec) -> None:
    """What needs no call to AWS (the network and the ALB: the AWS provider's checks)."""
    problem = size_problem(spec.cpu, spec.memory_mb)
    if problem:
        raise invalid(problem, "pick a pair from the Fargate task size table")
    if spec.gpu:
        raise invalid("service.gpu: Fargate has no GPUs", "use target vms with GPU instances")
    if spec.access != "public":
        raise invalid(
            "service.access authenticated: the ECS target serves a public HTTPS endpoint",
            "put authentication in the model service, or use target vms",
        )
    if spec.concurrency is not None:
        raise invalid(
            "service.concurrency: ECS has no per-task request limit",
            "scale on requests instead: service.ecs.target_requests_per_task",
        )
    if spec.min_instances < 1:
        raise invalid(
            "service.min_instances 0: an ECS service behind a load balancer cannot scale "
            "from zero tasks",
            "set min_instances to 1 or more",
        )
    both = sorted(set(spec.env_vars) & set(spec.secrets))
    if both:
        raise invalid(
            f"{', '.join(both)}: both a plain value (model.env) and a secret (service.secrets)",
            "keep each variable in one place",
        )
    aws_secrets.check_references(spec.secrets)
