"""Inventory plugin: an mlops-vm environment's instances, listed through its provider."""

DOCUMENTATION = r"""
name: mlops_vm
short_description: The instances of an mlops-vm environment
description:
  - Reads the environment's C(mlops_vm) settings from the C(group_vars) beside this file,
    asks its provider for the environment's instances (found by tags), and adds them to the
    groups C(model) and C(lb) with their connection variables.
  - Lets later runs and other playbooks reach the fleet without re-creating it.
  - The file must be named C(mlops_vm.yml) (or C(.yaml)).
options:
  plugin:
    description:
      - The name of this plugin, C(mlops_vm) from the repository's ansible.cfg, or
        C(mlops_vm.deploy.mlops_vm) from the collection.
    required: true
    choices: [mlops_vm, mlops_vm.deploy.mlops_vm]
"""

EXAMPLES = r"""
# inventories/prod/mlops_vm.yml
plugin: mlops_vm.deploy.mlops_vm
"""

from pathlib import Path

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin


class InventoryModule(BaseInventoryPlugin):
    NAME = "mlops_vm"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and Path(path).name in ("mlops_vm.yml", "mlops_vm.yaml")

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        from mlops_vm.environment.config import ConfigError
        from mlops_vm.environment.inventory import host_entry
        from mlops_vm.environment.load import load_environment
        from mlops_vm.environment.specs import provider_settings
        from mlops_vm.provision import InstanceStatus, ProvisionError, get_provider

        try:
            loaded = load_environment(Path(path).parent)
            if loaded.config.managed:
                return  # a managed service has no hosts (playbooks/service.yml)
            provider = get_provider(provider_settings(loaded.config))
            instances = provider.list_instances(loaded.config.env)
        except (ConfigError, ProvisionError) as error:
            raise AnsibleParserError(f"mlops_vm inventory {path}: {error}") from error
        scaling = loaded.config.fleet.mode == "scaling_group"
        for instance in instances:
            if instance.status in (InstanceStatus.TERMINATED, InstanceStatus.STOPPED):
                continue
            entry = host_entry(instance, loaded.config, loaded.inventory_dir)
            if scaling and entry["group"] == "model":
                continue  # a scaling group's instances configure themselves: no SSH hosts
            self.inventory.add_group(entry["group"])
            self.inventory.add_host(entry["name"], group=entry["group"])
            for key, value in entry["vars"].items():
                self.inventory.set_variable(entry["name"], key, value)
