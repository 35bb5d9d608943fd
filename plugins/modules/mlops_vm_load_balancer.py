#!/usr/bin/python
"""Ansible module: converge an environment's load balancer and wait for healthy targets."""

DOCUMENTATION = r"""
module: mlops_vm_load_balancer
short_description: Put an mlops-vm environment's load balancer in front of its fleet
description:
  - Asks the environment's provider for its load balancer (a managed LB on the clouds, an
    Nginx LB host on the local provider), registered with the fleet's instances.
  - With I(wait_healthy_timeout_s) > 0, waits until every instance is a healthy target.
  - In check mode it returns the planned changes and changes nothing.
options:
  fleet:
    description: The result of M(mlops_vm.deploy.mlops_vm_fleet) (instances and network).
    type: dict
    required: true
  wait_healthy_timeout_s:
    description: How long to wait for healthy targets; 0 does not wait.
    type: int
    default: 0
extends_documentation_fragment:
  - mlops_vm.deploy.environment
"""

RETURN = r"""
endpoint:
  description: The HTTPS endpoint users call.
  type: str
  returned: always
changes:
  description:
    - What was (or would be) created, updated or deleted.
    - On a provider failure, what was made before it.
  type: list
  elements: str
  returned: always
hosts:
  description: Load balancer hosts Ansible configures (local provider), for add_host.
  type: list
  elements: dict
  returned: always
targets:
  description: Each target's health.
  type: list
  elements: dict
  returned: always
trusted_proxies:
  description:
    - Networks (CIDRs) the load balancer's requests come from, whose X-Forwarded-For
      the model hosts believe (see mlops_vm/environment/edge.py).
  type: list
  elements: str
  returned: always
"""

from dataclasses import asdict

try:  # from the checkout: ansible.cfg's module_utils path
    from ansible.module_utils import mlops_vm_common as common
except ImportError:  # from the built collection
    from ansible_collections.mlops_vm.deploy.plugins.module_utils import mlops_vm_common as common


def main() -> None:
    run = common.EnvironmentRun(
        {
            "fleet": {"type": "dict", "required": True},
            "wait_healthy_timeout_s": {"type": "int", "default": 0},
        }
    )
    fleet_data = run.params["fleet"]
    with run:
        config = run.load_config()
        provider = run.provider()
        from mlops_vm.environment.edge import trusted_proxies
        from mlops_vm.environment.inventory import host_entry
        from mlops_vm.environment.specs import load_balancer_spec
        from mlops_vm.provision import FleetResult, Instance

        spec = load_balancer_spec(config, run.inventory_dir)
        fleet = FleetResult(
            instances=[Instance(**i) for i in fleet_data.get("instances", [])],
            network=fleet_data.get("network", {}),
        )
        result = provider.ensure_load_balancer(spec, fleet, dry_run=run.check_mode)
        # The load balancer's changes, reported even if the health wait fails.
        run.made = list(result.changes)
        targets = []
        timeout_s = run.params["wait_healthy_timeout_s"]
        if timeout_s > 0 and not run.check_mode:
            targets = provider.wait_healthy(
                spec, expected=len(fleet.instances), timeout_s=timeout_s, poll_s=2
            )
    run.module.exit_json(
        changed=result.changed,
        endpoint=result.endpoint,
        changes=common.strings(result.changes),
        hosts=[host_entry(h, config, run.inventory_dir) for h in result.resources.get("hosts", [])],
        targets=[asdict(t) for t in targets],
        trusted_proxies=trusted_proxies(
            config.provider.name,
            fleet.network.get("cidr") or config.fleet.network.cidr,
            result.resources.get("address"),
        ),
    )


if __name__ == "__main__":
    main()
