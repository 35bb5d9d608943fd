"""The identity scaling-group instances boot with: an IAM role EC2 may assume, one inline
policy of least privilege, and the instance profile that hands it to the instances.

The policy allows exactly: reading the environment's boot payloads (its bucket's boot/
prefix; a baked image's instances fetch none), reading the named secrets (Secrets Manager
GetSecretValue, SSM GetParameter on those ARNs only), and pulling from the model's ECR
repository only. ecr:GetAuthorizationToken is the one action on "*": ECR defines no
resource for it (the token is for the registry, what it may pull is what the repository
statement allows). The instances exchange it for a registry login at boot: no password
anywhere, and none that expires before they launch.
"""

from typing import Any

from mlops_vm.bootstrap.boot_source import PAYLOAD_PREFIX, BootPlan
from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import iam, names, secret_refs
from mlops_vm.provision.aws.boot_payload import bucket_arn
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.aws_refs import ECR_REGISTRY, is_ecr

POLICY = "mlops-vm-boot"
# The services the instances' fetcher calls.
BOOT_SERVICES = ("s3", "secretsmanager", "ssm", "ecr")
EC2 = "ec2.amazonaws.com"
PULL_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
]


def role_name(env: str, role: str) -> str:
    return f"{names.base_name(env, role)}-instance"


def repository_arn(registry_host: str, repository: str) -> str:
    match = ECR_REGISTRY.match(registry_host)
    assert match is not None
    return f"arn:aws:ecr:{match['region']}:{match['account']}:repository/{repository}"


def boot_policy(plan: BootPlan, bucket: str | None) -> dict[str, Any]:
    """What the instances may do: read their payload (in BUCKET; None: a baked image, no
    payload) and secrets, pull their image."""
    statements: list[dict[str, Any]] = []
    if bucket:
        statements.append(
            {
                "Sid": "ReadBootPayload",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn(bucket)}/{PAYLOAD_PREFIX}*",
            }
        )
    references = {str(index): ref for index, ref in enumerate(plan.secret_references())}
    statements += secret_refs.read_statements(
        references, "secretsmanager:GetSecretValue", "ssm:GetParameter"
    )
    if plan.registry_host and plan.repository and is_ecr(plan.registry_host):
        statements.append(
            {
                "Sid": "PullModelImage",
                "Effect": "Allow",
                "Action": PULL_ACTIONS,
                "Resource": repository_arn(plan.registry_host, plan.repository),
            }
        )
        statements.append(
            {
                "Sid": "RegistryLogin",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            }
        )
    return iam.policy_document(statements)


def find_profile(ctx: AwsContext, name: str) -> dict[str, Any] | None:
    return ctx.find(
        "iam", "get_instance_profile", f"find the instance profile {name}", InstanceProfileName=name
    )


def ensure_identity(
    ctx: AwsContext, env: str, role: str, plan: BootPlan, bucket: str | None, log: ChangeLog
) -> str:
    """The instance profile's ARN (a stand-in in a dry run that would create it)."""
    name = role_name(env, role)
    tag_dict = names.tag_dict(env, role, name)
    iam.ensure_role(
        ctx,
        log,
        iam.ServiceRole(
            name=name,
            principal=EC2,
            description="mlops-vm scaling-group instances: boot payload, secrets, model image",
            tags=tag_dict,
            detail="assumed by the scaling group's instances",
            policies={
                POLICY: (
                    boot_policy(plan, bucket),
                    "read its boot payload and secrets, pull its image",
                )
            },
        ),
    )
    profile = find_profile(ctx, name)
    if profile is None:
        return log.create(
            "instance_profile",
            name,
            lambda: create_profile(ctx, name, tag_dict),
            f"holds the role {name}",
            planned=f"arn:aws:iam::<account>:instance-profile/{name}",
        )
    profile = profile["InstanceProfile"]
    if name not in {held["RoleName"] for held in profile.get("Roles", [])}:
        log.update(
            "instance_profile",
            name,
            lambda: add_role(ctx, name),
            f"holds the role {name}",
        )
    return profile["Arn"]


def create_profile(ctx: AwsContext, name: str, tag_dict: dict[str, str]) -> str:
    arn = ctx.call(
        "iam",
        "create_instance_profile",
        f"create the instance profile {name}",
        InstanceProfileName=name,
        Tags=names.tag_list(tag_dict),
    )["InstanceProfile"]["Arn"]
    add_role(ctx, name)
    return arn


def add_role(ctx: AwsContext, name: str) -> None:
    ctx.call(
        "iam",
        "add_role_to_instance_profile",
        f"put the role {name} in its instance profile",
        InstanceProfileName=name,
        RoleName=name,
    )


def delete_identity(ctx: AwsContext, env: str, role: str, log: ChangeLog) -> None:
    """The instance profile and the role, when they are ENV's."""
    name = role_name(env, role)
    profile = find_profile(ctx, name)
    if profile is not None:
        profile = profile["InstanceProfile"]
        if names.as_dict(profile.get("Tags")).get(names.TAG_ENV) == env:

            def delete_profile() -> None:
                for held in profile.get("Roles", []):
                    ctx.delete(
                        "iam",
                        "remove_role_from_instance_profile",
                        f"take the role out of {name}",
                        InstanceProfileName=name,
                        RoleName=held["RoleName"],
                    )
                ctx.delete(
                    "iam",
                    "delete_instance_profile",
                    f"delete the instance profile {name}",
                    InstanceProfileName=name,
                )

            log.delete("instance_profile", name, delete_profile)
    iam.delete_role(ctx, log, name, env)
