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
    (M(mlops_vm.deploy.mlops_vm_target)). No change when it already has the size.
  - Scaling groups roll through their template (M(mlops_vm.deploy.mlops_vm_fleet)), so there is
    nothing to do here.
  - In check mode it says what it would do and changes nothing.
options:
  instance_id:
    description: The provider's id of the instance to resize; omitted, the plan.
    type: str
extends_documentation_fragment:
  - mlops_vm.deploy.environment
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

try:  # from the checkout: ansible.cfg's module_utils path
    from ansible.module_utils import mlops_vm_common as common
except ImportError:  # from the built collection
    from ansible_collections.mlops_vm.deploy.plugins.module_utils import mlops_vm_common as common


def main() -> None:
    run = common.EnvironmentRun(
        {"instance_id": {"type": "str"}}, report_changes=False, gpu_hint=True
    )
    instance_id = run.params["instance_id"]
    with run:
        config = run.load_config()
        provider = run.provider()
        from mlops_vm.environment.specs import fleet_spec

        spec = fleet_spec(config, run.inventory_dir)
        if instance_id is None:
            plan = provider.plan_resizes(spec)
            run.module.exit_json(
                changed=False,
                resizes={key: common.strings(changes) for key, changes in plan.items()},
                changes=[str(c) for changes in plan.values() for c in changes],
            )
        instance = run.instance(provider.list_instances(config.env, spec.role), instance_id)
        changes = provider.resize_instance(spec, instance, dry_run=run.check_mode)
        after = [i for i in provider.list_instances(config.env, spec.role) if i.id == instance_id]
    run.module.exit_json(
        changed=bool(changes),
        changes=common.strings(changes),
        instance=asdict((after or [instance])[0]),
    )


if __name__ == "__main__":
    main()
