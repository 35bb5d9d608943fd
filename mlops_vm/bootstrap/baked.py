"""The user-data of an instance booting from a baked image: only what is per instance.

The image already holds everything the roles make (Docker engine, Nginx, the non-secret
settings, the model image pulled, the containers set to start with the engine), so the
instance installs nothing and runs no Ansible at boot. What remains per instance is which
environment and release it belongs to, and the hook an image may carry for what must come
at boot (the secrets, read from the cloud's secret store with the instance's own
identity: never from here). No role file, no variable, no secret: a few hundred bytes,
far from any cloud's user-data limit.
"""

import yaml

from mlops_vm.bootstrap.payload import DONE_MARKER, BlockDumper

INSTANCE_FILE = "/etc/mlops-vm/instance.env"
# Run when the image has one (what fetches the secrets by identity); absent, nothing to do.
BOOT_HOOK = "/opt/mlops-vm/instance-boot"


def render_baked_user_data(env: str, release: str, fingerprint: str) -> str:
    """#cloud-config for an instance of ENV booting from the image of RELEASE."""
    facts = f"MLOPS_VM_ENV={env}\nMLOPS_VM_RELEASE={release}\nMLOPS_VM_IMAGE={fingerprint}\n"
    document = {
        "locale": False,
        "write_files": [
            {"path": INSTANCE_FILE, "owner": "root:root", "permissions": "0644", "content": facts}
        ],
        "runcmd": [
            ["sh", "-c", f"if [ -x {BOOT_HOOK} ]; then {BOOT_HOOK}; fi"],
            ["sh", "-c", f'mkdir -p "$(dirname {DONE_MARKER})" && touch {DONE_MARKER}'],
        ],
    }
    return (
        "#cloud-config\n"
        "# mlops-vm: a baked image; only this instance's facts (mlops_vm.bootstrap.baked)\n"
        + yaml.dump(document, Dumper=BlockDumper, sort_keys=False, width=4096)
    )
