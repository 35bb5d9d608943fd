"""The Fargate task definition: one revision per release. A revision is registered only
when what the task runs (image, size, port, env, secrets, health check, roles, logs) or
the release it carries differs from the newest one; its tags record that release."""

from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import TAG_ENV
from mlops_vm.services.base import (
    TAG_IMAGE,
    TAG_INVENTORY_IMAGE,
    TAG_SOURCE,
    Revision,
    ServiceSpec,
)
from mlops_vm.services.ecs import logs, names
from mlops_vm.services.ecs.sizes import cpu_units
from mlops_vm.services.settings import EcsServiceConfig


def health_check_command(spec: ServiceSpec, options: EcsServiceConfig) -> list[str]:
    if options.health_check_command:
        return list(options.health_check_command)
    url = f"http://127.0.0.1:{spec.port}{spec.readiness_path}"
    return [
        "CMD-SHELL",
        f"python3 -c \"import urllib.request; urllib.request.urlopen('{url}', timeout=4)\"",
    ]


def container_definition(
    ctx: AwsContext, spec: ServiceSpec, options: EcsServiceConfig, image: str
) -> dict[str, Any]:
    """The one container: what ECS runs, and what the data-plane test runs locally."""
    return {
        "name": names.CONTAINER,
        "image": image,
        "essential": True,
        "portMappings": [{"containerPort": spec.port, "hostPort": spec.port, "protocol": "tcp"}],
        # PORT tells the model service where to listen (the image's contract).
        "environment": [
            {"name": key, "value": value}
            for key, value in sorted({**spec.env_vars, "PORT": str(spec.port)}.items())
        ],
        # Injected by ECS from Secrets Manager / SSM: the value is never in the definition.
        "secrets": [
            {"name": key, "valueFrom": reference} for key, reference in sorted(spec.secrets.items())
        ],
        "healthCheck": {
            "command": health_check_command(spec, options),
            "interval": 10,
            "timeout": 5,
            "retries": 3,
            "startPeriod": min(options.health_check_grace_s, 300),
        },
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": names.log_group_name(spec.env),
                "awslogs-region": ctx.region,
                "awslogs-stream-prefix": logs.STREAM_PREFIX,
            },
        },
        "stopTimeout": 30,
    }


def release_tags(spec: ServiceSpec) -> dict[str, str]:
    return {
        TAG_IMAGE: spec.image,
        TAG_SOURCE: spec.source,
        TAG_INVENTORY_IMAGE: spec.inventory_image or spec.image,
    }


def registration(
    ctx: AwsContext, spec: ServiceSpec, options: EcsServiceConfig, image: str, role_arn: str
) -> dict[str, Any]:
    """RegisterTaskDefinition's parameters (without tags)."""
    return {
        "family": spec.name,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(cpu_units(spec.cpu)),
        "memory": str(spec.memory_mb),
        "executionRoleArn": role_arn,
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        "containerDefinitions": [container_definition(ctx, spec, options, image)],
    }


def differences(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Which of WANTED's settings CURRENT (a described task definition) does not have.
    Only the keys we set are compared: AWS adds defaults of its own."""

    def differs(have: Any, want: Any) -> bool:
        if isinstance(want, dict):
            return not isinstance(have, dict) or any(
                differs(have.get(k), v) for k, v in want.items()
            )
        if isinstance(want, list):
            return (
                not isinstance(have, list)
                or len(have) != len(want)
                or any(differs(h, w) for h, w in zip(have, want, strict=True))
            )
        return str(have) != str(want)

    return sorted(key for key, value in wanted.items() if differs(current.get(key), value))


def describe(ctx: AwsContext, arn_or_family: str) -> tuple[dict[str, Any], dict[str, str]] | None:
    """(the task definition, its tags); None when there is none."""
    found = ctx.call(
        "ecs",
        "describe_task_definition",
        "read the task definition",
        missing_ok=True,
        taskDefinition=arn_or_family,
        include=["TAGS"],
    )
    if not found.get("taskDefinition"):
        return None
    return found["taskDefinition"], names.as_dict(found.get("tags"))


def as_revision(ctx: AwsContext, arn: str | None) -> Revision | None:
    described = describe(ctx, arn) if arn else None
    if described is None:
        return None
    definition, tags = described
    registered = definition.get("registeredAt")
    return Revision(
        id=definition["taskDefinitionArn"],
        image=tags.get(TAG_IMAGE, definition["containerDefinitions"][0]["image"]),
        source=tags.get(TAG_SOURCE, ""),
        inventory_image=tags.get(TAG_INVENTORY_IMAGE, ""),
        created_at=registered.isoformat() if hasattr(registered, "isoformat") else "",
    )


def ensure_task_definition(
    ctx: AwsContext,
    log: ChangeLog,
    spec: ServiceSpec,
    options: EcsServiceConfig,
    image: str,
    role_arn: str,
    current_arn: str | None,
) -> str:
    """The revision to run: CURRENT_ARN (what the service runs) when it is what SPEC asks
    for, else a new revision of the family spec.name (a stand-in in a dry run)."""
    wanted = registration(ctx, spec, options, image, role_arn)
    tags = release_tags(spec)
    current = describe(ctx, current_arn) if current_arn else None
    detail = f"{spec.image} ({spec.source})"
    if current is not None:
        definition, have_tags = current
        drift = differences(definition, wanted)
        drift += [f"tag {key}" for key, value in tags.items() if have_tags.get(key) != value]
        if not drift:
            return definition["taskDefinitionArn"]
        detail += "; " + ", ".join(drift)
    return log.create(
        "task_definition",
        spec.name,
        lambda: ctx.call(
            "ecs",
            "register_task_definition",
            "register the task definition",
            tags=[
                {"key": key, "value": value}
                for key, value in sorted({**tags, TAG_ENV: spec.env}.items())
            ],
            **wanted,
        )["taskDefinition"]["taskDefinitionArn"],
        detail,
        planned=f"{spec.name}:(next)",
    )


def family_revisions(ctx: AwsContext, family: str) -> list[str]:
    """ARNs of the family's task definitions (active and inactive), oldest first."""
    arns: list[str] = []
    for status in ("ACTIVE", "INACTIVE"):
        token = None
        while True:
            page = ctx.call(
                "ecs",
                "list_task_definitions",
                "list the task definitions",
                familyPrefix=family,
                status=status,
                **({"nextToken": token} if token else {}),
            )
            arns += page.get("taskDefinitionArns", [])
            token = page.get("nextToken")
            if not token:
                break
    return arns
