"""An environment's ECR repository (tagged, scanned on push, with a lifecycle policy) and
where to push into it: shared by the AWS managed targets (Lambda; ECS can use it too)."""

import base64
import json
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import names as tags
from mlops_vm.provision.aws.client import AwsContext, Lookup
from mlops_vm.services.base import RegistryAuth


def repository_name(env: str) -> str:
    """The environment's ECR repository, the one name of it for the ECS and Lambda targets."""
    return f"mlops-vm/{env}"


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


REPOSITORY = Lookup("ecr", "describe_repositories", "repositories", missing_ok=True)


def find_repository(ctx: AwsContext, name: str) -> dict[str, Any] | None:
    return ctx.first(REPOSITORY, "find the ECR repository", repositoryNames=[name])


def ensure_repository(
    ctx: AwsContext, log: ChangeLog, name: str, keep_images: int, tag_dict: dict[str, str]
) -> dict[str, Any]:
    """The repository NAME with its lifecycle policy (a stand-in in a dry run before it
    exists: repository_uri reads it)."""
    repository = log.ensure(
        "ecr_repository",
        name,
        current=find_repository(ctx, name),
        create=lambda: ctx.call(
            "ecr",
            "create_repository",
            "create the ECR repository",
            repositoryName=name,
            imageTagMutability="MUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
            tags=tags.tag_list(tag_dict),
        )["repository"],
        detail="scan on push",
        planned={"repositoryUri": f"<account>.dkr.ecr.{ctx.region}.amazonaws.com/{name}"},
    )
    wanted = lifecycle_policy(keep_images)
    current = ctx.call(
        "ecr",
        "get_lifecycle_policy",
        "read the lifecycle policy",
        missing_ok=True,
        repositoryName=name,
    ).get("lifecyclePolicyText")
    if current is None or json.loads(current) != json.loads(wanted):
        log.apply(
            "update" if current else "create",
            "ecr_lifecycle_policy",
            name,
            lambda: ctx.call(
                "ecr",
                "put_lifecycle_policy",
                "set the lifecycle policy",
                repositoryName=name,
                lifecyclePolicyText=wanted,
            ),
            f"keep {keep_images}",
        )
    return repository


def repository_uri(repository: dict[str, Any]) -> str:
    return repository["repositoryUri"]


def ecr_login(ctx: AwsContext) -> tuple[str, RegistryAuth]:
    """(registry host, credentials) from an ECR authorization token (valid 12 hours)."""
    data = ctx.call("ecr", "get_authorization_token", "log in to ECR")["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://")
    return host, RegistryAuth(username=username, password=password)


def push_destination(
    ctx: AwsContext, name: str, registry_endpoint: str | None, source_auth: RegistryAuth
) -> tuple[str, RegistryAuth]:
    """(repository reference to push to, its credentials): ECR, or on an emulated control
    plane (moto has no registry) REGISTRY_ENDPOINT with the source registry's credentials."""
    if registry_endpoint:
        return f"{registry_endpoint}/{name}", source_auth
    host, auth = ecr_login(ctx)
    return f"{host}/{name}", auth


def delete_repository(ctx: AwsContext, log: ChangeLog, name: str, env: str) -> None:
    """The repository NAME and its images, when it is ENV's (tagged)."""
    repository = find_repository(ctx, name)
    if repository is None:
        return
    if not tags.tagged_for(ctx, "ecr", repository["repositoryArn"], env, "repository"):
        return
    log.delete(
        "ecr_repository",
        name,
        lambda: ctx.delete(
            "ecr",
            "delete_repository",
            "delete the ECR repository",
            repositoryName=name,
            force=True,
        ),
        "and its images",
    )
