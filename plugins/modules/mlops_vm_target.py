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
extends_documentation_fragment:
  - mlops_vm.deploy.environment
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

try:  # from the checkout: ansible.cfg's module_utils path
    from ansible.module_utils import mlops_vm_common as common
except ImportError:  # from the built collection
    from ansible_collections.mlops_vm.deploy.plugins.module_utils import mlops_vm_common as common


def main() -> None:
    run = common.EnvironmentRun(
        {
            "instance_id": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["drained", "serving"], "required": True},
            "wait_healthy_timeout_s": {"type": "int", "default": 0},
        },
        report_changes=False,
    )
    instance_id = run.params["instance_id"]
    health = None
    with run:
        config = run.load_config()
        provider = run.provider()
        from mlops_vm.environment.specs import load_balancer_spec

        spec = load_balancer_spec(config, run.inventory_dir)
        instance = run.instance(provider.list_instances(config.env), instance_id)
        if run.params["state"] == "drained":
            changes = provider.deregister_target(spec, instance, dry_run=run.check_mode)
        else:
            changes = provider.register_target(spec, instance, dry_run=run.check_mode)
            timeout_s = run.params["wait_healthy_timeout_s"]
            if timeout_s > 0 and not run.check_mode:
                health = provider.wait_target_healthy(spec, instance_id, timeout_s=timeout_s)
    result = {"changed": bool(changes), "changes": common.strings(changes)}
    if health is not None:
        result["health"] = asdict(health)
    run.module.exit_json(**result)


if __name__ == "__main__":
    main()
