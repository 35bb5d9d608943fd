"""What Lambda refuses, checked before anything is created (ProvisionError INVALID_INPUT
naming the limit): sizes and the settings Lambda has no use for. Secret references:
mlops_vm/provision/aws/secret_refs.py."""

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.services.base import ServiceSpec

MEMORY_MB = (128, 10240)
MB_PER_VCPU = 1769  # Lambda gives one vCPU per 1,769 MB of memory (6 at 10,240 MB)
IMAGE_BYTES = 10 * 1024**3  # a container image function: 10 GB uncompressed
# A synchronous invoke (the function URL) takes at most 6 MB of request and of response.
PAYLOAD_BYTES = 6 * 1024 * 1024


def refused(message: str, hint: str, field: str) -> ProvisionError:
    return ProvisionError(
        ErrorCode.INVALID_INPUT,
        message,
        hint=hint,
        provider="aws",
        operation=f"check {field} against Lambda's limits",
    )


def check_spec(spec: ServiceSpec, endpoint: str = "url") -> None:
    """The common settings (service.lambda's own bounds are its model's: config.py);
    ENDPOINT: service.lambda.endpoint (a domain and certificate need the ALB)."""
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
    if endpoint == "url" and (spec.domain or spec.certificate or spec.cert_file):
        raise refused(
            "service.domain/certificate: a function URL has its own name and certificate",
            "set service.lambda.endpoint: alb for an HTTPS load balancer on your domain",
            "service.domain",
        )
    if endpoint == "alb" and spec.access != "public":
        raise refused(
            "service.access authenticated: the ALB in front of the function is public",
            "put authentication in the model service, or use endpoint: url (AWS_IAM)",
            "service.access",
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
