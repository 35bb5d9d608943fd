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
  - Runs on the controller, with the Python that has mlops_vm installed.
options:
  config:
    description: The environment's C(mlops_vm) variable, secrets removed.
    type: dict
    required: true
  inventory_dir:
    description: The environment's inventory directory (relative paths start there).
    type: path
    required: true
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
  registry_username:
    description: The source registry's user (the image is copied from there).
    type: str
    default: ""
  registry_password:
    description: The source registry's password (never logged).
    type: str
    default: ""
notes:
  - Supports check mode.
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
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

MODES = {"present": "provision", "released": "deploy", "rolled_back": "rollback"}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config": {"type": "dict", "required": True},
            "inventory_dir": {"type": "path", "required": True},
            "state": {
                "type": "str",
                "choices": ["present", "released", "rolled_back", "absent"],
                "default": "present",
            },
            "image": {"type": "str", "default": ""},
            "registry_username": {"type": "str", "default": ""},
            "registry_password": {"type": "str", "default": "", "no_log": True},
        },
        supports_check_mode=True,
    )
    from mlops_vm.environment.config import ConfigError, validate_config
    from mlops_vm.environment.service_spec import service_spec
    from mlops_vm.environment.specs import provider_settings
    from mlops_vm.provision import ProvisionError
    from mlops_vm.release.choose import ReleaseError
    from mlops_vm.services import get_service_target
    from mlops_vm.services.releases import choose_service_release

    params = module.params
    inventory_dir = Path(params["inventory_dir"])
    state = params["state"]
    dry_run = module.check_mode
    try:
        config = validate_config(params["config"], source=inventory_dir / "group_vars")
        target = get_service_target(config.target, provider_settings(config))
        if state == "absent":
            changes = target.destroy(config.env, dry_run=dry_run)
            module.exit_json(changed=bool(changes), changes=[str(c) for c in changes])
        choice = choose_service_release(
            MODES[state], config.model.model_dump(), target.status(config.env), params["image"]
        )
        spec = service_spec(config, inventory_dir, choice)
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
    except ConfigError as error:
        module.fail_json(msg=f"invalid configuration: {error}")
    except ReleaseError as error:
        module.fail_json(msg=str(error))
    except ProvisionError as error:
        # What was made before the failure is real: the run's summary reports it.
        module.fail_json(
            msg=str(error),
            error=error.as_dict(),
            changed=bool(error.changes_so_far),
            changes=[str(c) for c in error.changes_so_far],
        )
    record = result.record
    module.exit_json(
        changed=result.changed,
        changes=[str(c) for c in result.changes],
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
