#!/usr/bin/python
"""Ansible module: what an mlops-vm environment's load balancer reports of its targets."""

DOCUMENTATION = r"""
module: mlops_vm_target_health
short_description: Read the health an mlops-vm load balancer reports of every target
description:
  - Asks the environment's provider once for its load balancer's view of every target
    (ALB target health, GCP backend health, Application Gateway backend health, the local
    LB's server states; C(static), each host's HTTPS health check).
  - Changes nothing; the same in check mode.
  - A release reads it before its swaps; a host the load balancer reports healthy, swapped
    in place, never leaves it and is not registered again.
extends_documentation_fragment:
  - mlops_vm.deploy.environment
"""

EXAMPLES = r"""
- name: Read which model hosts the load balancer reports healthy
  mlops_vm.deploy.mlops_vm_target_health:
    config: "{{ mlops_vm_public }}"
    inventory_dir: "{{ mlops_vm_inventory_dir }}"
  delegate_to: localhost
  run_once: true
  register: targets
"""

RETURN = r"""
targets:
  description: Each target as the load balancer reports it (instance_id, healthy, reason).
  type: list
  elements: dict
  returned: always
serving:
  description:
    - Instance id -> whether the load balancer reports it healthy (in more than one backend,
      healthy once one of them says so). An instance it does not list is absent.
  type: dict
  returned: always
"""

from dataclasses import asdict

try:  # from the checkout: ansible.cfg's module_utils path
    from ansible.module_utils import mlops_vm_common as common
except ImportError:  # from the built collection
    from ansible_collections.mlops_vm.deploy.plugins.module_utils import mlops_vm_common as common


def main() -> None:
    run = common.EnvironmentRun({}, report_changes=False)
    with run:
        config = run.load_config()
        provider = run.provider()
        from mlops_vm.environment.specs import load_balancer_spec

        targets = provider.target_health(load_balancer_spec(config, run.inventory_dir))
    serving: dict[str, bool] = {}
    for target in targets:
        serving[target.instance_id] = serving.get(target.instance_id, False) or target.healthy
    run.module.exit_json(changed=False, targets=[asdict(t) for t in targets], serving=serving)


if __name__ == "__main__":
    main()
