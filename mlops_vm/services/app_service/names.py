"""Names and ids of one environment's App Service resources.

The resource group is the Azure provider's (mlops-vm-<env>), so its inventory and destroy
find the environment again. The web app's name is global (<name>.azurewebsites.net): the
service name; the registry's is global and alphanumeric.
"""

import hashlib
from dataclasses import dataclass

from mlops_vm.provision.azure.names import Names
from mlops_vm.provision.model import ROLE_MODEL
from mlops_vm.provision.prefixed import Prefixed

STAGING = "staging"  # the deployment slot a release goes to before the swap
# App settings that record the release a slot runs: they move with it on a swap.
SETTING_IMAGE = "MLOPS_VM_RELEASE_IMAGE"
SETTING_SOURCE = "MLOPS_VM_RELEASE_SOURCE"
SETTING_INVENTORY_IMAGE = "MLOPS_VM_RELEASE_INVENTORY_IMAGE"
SETTING_AT = "MLOPS_VM_RELEASED_AT"
RELEASE_SETTINGS = (SETTING_IMAGE, SETTING_SOURCE, SETTING_INVENTORY_IMAGE, SETTING_AT)


@dataclass(frozen=True)
class AppNames:
    env: str
    service: str  # ServiceSpec.name: the web app

    @property
    def resource_group(self) -> str:
        return Names(self.env, ROLE_MODEL).resource_group

    plan = Prefixed("plan", base="service")

    @property
    def site(self) -> str:
        return self.service

    autoscale = Prefixed("autoscale", base="service")

    @property
    def registry(self) -> str:
        digest = hashlib.sha256(self.service.encode()).hexdigest()[:8]
        return ("mlopsvm" + "".join(c for c in self.env if c.isalnum()))[:42] + digest
