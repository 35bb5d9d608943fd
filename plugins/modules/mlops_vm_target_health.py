#!/usr/bin/python
"""Documentation of the action plugin mlops_vm_target_health (plugins/action/), which reads
the load balancer on the controller in Ansible's worker process; like ansible.builtin.debug,
the module file only documents it."""

DOCUMENTATION = r"""
module: mlops_vm_target_health
short_description: Read the health an mlops-vm load balancer reports of every target
description:
  - Asks the environment's provider once for its load balancer's view of every target
    (ALB target health, GCP backend health, Application Gateway backend health, the local
    LB's server states; C(static), each host's HTTPS health check).
  - Changes nothing; the same in check mode.
  - An action plugin; it runs on the controller, with the Python that has C(mlops_vm).
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
