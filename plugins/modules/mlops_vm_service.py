#!/usr/bin/python
"""Ansible module: converge an environment's model service on its managed target."""

DOCUMENTATION = r"""
module: mlops_vm_service
short_description: Provision, release, roll back or destroy a model service on a managed target
description:
  - Validates the environment's C(mlops_vm) settings, then asks its managed target (C(target)
    ecs, ...) to converge the service, release a new revision, roll back to the previous one,
    or delete everything the environment owns.
  - Which release runs follows the rules of the VM side (mlops_vm/release/choose.py), read
    from the platform's revisions.
  - Idempotent by tags; in check mode it returns the planned changes and changes nothing.
options:
  state:
    description:
      - C(present) converges the service (a changed image is released health-gated);
        C(released) releases C(image) (default the inventory's, with the rules of C(deploy));
        C(rolled_back) returns to the previous revision; C(absent) deletes everything.
    type: str
    choices: [present, released, rolled_back, absent]
    default: present
  image:
    description: The image to release (C(mlops-vm deploy --image)); state C(released) only.
    type: str
    default: ""
  canary:
    description:
      - Turns the platform's canary (C(service.<platform>.canary.enabled)) on or off for this
        run (C(mlops-vm deploy --canary/--no-canary)); unset, the environment's setting.
    type: bool
  registry_username:
    description: The source registry's user (the image is copied from there).
    type: str
    default: ""
  registry_password:
    description: The source registry's password (never logged).
    type: str
    default: ""
extends_documentation_fragment:
  - mlops_vm.deploy.environment
"""

RETURN = r"""
changes:
  description:
    - What was (or, in check mode, would be) created, updated or deleted.
    - On a failure, what was made before it.
  type: list
  elements: str
  returned: always
service:
  description: The service record (URL, active and previous revision, traffic, health).
  type: dict
  returned: unless state is absent
endpoint:
  description: The service's URL.
  type: str
  returned: unless state is absent
release:
  description: The release that runs (image, source, notes).
  type: dict
  returned: unless state is absent
"""

from dataclasses import asdict, replace

try:  # from the checkout: ansible.cfg's module_utils path
    from ansible.module_utils import mlops_vm_common as common
except ImportError:  # from the built collection
    from ansible_collections.mlops_vm.deploy.plugins.module_utils import mlops_vm_common as common

MODES = {"present": "provision", "released": "deploy", "rolled_back": "rollback"}


def main() -> None:
    run = common.EnvironmentRun(
        {
            "state": {
                "type": "str",
                "choices": ["present", "released", "rolled_back", "absent"],
                "default": "present",
            },
            "image": {"type": "str", "default": ""},
            "canary": {"type": "bool"},
            "registry_username": {"type": "str", "default": ""},
            "registry_password": {"type": "str", "default": "", "no_log": True},
        }
    )
    params = run.params
    state = params["state"]
    dry_run = run.check_mode
    with run:
        config = run.load_config()
        target = run.service_target()
        from mlops_vm.environment.service_spec import service_spec
        from mlops_vm.services.canary import with_canary
        from mlops_vm.services.releases import choose_service_release

        if state == "absent":
            changes = target.destroy(config.env, dry_run=dry_run)
            run.module.exit_json(changed=bool(changes), changes=common.strings(changes))
        choice = choose_service_release(
            MODES[state], config.model.model_dump(), target.status(config.env), params["image"]
        )
        spec = service_spec(config, run.inventory_dir, choice)
        spec = with_canary(target, spec, params["canary"])
        # The source registry's credentials arrive apart from the settings (no_log).
        spec = replace(
            spec,
            registry=replace(
                spec.registry,
                username=params["registry_username"],
                password=params["registry_password"],
            ),
        )
        target.validate(spec)
        if state == "present":
            result = target.ensure_service(spec, dry_run=dry_run)
        elif state == "released":
            result = target.release(spec, dry_run=dry_run)
        else:
            result = target.rollback(config.env, dry_run=dry_run)
    record = result.record
    run.module.exit_json(
        changed=result.changed,
        changes=common.strings(result.changes),
        service=asdict(record) if record else {},
        endpoint=record.url if record else None,
        release={
            "image": choice.release["image"],
            "source": choice.source,
            "notes": [*choice.notes, *result.notes],
            "hosts_changed": [spec.name] if result.changed else [],
        },
    )


if __name__ == "__main__":
    main()
