"""Names of what an environment owns on ECS: derived from the environment, so that
status, rollback, logs and destroy find everything from the environment's name alone
(and each check the mlops-vm/env tag before they touch it)."""

from mlops_vm.provision.aws import names as tags
from mlops_vm.provision.model import ROLE_MODEL

ROLE_SERVICE = ROLE_MODEL  # tag role of the service's own resources
# The service's tag naming the task definition it ran before the active one (rollback).
TAG_PREVIOUS = "mlops-vm/previous-task-definition"
# The service's tag naming service.domain: status reads the URL from it (services/ecs/domain.py).
TAG_DOMAIN = "mlops-vm/domain"
CONTAINER = "model"  # the one container of the task
# The canary service's tag naming the service it is the canary of (services/ecs/canary.py).
TAG_CANARY_OF = "mlops-vm/canary-of"
CANARY = "canary"  # suffix of the canary's service and target group


def canary_service_name(service: str) -> str:
    return f"{service}-{CANARY}"


def cluster_name(env: str) -> str:
    return f"mlops-vm-{env}"


def log_group_name(env: str) -> str:
    return f"/mlops-vm/{env}"


def execution_role_name(env: str) -> str:
    return f"mlops-vm-{env}-ecs-execution"


def scaling_resource_id(env: str, service: str) -> str:
    return f"service/{cluster_name(env)}/{service}"


def tag_list(env: str, name: str, extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Tags in the lowercase key/value shape of ECS, ECR, Logs ... (IAM and ELB: Key/Value)."""
    return [
        {"key": key, "value": value}
        for key, value in sorted(tags.tag_dict(env, ROLE_SERVICE, name, extra).items())
    ]


def as_dict(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {
        item.get("key", item.get("Key")): item.get("value", item.get("Value"))
        for item in items or []
    }
