"""ECS's ECR repository (the shared one of mlops_vm/services/ecr.py, named for the
environment) and the model image copied into it from its source registry."""

from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import names as tags
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.services import ecr, images
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs import names
from mlops_vm.services.settings import EcsServiceConfig


def find_repository(ctx: AwsContext, env: str) -> dict[str, Any] | None:
    return ecr.find_repository(ctx, ecr.repository_name(env))


def ensure_repository(
    ctx: AwsContext, log: ChangeLog, spec: ServiceSpec, options: EcsServiceConfig
) -> dict[str, Any]:
    """The repository with its lifecycle policy (a stand-in in a dry run before it exists)."""
    name = ecr.repository_name(spec.env)
    tag_dict = tags.tag_dict(spec.env, names.ROLE_SERVICE, name, spec.tags)
    return ecr.ensure_repository(ctx, log, name, options.keep_images, tag_dict)


def push_image(
    ctx: AwsContext,
    log: ChangeLog,
    spec: ServiceSpec,
    options: EcsServiceConfig,
    repository: dict[str, Any],
) -> str:
    """The image as the task definition names it; copied from its source unless the
    repository holds it already."""
    name = ecr.repository_name(spec.env)
    tag = images.destination_tag(spec.image)
    destination, auth = ecr.push_destination(ctx, name, options.registry_endpoint, spec.registry)
    if images.needs_copy(spec.image, spec.registry, f"{destination}:{tag}", auth):
        log.update(
            "ecr_image",
            f"{name}:{tag}",
            lambda: images.transfer(spec.image, spec.registry, f"{destination}:{tag}", auth),
            f"copy of {spec.image}",
        )
    return f"{ecr.repository_uri(repository)}:{tag}"
