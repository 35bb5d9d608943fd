#!/usr/bin/python
"""Ansible module: the resizes a fleet needs, or one instance resized."""

DOCUMENTATION = r"""
module: mlops_vm_resize
short_description: Plan or make the resize of an mlops-vm environment's instances
description:
  - Without I(instance_id), lists the instances whose machine type or disk differs from
    the environment's C(fleet.machine_type) and C(fleet.disk_gb), with what would change
    on each (C(resizes)); every instance is checked first, so a resize that one of them
    cannot take fails here, before anything is touched. It changes nothing.
  - With I(instance_id), resizes that instance (AWS stop, modify, start; GCP stop,
    setMachineType, start; Azure resize; local the VM container's CPU and memory limits)
    and returns once it runs again. Take it out of the load balancer first
    (M(mlops_vm_target)). No change when it already has the size.
  - Scaling groups roll through their template (M(mlops_vm_fleet)): nothing to do here.
  - In check mode it says what it would do and changes nothing.
options:
  config:
    description: The environment's C(mlops_vm) variable, secrets removed.
    type: dict
    required: true
  inventory_dir:
    description: The environment's inventory directory.
    type: path
    required: true
  instance_id:
    description: The provider's id of the instance to resize; omitted, the plan.
    type: str
notes:
  - Supports check mode.
"""

RETURN = r"""
resizes:
  description: Instance id -> the changes its resize makes (plan only).
  type: dict
  returned: without instance_id
changes:
  description: What was (or would be) changed.
  type: list
  elements: str
  returned: always
instance:
  description: The instance as its provider sees it after the resize (its address may change).
  type: dict
  returned: with instance_id
"""

from dataclasses import asdict
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config": {"type": "dict", "required": True},
            "inventory_dir": {"type": "path", "required": True},
            "instance_id": {"type": "str"},
        },
        supports_check_mode=True,
    )
    from mlops_vm.environment.config import ConfigError, validate_config
    from mlops_vm.environment.specs import fleet_spec, provider_settings
    from mlops_vm.provision import ProvisionError, get_provider
    from mlops_vm.provision.gpu_hints import with_gpu_hint

    inventory_dir = Path(module.params["inventory_dir"])
    instance_id = module.params["instance_id"]
    try:
        config = validate_config(module.params["config"], source=inventory_dir / "group_vars")
        provider = get_provider(provider_settings(config))
        spec = fleet_spec(config, inventory_dir)
        if instance_id is None:
            plan = provider.plan_resizes(spec)
            module.exit_json(
                changed=False,
                resizes={key: [str(c) for c in changes] for key, changes in plan.items()},
                changes=[str(c) for changes in plan.values() for c in changes],
            )
        found = [i for i in provider.list_instances(config.env, spec.role) if i.id == instance_id]
        if not found:
            module.fail_json(msg=f"no instance {instance_id} in environment {config.env}")
        changes = provider.resize_instance(spec, found[0], dry_run=module.check_mode)
        after = [i for i in provider.list_instances(config.env, spec.role) if i.id == instance_id]
    except ConfigError as error:
        module.fail_json(msg=f"invalid configuration: {error}")
    except ProvisionError as error:
        # A GPU quota or stock-out: what to do about GPUs first.
        with_gpu_hint(
            error, config.provider.name, config.fleet.machine_type, config.fleet.accelerator
        )
        module.fail_json(msg=str(error), error=error.as_dict())
    module.exit_json(
        changed=bool(changes),
        changes=[str(c) for c in changes],
        instance=asdict((after or found)[0]),
    )


if __name__ == "__main__":
    main()
