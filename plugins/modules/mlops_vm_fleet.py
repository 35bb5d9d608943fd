#!/usr/bin/python
"""Ansible module: converge an environment's instances through its provider."""

DOCUMENTATION = r"""
module: mlops_vm_fleet
short_description: Launch (or destroy) an mlops-vm environment's instances
description:
  - Validates the environment's C(mlops_vm) settings, then asks its provider (local, static,
    aws, gcp, azure) to converge the network and the instances, or the scaling group.
  - Instances a smaller fleet count removes leave the load balancer and drain first.
  - Idempotent by tags; in check mode it returns the planned changes and changes nothing.
  - Runs on the controller, with the Python that has mlops_vm installed.
options:
  config:
    description: The environment's C(mlops_vm) variable, secrets removed.
    type: dict
    required: true
  inventory_dir:
    description: The environment's inventory directory (relative paths start there).
    type: path
    required: true
  state:
    description: C(present) converges, C(absent) deletes everything the environment owns.
    type: str
    choices: [present, absent]
    default: present
  user_data:
    description:
      - Boot-time cloud-init user-data for scaling groups. By default it is rendered from
        the settings (the instances apply the same roles at boot).
    type: str
  registry_username:
    description: The model registry's user, for scaling-group instances.
    type: str
    default: ""
  registry_password:
    description: The model registry's password, for scaling-group instances (never logged).
    type: str
    default: ""
  api_keys:
    description: The API keys scaling-group instances accept (never logged).
    type: list
    elements: str
    default: []
notes:
  - Supports check mode.
"""

RETURN = r"""
changes:
  description:
    - What was (or, in check mode, would be) created, updated or deleted.
    - On a provider failure, what was made before it.
  type: list
  elements: str
  returned: always
instances:
  description: The instances, as provider records.
  type: list
  elements: dict
  returned: when state is present
hosts:
  description: Name, group and connection variables of each instance, for add_host.
  type: list
  elements: dict
  returned: when state is present
network:
  description: Provider ids of the network the instances live in.
  type: dict
  returned: when state is present
"""

from dataclasses import asdict
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config": {"type": "dict", "required": True},
            "inventory_dir": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "user_data": {"type": "str", "no_log": True},
            "registry_username": {"type": "str", "default": ""},
            "registry_password": {"type": "str", "default": "", "no_log": True},
            "api_keys": {"type": "list", "elements": "str", "default": [], "no_log": True},
        },
        supports_check_mode=True,
    )
    from mlops_vm.environment.config import ConfigError, validate_config
    from mlops_vm.environment.inventory import host_entry
    from mlops_vm.environment.specs import fleet_spec, load_balancer_spec, provider_settings
    from mlops_vm.provision import ProvisionError, get_provider
    from mlops_vm.provision.gpu_hints import with_gpu_hint

    inventory_dir = Path(module.params["inventory_dir"])
    try:
        config = validate_config(module.params["config"], source=inventory_dir / "group_vars")
        provider = get_provider(provider_settings(config))
        if module.params["state"] == "absent":
            changes = provider.destroy(config.env, dry_run=module.check_mode)
            module.exit_json(changed=bool(changes), changes=[str(c) for c in changes])
        user_data = module.params["user_data"]
        if user_data is None and config.fleet.mode == "scaling_group":
            from mlops_vm.environment.boot_config import environment_user_data

            user_data = environment_user_data(
                config,
                inventory_dir,
                registry_username=module.params["registry_username"],
                registry_password=module.params["registry_password"],
                api_keys=module.params["api_keys"],
            )
        spec = fleet_spec(config, inventory_dir, user_data)
        lb_spec = load_balancer_spec(config, inventory_dir)
        provider.validate(spec, lb_spec)
        # A size some instance cannot take stops the run before anything is created;
        # playbooks/resize.yml plans and makes the resizes, host by host, after this.
        provider.plan_resizes(spec)
        # A smaller fleet.count: the instances that go leave the load balancer first.
        result = provider.converge_fleet(spec, lb_spec, dry_run=module.check_mode)
    except ConfigError as error:
        module.fail_json(msg=f"invalid configuration: {error}")
    except ProvisionError as error:
        # A GPU quota or stock-out: what to do about GPUs first.
        with_gpu_hint(
            error, config.provider.name, config.fleet.machine_type, config.fleet.accelerator
        )
        # What was made before the failure is real: the run's summary reports it.
        module.fail_json(
            msg=str(error),
            error=error.as_dict(),
            changed=bool(error.changes_so_far),
            changes=[str(c) for c in error.changes_so_far],
        )
    module.exit_json(
        changed=result.changed,
        changes=[str(c) for c in result.changes],
        instances=[asdict(i) for i in result.instances],
        hosts=[host_entry(i, config, inventory_dir) for i in result.instances],
        network=result.network,
    )


if __name__ == "__main__":
    main()
