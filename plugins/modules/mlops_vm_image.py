#!/usr/bin/python
"""Ansible module: the machine image of an environment's release (baked, or found)."""

DOCUMENTATION = r"""
module: mlops_vm_image
short_description: Bake (or find) the machine image of an mlops-vm environment's release
description:
  - Computes the release's fingerprint (the roles' files, the non-secret settings, the
    model image reference) and asks the environment's provider for the image tagged with
    it. When there is none, a builder instance is launched in the environment's network,
    the project's roles are applied to it over SSH (playbooks/image-builder.yml), it is
    imaged and removed, also after a failure.
  - The environment's images beyond C(fleet.keep_images) are removed (with their snapshots).
  - In check mode it returns the planned changes and changes nothing.
options:
  registry_username:
    description: The model registry's user (the builder pulls the model image).
    type: str
    default: ""
  registry_password:
    description: The model registry's password (never logged, never in the image).
    type: str
    default: ""
  api_keys:
    description:
      - Whether the environment has API keys (the config given carries none). A baked image
        carries none either; its Nginx requires a key, which the image's boot hook reads
        at boot with the instance's identity (fleet.secrets.api_keys).
    type: bool
    default: false
extends_documentation_fragment:
  - mlops_vm.deploy.environment
"""

RETURN = r"""
changes:
  description: What was (or, in check mode, would be) created or deleted.
  type: list
  elements: str
  returned: always
image:
  description: The image's id, name, release, fingerprint, and whether it existed already.
  type: dict
  returned: success
"""

try:  # from the checkout: ansible.cfg's module_utils path
    from ansible.module_utils import mlops_vm_common as common
except ImportError:  # from the built collection
    from ansible_collections.mlops_vm.deploy.plugins.module_utils import mlops_vm_common as common


def main() -> None:
    run = common.EnvironmentRun(
        {
            "registry_username": {"type": "str", "default": ""},
            "registry_password": {"type": "str", "default": "", "no_log": True},
            "api_keys": {"type": "bool", "default": False},
        }
    )
    params = run.params
    with run:
        config = run.load_config()
        provider = run.provider()
        from mlops_vm.environment.release_image import release_image
        from mlops_vm.environment.specs import fleet_spec

        image = release_image(
            config,
            run.inventory_dir,
            registry_username=params["registry_username"],
            registry_password=params["registry_password"],
            api_keys=params["api_keys"],
        )
        result, changes = provider.ensure_release_image(
            fleet_spec(config, run.inventory_dir), image, dry_run=run.check_mode
        )
    run.module.exit_json(
        changed=bool(changes),
        changes=common.strings(changes),
        image={
            "id": result.image_id,
            "name": result.name,
            "release": image.release,
            "fingerprint": image.fingerprint,
            "reused": result.reused,
        },
    )


if __name__ == "__main__":
    main()
