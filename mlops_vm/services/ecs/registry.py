"""The environment's ECR repository (tagged, scanned on push, with a lifecycle policy) and
the model image copied into it from its source registry."""

import base64
import json
from typing import Any

from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import Change
from mlops_vm.services import images
from mlops_vm.services.base import RegistryAuth, ServiceSpec
from mlops_vm.services.ecs import names
from mlops_vm.services.ecs.options import EcsOptions


def lifecycle_policy(keep_images: int) -> str:
    """Expire all but the newest KEEP_IMAGES images (a rollback needs the previous one)."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"keep the newest {keep_images} images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": keep_images,
                    },
                    "action": {"type": "expire"},
                }
            ]
        },
        sort_keys=True,
    )


def find_repository(ctx: AwsContext, env: str) -> dict[str, Any] | None:
    found = ctx.call(
        "ecr",
        "describe_repositories",
        "find the ECR repository",
        missing_ok=True,
        repositoryNames=[names.repository_name(env)],
    ).get("repositories", [])
    return found[0] if found else None


def ensure_repository(
    ctx: AwsContext, spec: ServiceSpec, options: EcsOptions, *, dry_run: bool
) -> tuple[dict[str, Any] | None, list[Change]]:
    name = names.repository_name(spec.env)
    repository = find_repository(ctx, spec.env)
    changes: list[Change] = []
    if repository is None:
        changes.append(Change("create", "ecr_repository", name, "scan on push"))
        if dry_run:
            return None, [*changes, Change("create", "ecr_lifecycle_policy", name)]
        repository = ctx.call(
            "ecr",
            "create_repository",
            "create the ECR repository",
            repositoryName=name,
            imageTagMutability="MUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
            tags=[
                {"Key": item["key"], "Value": item["value"]}
                for item in names.tag_list(spec.env, name, spec.tags)
            ],
        )["repository"]
    wanted = lifecycle_policy(options.keep_images)
    current = ctx.call(
        "ecr",
        "get_lifecycle_policy",
        "read the lifecycle policy",
        missing_ok=True,
        repositoryName=name,
    ).get("lifecyclePolicyText")
    if current is None or json.loads(current) != json.loads(wanted):
        changes.append(
            Change(
                "update" if current else "create",
                "ecr_lifecycle_policy",
                name,
                f"keep {options.keep_images}",
            )
        )
        if not dry_run:
            ctx.call(
                "ecr",
                "put_lifecycle_policy",
                "set the lifecycle policy",
                repositoryName=name,
                lifecyclePolicyText=wanted,
            )
    return repository, changes


def repository_uri(ctx: AwsContext, env: str, repository: dict[str, Any] | None) -> str:
    if repository is not None:
        return repository["repositoryUri"]
    account = "<account>"  # a dry run before the repository exists
    return f"{account}.dkr.ecr.{ctx.region}.amazonaws.com/{names.repository_name(env)}"


def ecr_login(ctx: AwsContext) -> tuple[str, RegistryAuth]:
    """(registry host, credentials) from an ECR authorization token (valid 12 hours)."""
    data = ctx.call("ecr", "get_authorization_token", "log in to ECR")["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://")
    return host, RegistryAuth(username=username, password=password)


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
    tag = images.destination_tag(spec.image)
    uri = f"{repository_uri(ctx, spec.env, repository)}:{tag}"
    change = Change("update", "ecr_image", uri, f"copy of {spec.image}")
    if repository is None:
        return uri, [change]  # dry run: nothing to compare with yet
    if options.registry_endpoint:
        # An emulated control plane: its stand-in registry takes the source's credentials.
        destination = f"{options.registry_endpoint}/{names.repository_name(spec.env)}:{tag}"
        auth = spec.registry
    else:
        host, auth = ecr_login(ctx)
        destination = f"{host}/{names.repository_name(spec.env)}:{tag}"
    copied = images.copy_image(spec.image, spec.registry, destination, auth, dry_run=dry_run)
    return uri, [change] if copied else []
