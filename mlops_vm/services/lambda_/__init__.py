"""AWS Lambda from a container image: the model image, with the runtime interface client
and an adapter added (images/lambda-adapter), behind a function URL.

What an environment owns (tagged mlops-vm/env where Lambda allows tags): an ECR repository
with a lifecycle policy holding the derived image, an execution role, the log group
/aws/lambda/<function>, the function (memory, timeout, ephemeral storage checked against
Lambda's limits; reserved concurrency = max_instances), its published versions (one per
release, the release in the description), the alias `live` (provisioned concurrency =
min_instances) and the function URL on it (public: NONE + permission; authenticated:
AWS_IAM); or, with service.lambda.endpoint: alb, an HTTPS Application Load Balancer
(the AWS provider's, as ECS has it) whose Lambda target group holds the alias (alb.py).
A release is a version the alias moves to, health-gated by an invoke of its
readiness path (optionally a canary share first); `rollback` moves the alias back.
"""

from dataclasses import replace

from mlops_vm.metrics import Figures
from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import destroy as aws_destroy
from mlops_vm.provision.aws import secret_refs as aws_secrets
from mlops_vm.provision.aws import validate as aws_validate
from mlops_vm.services import ecr
from mlops_vm.services.aws_target import AwsTarget
from mlops_vm.services.base import ServiceRecord, ServiceResult, ServiceSpec
from mlops_vm.services.lambda_ import (
    alb,
    endpoint,
    function,
    iam,
    image,
    limits,
    logs,
    metrics,
    names,
)
from mlops_vm.services.lambda_ import release as releases
from mlops_vm.services.lambda_ import status as statuses
from mlops_vm.services.settings import LambdaServiceConfig

# Tag on the function naming the Runtime Interface Emulator that answers for it when the
# control plane is emulated (service.lambda.invoke_endpoint_url): `rollback` gets only ENV.
TAG_INVOKE_ENDPOINT = "mlops-vm/invoke-endpoint"


class LambdaTarget(AwsTarget[LambdaServiceConfig]):
    name = "lambda"
    has_canary = True
    options_model = LambdaServiceConfig

    def check_offline(self, spec: ServiceSpec) -> None:
        options = self._options(spec)
        limits.check_spec(spec, options.endpoint)
        if options.endpoint == "alb":
            fleet, lb = alb.fleet_spec(spec), alb.lb_spec(spec)
            aws_validate.check_names(lb)
            aws_validate.check_load_balancer_spec(fleet, lb)

    def validate(self, spec: ServiceSpec) -> None:
        self.check_offline(spec)
        options = self._options(spec)
        aws_validate.check_region(self.ctx)
        if options.endpoint == "alb":
            aws_validate.check_certificate_exists(self.ctx, alb.lb_spec(spec))
        aws_secrets.check_secrets_exist(self.ctx, spec.secrets)
        image.check_source_size(spec.image, spec.registry)

    def _push(self, log: ChangeLog, spec: ServiceSpec, options: LambdaServiceConfig) -> str:
        """The derived image in the environment's repository (made unless it is there)."""
        name = ecr.repository_name(spec.env)
        tag_dict = names.tag_dict(spec.env, name, spec.tags)
        repository = ecr.ensure_repository(self.ctx, log, name, options.keep_images, tag_dict)
        destination, auth = ecr.push_destination(
            self.ctx, name, options.registry_endpoint, spec.registry
        )
        tag, inputs, present = image.derived_image(
            spec.image, spec.registry, destination, auth, options.architecture
        )
        if not present:
            log.update(
                "ecr_image",
                f"{name}:{tag}",
                lambda: image.build_and_push(
                    spec.image,
                    spec.registry,
                    f"{destination}:{tag}",
                    auth,
                    options.architecture,
                    inputs,
                ),
                f"{spec.image} + Lambda runtime client and adapter",
            )
        return f"{ecr.repository_uri(repository)}:{tag}"

    def _converge(self, log: ChangeLog, spec: ServiceSpec) -> None:
        ctx, options = self.ctx, self._options(spec)
        spec = self._with_emulator_tag(spec, options)
        image_uri = self._push(log, spec, options)
        logs.ensure_log_group(ctx, log, spec.env, spec.name, options.log_retention_days)
        role_arn = iam.ensure_role(ctx, log, spec)
        changed = function.ensure_function(ctx, log, spec, options, role_arn, image_uri)
        self._release_latest(log, spec, options, changed=changed)
        if options.endpoint == "alb":
            alb.ensure_alb(ctx, log, spec)
            endpoint.remove_url(ctx, log, spec.name)
        else:
            endpoint.ensure_url(ctx, log, spec)
            alb.remove_alb(ctx, log, spec.env, spec.name)
        endpoint.ensure_reserved(ctx, log, spec)
        endpoint.ensure_provisioned(ctx, log, spec)

    def _with_emulator_tag(self, spec: ServiceSpec, options: LambdaServiceConfig) -> ServiceSpec:
        if not options.invoke_endpoint_url:
            return spec
        return replace(spec, tags={**spec.tags, TAG_INVOKE_ENDPOINT: options.invoke_endpoint_url})

    def _release_latest(
        self, log: ChangeLog, spec: ServiceSpec, options: LambdaServiceConfig, *, changed: bool
    ) -> None:
        """$LATEST (converged) live behind the alias: a version carrying it (published unless
        one does already), health-gated. CHANGED: this run changed $LATEST, so what it is
        now is read back only after the changes were made (a dry run plans a new version)."""
        ctx, name = self.ctx, spec.name

        def read_latest() -> dict:
            config = ctx.call(
                "lambda", "get_function_configuration", "read $LATEST", FunctionName=name
            )
            return function.fingerprint_of(config)

        latest = log.follow_up(read_latest) if changed else read_latest()
        alias = releases.find_alias(ctx, name)
        by_version = {v["Version"]: v for v in function.versions(ctx, name)}
        serving = by_version.get(alias["FunctionVersion"]) if alias else None
        if serving is not None and function.fingerprint_of(serving) == latest:
            return
        # A version that carries it already: a release tried again, or the one rolled back from.
        carrying = [
            v for v, found in by_version.items() if function.fingerprint_of(found) == latest
        ]
        version = (
            carrying[-1]
            if carrying
            else log.create(
                "lambda_version",
                name,
                lambda: function.publish(ctx, spec),
                spec.image,
                planned="(new)",
            )
        )
        releases.shift(
            ctx,
            log,
            options,
            name,
            version,
            readiness_path=spec.readiness_path,
            timeout_s=spec.healthy_timeout_s,
            source=spec.source,
        )

    def rollback(self, env: str, *, dry_run: bool = False) -> ServiceResult:
        record = self.record_to_roll_back(env, "no function", "no previous version")
        found = function.find_function(self.ctx, record.name)
        assert found is not None  # status found it a moment ago
        variables = (found["Configuration"].get("Environment") or {}).get("Variables") or {}
        options = LambdaServiceConfig(
            invoke_endpoint_url=found.get("Tags", {}).get(TAG_INVOKE_ENDPOINT)
        )
        log = ChangeLog(dry_run=dry_run)
        releases.shift(
            self.ctx,
            log,
            options,
            record.name,
            record.previous.id,
            readiness_path=variables.get("MLOPS_VM_READY_PATH", "/readyz"),
            timeout_s=int(self.ctx.options.wait_timeout_s),
            source="rollback",
        )
        return ServiceResult(record=self.status(env), changes=log.changes)

    def status(self, env: str) -> ServiceRecord | None:
        return statuses.service_record(self.ctx, env)

    def figures(self, env: str, window_s: float) -> dict[str, Figures]:
        """Per version the alias serves ('version N') and the alias as a whole."""
        record = self.status(env)
        if record is None or not record.traffic:
            return {}
        found = metrics.version_figures(self.ctx, record.name, list(record.traffic), window_s)
        return {
            (f"version {label}" if label in record.traffic else f"alias {label}"): figures
            for label, figures in found.items()
        }

    def logs(self, env: str, *, tail: int = 100) -> list[str]:
        name = statuses.find_function_name(self.ctx, env)
        return logs.tail(self.ctx, name, tail) if name else []

    def _destroy(self, log: ChangeLog, env: str) -> None:
        """The function (its versions, alias, URL and concurrency go with it), its log group,
        role and ECR repository, then the load balancer and its network (endpoint: alb):
        each only when tagged with ENV."""
        ctx = self.ctx
        name = statuses.find_function_name(ctx, env)
        if name is not None:
            log.delete(
                "lambda_function",
                name,
                lambda: ctx.delete(
                    "lambda",
                    "delete_function",
                    "delete the function",
                    FunctionName=name,
                ),
                "versions, alias, URL",
            )
            logs.delete_log_group(ctx, log, env, name)
        iam.delete_role(ctx, log, env)
        ecr.delete_repository(ctx, log, ecr.repository_name(env), env)
        log.extend(aws_destroy.destroy(ctx, env, dry_run=log.dry_run))
