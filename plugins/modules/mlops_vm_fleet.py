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
options:
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
    description:
      - The model registry's password, for scaling-group instances (never logged).
      - Not used where the instances boot by identity (AWS); they read C(fleet.secrets) at boot.
    type: str
    default: ""
  api_keys:
    description: The API keys scaling-group instances accept (never logged).
    type: list
    elements: str
    default: []
  rollback:
    description:
      - For scaling groups with C(state=present) only. Releases again the model image the
        group ran before its current one (recorded on the group by each release), through
        the same health-gated rolling update; fails when the group records none.
    type: bool
    default: false
extends_documentation_fragment:
  - mlops_vm.deploy.environment
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
release:
  description: The model image a scaling group was rolled to (for a rollback, the previous one).
  type: str
  returned: when state is present
rolled_back:
  description: The scaling group was returned to the release it recorded as replaced.
  type: bool
  returned: when state is present
"""

from dataclasses import asdict, replace

try:  # from the checkout: ansible.cfg's module_utils path
    from ansible.module_utils import mlops_vm_common as common
except ImportError:  # from the built collection
    from ansible_collections.mlops_vm.deploy.plugins.module_utils import mlops_vm_common as common


def main() -> None:
    run = common.EnvironmentRun(
        {
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "user_data": {"type": "str", "no_log": True},
            "registry_username": {"type": "str", "default": ""},
            "registry_password": {"type": "str", "default": "", "no_log": True},
            "api_keys": {"type": "list", "elements": "str", "default": [], "no_log": True},
            "rollback": {"type": "bool", "default": False},
        },
        gpu_hint=True,
    )
    params = run.params
    with run:
        config = run.load_config()
        provider = run.provider()
        from mlops_vm.environment.inventory import host_entry
        from mlops_vm.environment.specs import fleet_spec, load_balancer_spec

        if params["state"] == "absent":
            changes = provider.destroy(config.env, dry_run=run.check_mode)
            run.module.exit_json(changed=bool(changes), changes=common.strings(changes))
        from mlops_vm.environment.config import bakes_image, boots_by_identity

        if params["rollback"] and config.fleet.mode == "scaling_group":
            from mlops_vm.release.choose import group_rollback_image

            image = group_rollback_image(config.env, provider.previous_release(config.env))
            model = config.model.model_copy(update={"image": image})
            config = run.config = config.model_copy(update={"model": model})
        user_data = params["user_data"]
        image = None
        if bakes_image(config):
            # The release's baked image (found by fingerprint, else baked now); its
            # instances are handed only their own facts (and, where they read their
            # secrets by identity, the references: the provider renders that user-data).
            from mlops_vm.environment.release_image import baked_user_data, release_image

            image = release_image(
                config,
                run.inventory_dir,
                registry_username=params["registry_username"],
                registry_password=params["registry_password"],
                api_keys=bool(params["api_keys"]),
            )
            user_data = user_data if user_data is not None else baked_user_data(image)
        elif (
            user_data is None
            and config.fleet.mode == "scaling_group"
            and not boots_by_identity(config)
        ):
            # The user-data carries the payload and the run's secrets. (Booting by identity,
            # the provider renders secret-free user-data from fleet_spec's boot plan.)
            from mlops_vm.environment.boot_config import (
                environment_boot_config,
                environment_user_data,
            )

            boot = environment_boot_config(
                config,
                run.inventory_dir,
                registry_username=params["registry_username"],
                registry_password=params["registry_password"],
                api_keys=params["api_keys"],
            )
            user_data = environment_user_data(config, boot)
        spec = fleet_spec(config, run.inventory_dir, user_data, image)
        if params["user_data"] is not None:
            # The caller's own user-data is used as given, no boot by identity around it.
            spec = replace(spec, instance=replace(spec.instance, boot=None))
        lb_spec = load_balancer_spec(config, run.inventory_dir)
        provider.validate(spec, lb_spec)
        # A size some instance cannot take stops the run before anything is created;
        # playbooks/resize.yml plans and makes the resizes, host by host, after this.
        provider.plan_resizes(spec)
        rollback_group = getattr(provider, "rollback_group", None)
        if params["rollback"] and spec.mode == "scaling_group" and rollback_group:
            # Back to the image the last release replaced (the group records it).
            from mlops_vm.provision.model import FleetResult

            changes = rollback_group(config.env, dry_run=run.check_mode)
            result = FleetResult(provider.list_instances(config.env, spec.role), changes)
            rolled_back = True
        else:
            rolled_back = False
            # A smaller fleet.count: the instances that go leave the load balancer first.
            result = provider.converge_fleet(spec, lb_spec, dry_run=run.check_mode)
    run.module.exit_json(
        changed=result.changed,
        changes=common.strings(result.changes),
        instances=[asdict(i) for i in result.instances],
        hosts=[host_entry(i, config, run.inventory_dir) for i in result.instances],
        network=result.network,
        release=config.model.image,
        rolled_back=rolled_back,
    )


if __name__ == "__main__":
    main()
