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
  config:
    description: The environment's C(mlops_vm) variable, secrets removed.
    type: dict
    required: true
  inventory_dir:
    description: The environment's inventory directory.
    type: path
    required: true
  fleet:
    description: The result of M(mlops_vm_fleet) (instances and network).
    type: dict
    required: true
  wait_healthy_timeout_s:
    description: How long to wait for healthy targets; 0 does not wait.
    type: int
    default: 0
notes:
  - Supports check mode.
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
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config": {"type": "dict", "required": True},
            "inventory_dir": {"type": "path", "required": True},
            "fleet": {"type": "dict", "required": True},
            "wait_healthy_timeout_s": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    from mlops_vm.environment.config import ConfigError, validate_config
    from mlops_vm.environment.edge import trusted_proxies
    from mlops_vm.environment.inventory import host_entry
    from mlops_vm.environment.specs import load_balancer_spec, provider_settings
    from mlops_vm.provision import FleetResult, Instance, ProvisionError, get_provider

    inventory_dir = Path(module.params["inventory_dir"])
    fleet_data = module.params["fleet"]
    made: list = []  # the load balancer's changes, reported even if the health wait fails
    try:
        config = validate_config(module.params["config"], source=inventory_dir / "group_vars")
        provider = get_provider(provider_settings(config))
        spec = load_balancer_spec(config, inventory_dir)
        fleet = FleetResult(
            instances=[Instance(**i) for i in fleet_data.get("instances", [])],
            network=fleet_data.get("network", {}),
        )
        result = provider.ensure_load_balancer(spec, fleet, dry_run=module.check_mode)
        made = list(result.changes)
        targets = []
        timeout_s = module.params["wait_healthy_timeout_s"]
        if timeout_s > 0 and not module.check_mode:
            targets = provider.wait_healthy(
                spec, expected=len(fleet.instances), timeout_s=timeout_s, poll_s=2
            )
    except ConfigError as error:
        module.fail_json(msg=f"invalid configuration: {error}")
    except ProvisionError as error:
        changes = [*made, *error.changes_so_far]
        module.fail_json(
            msg=str(error),
            error=error.as_dict(),
            changed=bool(changes),
            changes=[str(c) for c in changes],
        )
    module.exit_json(
        changed=result.changed,
        endpoint=result.endpoint,
        changes=[str(c) for c in result.changes],
        hosts=[host_entry(h, config, inventory_dir) for h in result.resources.get("hosts", [])],
        targets=[asdict(t) for t in targets],
        trusted_proxies=trusted_proxies(
            config.provider.name,
            fleet.network.get("cidr") or config.fleet.network.cidr,
            result.resources.get("address"),
        ),
    )


if __name__ == "__main__":
    main()
