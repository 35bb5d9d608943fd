"""ECS's ECR repository (the shared one of mlops_vm/services/ecr.py, named for the
environment) and the model image copied into it from its source registry."""

from typing import Any

from mlops_vm.plan import Change
from mlops_vm.provision.aws import names as tags
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.services import ecr, images
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.ecs import names
from mlops_vm.services.ecs.options import EcsOptions


def find_repository(ctx: AwsContext, env: str) -> dict[str, Any] | None:
    return ecr.find_repository(ctx, names.repository_name(env))


def ensure_repository(
    ctx: AwsContext, spec: ServiceSpec, options: EcsOptions, *, dry_run: bool
) -> tuple[dict[str, Any] | None, list[Change]]:
    """The repository with its lifecycle policy; None on a dry run before it exists."""
    name = names.repository_name(spec.env)
    tag_dict = tags.tag_dict(spec.env, names.ROLE_SERVICE, name, spec.tags)
    return ecr.ensure_repository(ctx, name, options.keep_images, tag_dict, dry_run=dry_run)


def push_image(
    ctx: AwsContext,
    spec: ServiceSpec,
    options: EcsOptions,
    repository: dict[str, Any] | None,
    *,
    dry_run: bool,
) -> tuple[str, list[Change]]:
    """(the image as the task definition names it, changes). Copied from its source unless
    the repository holds it already."""
    name = names.repository_name(spec.env)
    tag = images.destination_tag(spec.image)
    uri = f"{ecr.repository_uri(ctx, name, repository)}:{tag}"
    change = Change("update", "ecr_image", uri, f"copy of {spec.image}")
    if repository is None:
        return uri, [change]  # dry run: nothing to compare with yet
    destination, auth = ecr.push_destination(ctx, name, options.registry_endpoint, spec.registry)
    copied = images.copy_image(
        spec.image, spec.registry, f"{destination}:{tag}", auth, dry_run=dry_run
    )
    return uri, [change] if copied else []
