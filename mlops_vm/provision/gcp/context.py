"""What every step needs: the client, the project and region, names and links, options."""

from dataclasses import dataclass, field

from mlops_vm.provision.gcp.client import ComputeClient
from mlops_vm.provision.gcp.names import Links, Names


@dataclass(frozen=True)
class InstanceOptions:
    """Provider options that shape instances (ProviderSettings.options)."""

    service_account: str = "default"
    scopes: tuple[str, ...] = ("https://www.googleapis.com/auth/cloud-platform",)
    external_ip: bool = True  # an ephemeral public IP, for egress without Cloud NAT and SSH


@dataclass(frozen=True)
class Context:
    client: ComputeClient
    project: str
    region: str
    names: Names
    instance_options: InstanceOptions = field(default_factory=InstanceOptions)
    running_timeout_s: float = 600.0  # instances: STAGING -> RUNNING
    stable_timeout_s: float = 1200.0  # managed instance groups: until isStable

    @property
    def links(self) -> Links:
        return Links(self.project)
