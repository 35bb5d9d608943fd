"""AWS Lambda from a container image: the model image, with the runtime interface client
and an adapter added (images/lambda-adapter), behind a function URL.

What an environment owns (tagged mlops-vm/env where Lambda allows tags): an ECR repository
with a lifecycle policy holding the derived image, an execution role, the log group
/aws/lambda/<function>, the function (memory, timeout, ephemeral storage checked against
Lambda's limits; reserved concurrency = max_instances), its published versions (one per
release, the release in the description), the alias `live` (provisioned concurrency =
min_instances) and the function URL on it (public: NONE + permission; authenticated:
AWS_IAM). A release is a version the alias moves to, health-gated by an invoke of its
readiness path (optionally a canary share first); `rollback` moves the alias back.
"""

from mlops_vm.plan import Change
from mlops_vm.provision.aws import validate as aws_validate
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import reporting_changes
from mlops_vm.provision.model import ProviderSettings
from mlops_vm.services import ecr
from mlops_vm.services.base import (
    PushResult,
    ServiceRecord,
    ServiceResult,
    ServiceSpec,
    ServiceTarget,
)
from mlops_vm.services.lambda_ import endpoint, function, iam, image, limits, logs, names
from mlops_vm.services.lambda_ import release as releases
from mlops_vm.services.lambda_ import status as statuses
from mlops_vm.services.lambda_.options import LambdaOptions

# Tag on the function naming the Runtime Interface Emulator that answers for it when the
# control plane is emulated (service.lambda.invoke_endpoint_url): `rollback` gets only ENV.
TAG_INVOKE_ENDPOINT = "mlops-vm/invoke-endpoint"


class LambdaTarget(ServiceTarget):
    name = "lambda"
    cloud = "aws"

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.ctx = AwsContext(settings)

    def check_offline(self, spec: ServiceSpec) -> None:
        limits.check_spec(spec, LambdaOptions.from_spec(spec.options))

    def validate(self, spec: ServiceSpec) -> None:
        self.check_offline(spec)
        aws_validate.check_region(self.ctx)
        limits.check_secrets_exist(self.ctx, spec)
        image.check_source_size(spec.image, spec.registry)

    def push_image(self, spec: ServiceSpec, *, dry_run: bool = False) -> PushResult:
        options = LambdaOptions.from_spec(spec.options)
        name = names.repository_name(spec.env)
        repository, changes = ecr.ensure_repository(
            self.ctx,
            name,
            options.keep_images,
            names.tag_dict(spec.env, name, spec.tags),
            dry_run=dry_run,
        )
        uri = ecr.repository_uri(self.ctx, name, repository)
        if repository is None:  # a dry run before the repository exists
            planned = Change("update", "ecr_image", f"{uri}:<tag>-lambda-<hash>", spec.image)
            return PushResult(image=f"{uri}:<derived>", changes=[*changes, planned])
        destination, auth = ecr.push_destination(
            self.ctx, name, options.registry_endpoint, spec.registry
        )
        with reporting_changes(changes):
            tag, pushed = image.ensure_derived_image(
                spec.image, spec.registry, destination, auth, options.architecture, dry_run=dry_run
            )
        if pushed:
            detail = f"{spec.image} + Lambda runtime client and adapter"
            changes.append(Change("update", "ecr_image", f"{uri}:{tag}", detail))
        return PushResult(image=f"{uri}:{tag}", changes=changes)

    def ensure_service(self, spec: ServiceSpec, *, dry_run: bool = False) -> ServiceResult:
        changes: list[Change] = []
        with reporting_changes(changes):
            self._converge(spec, changes, dry_run=dry_run)
        record = None if dry_run and changes else self.status(spec.env)
        return ServiceResult(record=record, changes=changes)

    def _converge(self, spec: ServiceSpec, changes: list[Change], *, dry_run: bool) -> None:
        """ensure_service's steps; each appends what it made to CHANGES as it returns."""
        ctx, options = self.ctx, LambdaOptions.from_spec(spec.options)
        spec = self._with_emulator_tag(spec, options)
        pushed = self.push_image(spec, dry_run=dry_run)
        changes += pushed.changes
        changes += logs.ensure_log_group(
            ctx, spec.env, spec.name, options.log_retention_days, dry_run=dry_run
        )
        role_arn, more = iam.ensure_role(ctx, spec, dry_run=dry_run)
        changes += more
        existed = function.find_function(ctx, spec.name) is not None
        more = function.ensure_function(ctx, spec, options, role_arn, pushed.image, dry_run=dry_run)
        changes += more
        changes += self._release_latest(
            spec, options, planned=dry_run and bool(more or not existed), dry_run=dry_run
        )
        changes += endpoint.ensure_url(ctx, spec, dry_run=dry_run)
        changes += endpoint.ensure_reserved(ctx, spec, dry_run=dry_run)
        changes += endpoint.ensure_provisioned(ctx, spec, dry_run=dry_run)

    def _with_emulator_tag(self, spec: ServiceSpec, options: LambdaOptions) -> ServiceSpec:
        if not options.invoke_endpoint_url:
            return spec
        from dataclasses import replace

        return replace(spec, tags={**spec.tags, TAG_INVOKE_ENDPOINT: options.invoke_endpoint_url})

    def _release_latest(
        self, spec: ServiceSpec, options: LambdaOptions, *, planned: bool, dry_run: bool
    ) -> list[Change]:
        """$LATEST (converged) live behind the alias: a version carrying it (published unless
        one does already), health-gated. PLANNED: a dry run in which $LATEST would change."""
        ctx, name = self.ctx, spec.name
        if planned:
            return [
                Change("create", "lambda_version", name, spec.image),
                Change("update", "lambda_alias", f"{name}:{names.ALIAS}", "health-gated"),
            ]
        latest = function.fingerprint_of(
            ctx.call("lambda", "get_function_configuration", "read $LATEST", FunctionName=name)
        )
        alias = releases.find_alias(ctx, name)
        by_version = {v["Version"]: v for v in function.versions(ctx, name)}
        serving = by_version.get(alias["FunctionVersion"]) if alias else None
        if serving is not None and function.fingerprint_of(serving) == latest:
            return []
        # A version that carries it already: a release tried again, or the one rolled back from.
        carrying = [
            v for v, found in by_version.items() if function.fingerprint_of(found) == latest
        ]
        changes: list[Change] = []
        if carrying:
            version = carrying[-1]
        else:
            changes.append(Change("create", "lambda_version", name, spec.image))
            version = "<new>" if dry_run else function.publish(ctx, spec)
        with reporting_changes(changes):
            changes += releases.shift(
                ctx,
                options,
                name,
                version,
                readiness_path=spec.readiness_path,
                timeout_s=spec.healthy_timeout_s,
                source=spec.source,
                dry_run=dry_run,
            )
        return changes

    def release(self, spec: ServiceSpec, *, dry_run: bool = False) -> ServiceResult:
        """A release is the service converged to SPEC: a new version behind the alias."""
        return self.ensure_service(spec, dry_run=dry_run)

    def rollback(self, env: str, *, dry_run: bool = False) -> ServiceResult:
        record = self.record_to_roll_back(env, "no function", "no previous version")
        found = function.find_function(self.ctx, record.name)
        assert found is not None  # status found it a moment ago
        variables = (found["Configuration"].get("Environment") or {}).get("Variables") or {}
        options = LambdaOptions(invoke_endpoint_url=found.get("Tags", {}).get(TAG_INVOKE_ENDPOINT))
        changes = releases.shift(
            self.ctx,
            options,
            record.name,
            record.previous.id,
            readiness_path=variables.get("MLOPS_VM_READY_PATH", "/readyz"),
            timeout_s=int(self.ctx.options.wait_timeout_s),
            source="rollback",
            dry_run=dry_run,
        )
        return ServiceResult(record=self.status(env), changes=changes)

    def status(self, env: str) -> ServiceRecord | None:
        return statuses.service_record(self.ctx, env)

    def logs(self, env: str, *, tail: int = 100) -> list[str]:
        name = statuses.find_function_name(self.ctx, env)
        return logs.tail(self.ctx, name, tail) if name else []

    def destroy(self, env: str, *, dry_run: bool = False) -> list[Change]:
        """The function (its versions, alias, URL and concurrency go with it), its log group,
        role and ECR repository: each only when tagged with ENV."""
        ctx, changes = self.ctx, []
        with reporting_changes(changes):
            name = statuses.find_function_name(ctx, env)
            if name is not None:
                changes.append(Change("delete", "lambda_function", name, "versions, alias, URL"))
                if not dry_run:
                    ctx.call(
                        "lambda",
                        "delete_function",
                        "delete the function",
                        missing_ok=True,
                        FunctionName=name,
                    )
                changes += logs.delete_log_group(ctx, env, name, dry_run=dry_run)
            changes += iam.delete_role(ctx, env, dry_run=dry_run)
            changes += ecr.delete_repository(ctx, names.repository_name(env), env, dry_run=dry_run)
        return changes
