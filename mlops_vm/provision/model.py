"""Typed inputs and outputs shared by every provider.

Specs go in, records come out; the Ansible inventory is built from `Instance` records only.
Everything a provider creates is tagged (or labelled) with the environment and the role
(TAG_ENV / TAG_ROLE), which is how it finds its resources again without a state file.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from mlops_vm.bootstrap.boot_source import BootPlan
from mlops_vm.plan import Change
from mlops_vm.provision.errors import ErrorCode, ProvisionError

TAG_ENV = "mlops-vm/env"
TAG_ROLE = "mlops-vm/role"
# A baked image's (and its instances') model release and fingerprint (ImageSpec).
TAG_FINGERPRINT = "mlops-vm/fingerprint"
# GCP labels and Azure tags cannot hold "/": those providers use these spellings.
LABEL_ENV = "mlops-vm-env"
LABEL_ROLE = "mlops-vm-role"
LABEL_FINGERPRINT = "mlops-vm-fingerprint"
# When an image was baked, finer than the cloud's creation time: orders images baked together.
TAG_BAKED_AT = "mlops-vm/baked-at"
LABEL_BAKED_AT = "mlops-vm-baked-at"  # in microseconds (a label's characters)
FINGERPRINT_SHOWN = 12  # hex digits of an image's fingerprint in its name and change details
ROLE_IMAGE = "image"  # a baked machine image
ROLE_IMAGE_BUILDER = "image-builder"  # the instance an image is baked on, removed after

ROLE_MODEL = "model"  # the model-serving instances
ROLE_LB = "lb"  # a load balancer host (local provider) or the managed LB's resources
ROLE_NETWORK = "network"
# A scaling group's (and a baked image's) release: the model image reference its template /
# model / image serves, and the one it replaced, which `rollback` returns it to. GCP keeps
# them in metadata and Azure in tags (values may hold "/" and ":" there), under the "-"
# spellings.
TAG_RELEASE = "mlops-vm/release"
TAG_PREVIOUS_RELEASE = "mlops-vm/previous-release"
LABEL_RELEASE = "mlops-vm-release"
LABEL_PREVIOUS_RELEASE = "mlops-vm-previous-release"


class InstanceStatus(StrEnum):
    """Each cloud's native states mapped to one set."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    TERMINATED = "terminated"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProviderSettings:
    """How to reach a provider. Credentials are never here: each SDK's standard chain
    (AWS profiles/env/instance role, Google ADC, DefaultAzureCredential) supplies them."""

    name: str  # "local", "static", "aws", "gcp", "azure"
    region: str | None = None  # AWS region, GCP region, Azure location
    # Aim the SDK at an emulator or a fake (moto server, tests/fakes/...). None = the cloud.
    endpoint_url: str | None = None
    # Provider-specific options, validated by the provider (project, subscription, ...).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkSpec:
    """The network the instances live in: created and owned by the environment, or reused."""

    cidr: str = "10.42.0.0/16"
    # Who may reach the instances over SSH; None closes SSH entirely.
    ssh_cidr: str | None = None
    # Reuse instead of create: provider-specific IDs/names, e.g. {"vpc_id": ...,
    # "subnet_ids": [...], "security_group_id": ...} (AWS), {"network": ..., "subnetwork": ...}
    # (GCP), {"resource_group": ..., "vnet": ..., "subnet": ...} (Azure).
    existing: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InstanceSpec:
    """What one instance looks like."""

    machine_type: str  # t3.small / e2-small / Standard_B2s; ignored by local
    # AMI id or name pattern, GCP image family or self link, Azure URN, local image tag.
    # None means the provider's Debian 12 default.
    image: str | None = None
    disk_gb: int = 20
    ssh_user: str = "admin"
    ssh_public_key: str | None = None
    # cloud-init user-data that makes a fresh instance configure itself (scaling groups,
    # and fleets that want boot-time configuration). Rendered by the caller, opaque here.
    user_data: str | None = None
    # A boot by identity (scaling groups on a cloud): the provider uploads the payload,
    # makes the instances' identity and renders the user-data that fetches the rest.
    boot: BootPlan | None = None
    # Extra tags/labels for every resource, on top of env and role.
    tags: dict[str, str] = field(default_factory=dict)
    # GPUs to attach (GCP guest accelerators: nvidia-tesla-t4 on N1); machine types with
    # built-in GPUs (g5, G2, A2, NC) need none. See provision/machine_types.py.
    accelerator_type: str | None = None
    accelerator_count: int = 0
    # The model release these instances serve (its image reference): scaling groups record
    # it on the template / model they launch from, for `status` and `rollback`.
    release: str | None = None


@dataclass(frozen=True)
class AutoscalingSpec:
    min_size: int = 1
    max_size: int = 3
    # Target average CPU utilisation, percent; None disables that policy.
    target_cpu_percent: float | None = 60.0
    # Target requests per instance per minute (AWS ALBRequestCountPerTarget, GCP LB
    # utilisation is derived from it); None disables that policy.
    target_requests_per_instance: float | None = None


@dataclass(frozen=True)
class FleetSpec:
    """The model-serving instances of one environment."""

    env: str
    instance: InstanceSpec
    # "fleet": exactly `count` instances that Ansible configures over SSH.
    # "scaling_group": ASG / MIG / VM scale set whose instances configure themselves.
    mode: Literal["fleet", "scaling_group"] = "fleet"
    count: int = 2  # fleet size, or the scaling group's desired size
    autoscaling: AutoscalingSpec = field(default_factory=AutoscalingSpec)
    zones: tuple[str, ...] = ()  # empty: the provider picks (two zones where it can)
    network: NetworkSpec = field(default_factory=NetworkSpec)
    role: str = ROLE_MODEL
    # The port the instances serve HTTPS on (Nginx), opened to the load balancer only.
    service_port: int = 443
    # Scaling groups: the release's baked image (found by fingerprint, else baked) that the
    # template points at, instead of instance.image; None boots instance.image as it is.
    release_image: "ImageSpec | None" = None


Lifecycle = Literal["pending", "in_service", "draining", "terminating", "terminated"]


@dataclass(frozen=True)
class GroupInstance:
    """One instance of a scaling group as `status` lists it."""

    id: str
    zone: str | None
    release: str | None  # the model release of the template / image it was launched from
    lifecycle: Lifecycle
    lb_healthy: bool | None  # None: not registered with the load balancer (yet)
    detail: str = ""  # the cloud's own word for the state, a health reason


@dataclass(frozen=True)
class ScalingActivity:
    """One scaling decision of the group's autoscaler (the cloud's or the local stand-in's)."""

    at: str  # ISO 8601 time
    description: str  # "from 1 to 3 instances", "launching i-0abc", ...
    cause: str  # why: the policy, the alarm, a person's change, the figures read
    status: str = ""  # the cloud's status of the activity (Successful, Failed, ...)


@dataclass(frozen=True)
class GroupStatus:
    """A scaling group's size, instances and last activities (Provider.group_status)."""

    name: str
    min_size: int
    desired: int
    max_size: int
    release: str | None  # what the group launches now (its current template / image)
    previous_release: str | None  # what `rollback` returns it to
    instances: tuple[GroupInstance, ...] = ()
    activities: tuple[ScalingActivity, ...] = ()  # newest first

    def problems(self) -> list[str]:
        """What is wrong (status exits 1 when any): an instance out of service or unhealthy,
        fewer in service than desired, an instance not on the group's release."""
        found: list[str] = []
        serving = [i for i in self.instances if i.lifecycle == "in_service"]
        if len(serving) < min(self.desired, self.max_size):
            found.append(f"{len(serving)} of {self.desired} desired instances in service")
        for instance in serving:
            if instance.lb_healthy is False:
                found.append(f"{instance.id} is unhealthy in the load balancer {instance.detail}")
            if self.release and instance.release and instance.release != self.release:
                found.append(f"{instance.id} runs {instance.release}, the group {self.release}")
        return found


@dataclass(frozen=True)
class ImageSpec:
    """A machine image baked for one release of a scaling group (Provider.ensure_release_image).

    The image carries the roles' result (Docker engine, Nginx, the non-secret settings) and
    the model image already pulled; nothing secret. FINGERPRINT digests everything baked in
    (roles, non-secret settings, model image reference): an image with the same fingerprint
    is reused, never rebuilt."""

    env: str
    release: str  # the model release it carries (image reference), for tags and status
    fingerprint: str  # sha256 hex of roles + non-secret settings + model image reference
    keep_images: int = 3  # this environment's images kept (newest first), older ones removed
    # Applies the roles to the builder (over SSH, with the non-secret variables) once it
    # runs; called only when an image is really baked. One callable, so that tests against
    # an emulator nobody can SSH into inject their own (mlops_vm.commands.image makes the
    # real one: ansible-playbook playbooks/image.yml's roles against the builder).
    configure: Callable[["Instance"], None] | None = field(default=None, compare=False, repr=False)

    def configure_step(self, provider: str) -> Callable[["Instance"], None]:
        """CONFIGURE, checked before a builder is made: without one a bake has no roles to
        apply, which is the caller's mistake (PROVIDER's ProvisionError says how to bake)."""
        if self.configure is None:
            raise ProvisionError(
                ErrorCode.INVALID_INPUT,
                f"no configure step to bake the image of {self.env}",
                hint="bake through `mlops-vm image build` or playbooks/image.yml (they apply "
                "the roles)",
                provider=provider,
                operation="bake the release image",
            )
        return self.configure


@dataclass(frozen=True)
class ImageResult:
    image_id: str  # AMI id, GCP image self link / name, Azure image version id, local tag
    name: str
    reused: bool  # an image with the same fingerprint existed already


@dataclass(frozen=True)
class CertificateSpec:
    """The load balancer's certificate: exactly one way of getting it."""

    cert_file: str | None = None  # PEM certificate (chain) to import / upload
    key_file: str | None = None  # PEM private key for cert_file
    arn: str | None = None  # AWS: an existing ACM certificate
    key_vault_secret_id: str | None = None  # Azure: a Key Vault secret
    managed_domains: tuple[str, ...] = ()  # GCP: a Google-managed certificate


@dataclass(frozen=True)
class LoadBalancerSpec:
    env: str
    certificate: CertificateSpec
    https_port: int = 443
    http_port: int = 80  # answers with a redirect to HTTPS
    backend_port: int = 443
    backend_protocol: Literal["HTTP", "HTTPS"] = "HTTPS"
    health_path: str = "/healthz"
    drain_seconds: int = 30
    # Local provider only: where the LB host publishes HTTPS on 127.0.0.1.
    publish_port: int | None = None
    # "instance": the provider registers the fleet's instances; "ip": someone else registers
    # addresses (an ECS service registers its tasks), so registration is left alone;
    # "lambda": a function alias, registered by the Lambda target once it may invoke it.
    target_type: Literal["instance", "ip", "lambda"] = "instance"


@dataclass(frozen=True)
class Instance:
    """One instance as the provider sees it; the inventory is built from these."""

    id: str  # provider id (i-..., numeric id, VM resource id, container name)
    name: str  # a human name, unique in the environment
    status: InstanceStatus
    private_ip: str | None = None
    public_ip: str | None = None
    zone: str | None = None
    role: str = ROLE_MODEL
    # How Ansible reaches it: "ssh" (address + user) or "docker" (container name).
    connection: Literal["ssh", "docker"] = "ssh"
    ssh_user: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str | None:
        return self.public_ip or self.private_ip


@dataclass
class FleetResult:
    instances: list[Instance]
    changes: list[Change] = field(default_factory=list)
    # IDs of what the fleet lives in, for the load balancer step (vpc_id, subnet_ids,
    # security group ids, network name, instance group, scaling group name, ...).
    network: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True)
class TargetHealth:
    instance_id: str
    healthy: bool
    reason: str = ""


@dataclass
class LoadBalancerResult:
    endpoint: str  # https://...: what users call
    changes: list[Change] = field(default_factory=list)
    targets: list[TargetHealth] = field(default_factory=list)
    # Provider ids of the LB's parts (alb arn, target group arn, url map, gateway id, ...).
    resources: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)
