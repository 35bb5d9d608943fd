"""What Lambda refuses, checked before anything is created (ProvisionError INVALID_INPUT
naming the limit): sizes, the settings Lambda has no use for, secret references."""

from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.services.base import ServiceSpec
from mlops_vm.services.lambda_.options import LambdaOptions

MEMORY_MB = (128, 10240)
TIMEOUT_S = 900
EPHEMERAL_MB = (512, 10240)
MB_PER_VCPU = 1769  # Lambda gives one vCPU per 1,769 MB of memory (6 at 10,240 MB)
IMAGE_BYTES = 10 * 1024**3  # a container image function: 10 GB uncompressed
# A synchronous invoke (the function URL) takes at most 6 MB of request and of response.
PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_CANARY_PERCENT = 50


def refused(message: str, hint: str, field: str) -> ProvisionError:
    return ProvisionError(
        ErrorCode.INVALID_INPUT,
        message,
        hint=hint,
        provider="aws",
        operation=f"check {field} against Lambda's limits",
    )


def check_spec(spec: ServiceSpec, options: LambdaOptions) -> None:
    low, high = MEMORY_MB
    if not low <= spec.memory_mb <= high:
        raise refused(
            f"service.memory_mb {spec.memory_mb} is outside Lambda's {low}..{high} MB",
            f"set service.memory_mb between {low} and {high}",
            "service.memory_mb",
        )
    vcpus = spec.memory_mb / MB_PER_VCPU
    if spec.cpu > round(vcpus, 2) and spec.cpu > 1 / 8:
        needed = min(high, int(spec.cpu * MB_PER_VCPU + 0.5))
        raise refused(
            f"service.cpu {spec.cpu}: Lambda gives {vcpus:.2f} vCPU at {spec.memory_mb} MB "
            f"(one vCPU per {MB_PER_VCPU} MB)",
            f"raise service.memory_mb to {needed} or lower service.cpu",
            "service.cpu",
        )
    if spec.gpu:
        raise refused("service.gpu: Lambda has no GPUs", "remove service.gpu", "service.gpu")
    if spec.concurrency not in (None, 1):
        raise refused(
            f"service.concurrency {spec.concurrency}: a Lambda instance serves one request "
            "at a time",
            "remove service.concurrency (scale with max_instances)",
            "service.concurrency",
        )
    if spec.domain or spec.certificate or spec.cert_file:
        raise refused(
            "service.domain/certificate: a function URL has its own name and certificate",
            "put CloudFront or API Gateway in front for a custom domain",
            "service.domain",
        )
    if options.timeout_s > TIMEOUT_S:
        raise refused(
            f"service.lambda.timeout_s {options.timeout_s} is over Lambda's {TIMEOUT_S} s",
            f"set service.lambda.timeout_s to at most {TIMEOUT_S}",
            "service.lambda.timeout_s",
        )
    low, high = EPHEMERAL_MB
    if not low <= options.ephemeral_storage_mb <= high:
        raise refused(
            f"service.lambda.ephemeral_storage_mb {options.ephemeral_storage_mb} is outside "
            f"Lambda's {low}..{high} MB",
            f"set it between {low} and {high}",
            "service.lambda.ephemeral_storage_mb",
        )
    if spec.min_instances > spec.max_instances:
        raise refused(
            "service.min_instances (provisioned concurrency) is above max_instances "
            "(reserved concurrency)",
            "lower min_instances",
            "service.min_instances",
        )


def check_image_size(image: str, size_bytes: int) -> None:
    if size_bytes > IMAGE_BYTES:
        raise refused(
            f"image {image} is {size_bytes / 1024**3:.1f} GB uncompressed; Lambda takes "
            f"container images up to {IMAGE_BYTES // 1024**3} GB",
            "make the image smaller (or use the ecs target)",
            "the image size",
        )


def check_secrets_exist(ctx: AwsContext, spec: ServiceSpec) -> None:
    """Each secret reference names a Secrets Manager secret or an SSM parameter that exists
    (read by its metadata only: the value never passes through mlops-vm)."""
    for variable, reference in sorted(spec.secrets.items()):
        doing = f"find the secret behind service.secrets.{variable}"
        try:
            if reference.startswith("arn:") and ":secretsmanager:" in reference:
                ctx.call("secretsmanager", "describe_secret", doing, SecretId=reference)
            elif reference.startswith("arn:") and ":ssm:" in reference:
                name = reference.split(":parameter", 1)[1]
                found = ctx.call(
                    "ssm",
                    "describe_parameters",
                    doing,
                    ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}],
                )["Parameters"]
                if not found:
                    raise ProvisionError(ErrorCode.NOT_FOUND, f"no parameter {name}")
            else:
                raise refused(
                    f"service.secrets.{variable}: {reference!r} is not a Secrets Manager or "
                    "SSM parameter ARN",
                    "use arn:aws:secretsmanager:... or arn:aws:ssm:...:parameter/...",
                    f"service.secrets.{variable}",
                )
        except ProvisionError as error:
            if error.code != ErrorCode.NOT_FOUND:
                raise
            raise refused(
                f"service.secrets.{variable}: {reference} does not exist",
                "create the secret first, or fix the reference",
                f"service.secrets.{variable}",
            ) from None
