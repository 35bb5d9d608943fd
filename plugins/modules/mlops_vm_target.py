#!/usr/bin/python
"""Ansible module: take one instance out of the load balancer, or put it back."""

DOCUMENTATION = r"""
module: mlops_vm_target
short_description: Drain an instance out of an mlops-vm load balancer, or put it back
description:
  - I(state=drained) takes the instance out of the environment's load balancer and returns
    once requests in flight on it have finished (ALB deregistration delay, GCP connection
    draining, Application Gateway draining, the local LB's drain state).
  - I(state=serving) puts it back and, with I(wait_healthy_timeout_s) > 0, waits until the
    load balancer reports it healthy.
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
    description: The provider's id of the instance (the host's C(mlops_vm_instance_id)).
    type: str
    required: true
  state:
    description: Where the instance should be.
    type: str
    choices: [drained, serving]
    required: true
  wait_healthy_timeout_s:
    description: With I(state=serving), how long to wait for a healthy target; 0 does not wait.
    type: int
    default: 0
notes:
  - Supports check mode.
"""

RETURN = r"""
changes:
  description: What was (or would be) changed.
  type: list
  elements: str
  returned: always
health:
  description: The target's health once serving (healthy, reason).
  type: dict
  returned: when waited
"""

from dataclasses import asdict
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config": {"type": "dict", "required": True},
            "inventory_dir": {"type": "path", "required": True},
            "instance_id": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["drained", "serving"], "required": True},
            "wait_healthy_timeout_s": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    from mlops_vm.environment.config import ConfigError, validate_config
    from mlops_vm.environment.specs import load_balancer_spec, provider_settings
    from mlops_vm.provision import ProvisionError, get_provider

    inventory_dir = Path(module.params["inventory_dir"])
    instance_id = module.params["instance_id"]
    health = None
    try:
        config = validate_config(module.params["config"], source=inventory_dir / "group_vars")
        provider = get_provider(provider_settings(config))
        spec = load_balancer_spec(config, inventory_dir)
        found = [i for i in provider.list_instances(config.env) if i.id == instance_id]
        if not found:
            module.fail_json(msg=f"no instance {instance_id} in environment {config.env}")
        if module.params["state"] == "drained":
            changes = provider.deregister_target(spec, found[0], dry_run=module.check_mode)
        else:
            changes = provider.register_target(spec, found[0], dry_run=module.check_mode)
            timeout_s = module.params["wait_healthy_timeout_s"]
            if timeout_s > 0 and not module.check_mode:
                health = provider.wait_target_healthy(spec, instance_id, timeout_s=timeout_s)
    except ConfigError as error:
        module.fail_json(msg=f"invalid configuration: {error}")
    except ProvisionError as error:
        module.fail_json(msg=str(error), error=error.as_dict())
    result = {"changed": bool(changes), "changes": [str(c) for c in changes]}
    if health is not None:
        result["health"] = asdict(health)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
