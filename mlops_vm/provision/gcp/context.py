"""What every step needs: the client, the project and region, names and links, options."""

from dataclasses import dataclass, field
from typing import Any

from mlops_vm.provision.gcp.client import ComputeClient
from mlops_vm.provision.gcp.names import Links, Names, owned_by


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

    def list_owned(
        self,
        collection: str,
        what: str,
        env: str,
        *,
        aggregated: bool = False,
        role: str | None = None,
        name_prefix: str = "",
    ) -> list[dict[str, Any]]:
        """ENV's resources of COLLECTION (across zones and regions when AGGREGATED): listed by
        name prefix, then kept only when their ownership marker names ENV (and ROLE), whatever
        the filter did: destroy deletes what this returns."""
        lister = self.client.list_aggregated if aggregated else self.client.list_all
        prefix = name_prefix or f"{self.names.prefix}-"
        found = lister(f"list {what} of {env}", collection, filter=f'name eq "{prefix}.*"')
        return [resource for resource in found if owned_by(resource, env, role)]
