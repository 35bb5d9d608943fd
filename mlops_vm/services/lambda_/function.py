"""The function ($LATEST converged to the spec) and its published versions, each recording
the release it carries in its description (versions take no tags)."""

import json
from collections.abc import Callable
from typing import Any

from mlops_vm.plan import ChangeLog, Fix
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.services.base import Revision, ServiceSpec
from mlops_vm.services.lambda_ import names
from mlops_vm.services.settings import LambdaServiceConfig

DESCRIPTION_LIMIT = 256  # characters of a version's description
# The configuration $LATEST is converged to, and (with CodeSha256) a release's identity.
CONFIGURED = ("MemorySize", "Timeout", "EphemeralStorage", "Environment", "Role")
COMPARED = (*CONFIGURED, "CodeSha256")
# IAM is eventually consistent: a new role may not be assumable by Lambda for seconds.
ROLE_NOT_READY = "cannot be assumed by Lambda"


def environment(spec: ServiceSpec) -> dict[str, str]:
    """The function's environment: the model's settings, and the adapter's (the app's
    port and readiness path, the secret references it resolves at init: never values)."""
    variables = dict(spec.env_vars)
    variables["MLOPS_VM_APP_PORT"] = str(spec.port)
    variables["MLOPS_VM_READY_PATH"] = spec.readiness_path
    if spec.secrets:
        variables["MLOPS_VM_SECRETS"] = json.dumps(spec.secrets, sort_keys=True)
    return variables


def configuration(spec: ServiceSpec, options: LambdaServiceConfig, role_arn: str) -> dict[str, Any]:
    return {
        "Role": role_arn,
        "MemorySize": spec.memory_mb,
        "Timeout": options.timeout_s,
        "EphemeralStorage": {"Size": options.ephemeral_storage_mb},
        "Environment": {"Variables": environment(spec)},
    }


def find_function(ctx: AwsContext, name: str) -> dict[str, Any] | None:
    return ctx.find("lambda", "get_function", "find the function", FunctionName=name)


def fingerprint_of(config: dict[str, Any]) -> dict[str, Any]:
    """What makes two versions the same release: the image (its digest, CodeSha256) and
    the configuration it runs with."""
    compared = {key: config.get(key) for key in COMPARED}
    compared["Environment"] = (config.get("Environment") or {}).get("Variables") or {}
    return compared


def wait_updated(ctx: AwsContext, name: str, qualifier: str = "$LATEST") -> dict[str, Any]:
    """The configuration once Lambda has finished applying the last change."""

    def settled() -> dict[str, Any] | None:
        config = ctx.call(
            "lambda",
            "get_function_configuration",
            "read the function's state",
            FunctionName=name,
            Qualifier=qualifier,
        )
        if config.get("State") == "Failed" or config.get("LastUpdateStatus") == "Failed":
            reason = config.get("LastUpdateStatusReason") or config.get("StateReason") or ""
            raise ProvisionError(
                ErrorCode.INTERNAL,
                f"function {name}:{qualifier} failed: {reason}",
                hint="the image must be in the function's ECR repository and start",
                provider="aws",
                operation="update the function",
            )
        if (
            config.get("State", "Active") == "Active"
            and config.get("LastUpdateStatus", "Successful") == "Successful"
        ):
            return config
        return None

    return ctx.wait_until(settled, f"function {name}:{qualifier} is updated")


def create_function(
    ctx: AwsContext,
    spec: ServiceSpec,
    options: LambdaServiceConfig,
    role_arn: str,
    image_uri: str,
) -> None:
    def attempt() -> dict[str, Any] | None:
        try:
            return ctx.call(
                "lambda",
                "create_function",
                "create the function",
                FunctionName=spec.name,
                PackageType="Image",
                Code={"ImageUri": image_uri},
                Architectures=[options.architecture],
                Description=f"mlops-vm {spec.env}: the model service",
                Tags=names.tag_dict(spec.env, spec.name, spec.tags),
                Publish=False,
                **configuration(spec, options, role_arn),
            )
        except ProvisionError as error:
            if ROLE_NOT_READY in str(error):
                return None
            raise

    ctx.wait_until(attempt, "Lambda can assume the new execution role", timeout_s=120)
    wait_updated(ctx, spec.name)


def ensure_function(
    ctx: AwsContext,
    log: ChangeLog,
    spec: ServiceSpec,
    options: LambdaServiceConfig,
    role_arn: str,
    image_uri: str,
) -> bool:
    """$LATEST converged to SPEC (it serves nothing: the alias serves a version); whether
    it changed (or, in a dry run, would)."""
    wanted = configuration(spec, options, role_arn)

    def then_settled(call: str, doing: str, **params: Any) -> Callable[[], None]:
        def do() -> None:
            ctx.call("lambda", call, doing, FunctionName=spec.name, **params)
            wait_updated(ctx, spec.name)

        return do

    def fixes(found: dict[str, Any]) -> list[Fix]:
        current, target = fingerprint_of(found["Configuration"]), fingerprint_of(wanted)
        differing = sorted(key for key in CONFIGURED if current[key] != target[key])
        found_fixes = []
        if differing:
            found_fixes.append(
                Fix(
                    ", ".join(differing),
                    then_settled(
                        "update_function_configuration",
                        "update the function's configuration",
                        **wanted,
                    ),
                )
            )
        if found["Code"].get("ImageUri") != image_uri:
            found_fixes.append(
                Fix(
                    f"image {image_uri}",
                    then_settled(
                        "update_function_code", "update the function's image", ImageUri=image_uri
                    ),
                )
            )
        return found_fixes

    before = len(log.changes)
    log.ensure(
        "lambda_function",
        spec.name,
        current=find_function(ctx, spec.name),
        create=lambda: create_function(ctx, spec, options, role_arn, image_uri),
        fixes=fixes,
        detail=f"{spec.memory_mb} MB, image",
    )
    return len(log.changes) > before


def release_description(spec: ServiceSpec) -> str:
    """The release a version carries, in the 256 characters a description has."""
    record = {"image": spec.image, "source": spec.source}
    if spec.inventory_image and spec.inventory_image != spec.image:
        record["inventory_image"] = spec.inventory_image
    text = json.dumps(record, separators=(",", ":"))
    if len(text) > DESCRIPTION_LIMIT:
        record.pop("inventory_image", None)
        text = json.dumps(record, separators=(",", ":"))[:DESCRIPTION_LIMIT]
    return text


def versions(ctx: AwsContext, name: str) -> list[dict[str, Any]]:
    """The published versions (not $LATEST), oldest first; [] without a function."""
    try:
        found = ctx.pages(
            "lambda",
            "list_versions_by_function",
            "Versions",
            "list the versions",
            FunctionName=name,
        )
    except ProvisionError as error:
        if error.code != ErrorCode.NOT_FOUND:
            raise
        return []  # no function (yet: a dry run plans it)
    published = [v for v in found if v["Version"] != "$LATEST"]
    return sorted(published, key=lambda v: int(v["Version"]))


def revision(version: dict[str, Any]) -> Revision:
    try:
        record = json.loads(version.get("Description") or "{}")
    except ValueError:
        record = {}
    return Revision(
        id=version["Version"],
        image=record.get("image", ""),
        source=record.get("source", ""),
        inventory_image=record.get("inventory_image", ""),
        created_at=version.get("LastModified", ""),
    )


def publish(ctx: AwsContext, spec: ServiceSpec) -> str:
    """A new version of $LATEST carrying SPEC's release; its number."""
    published = ctx.call(
        "lambda",
        "publish_version",
        "publish a version",
        FunctionName=spec.name,
        Description=release_description(spec),
    )
    wait_updated(ctx, spec.name, published["Version"])
    return published["Version"]
