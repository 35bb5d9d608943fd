"""The user-data of an instance booting from a baked image: only what is per instance.

The image already holds everything the roles make (Docker engine, Nginx, the non-secret
settings, the model image pulled, the containers set to start with the engine), so the
instance installs nothing and runs no Ansible at boot. What remains per instance is which
environment and release it belongs to and, when the environment has secrets, where they
are: the references (never a value) in a boot source, which the image's boot hook (the
fetcher, fetch_script.py, baked in by playbooks/image-builder.yml) reads with the
instance's own identity and applies: the API keys into the file the baked Nginx includes,
a registry login only when the model must be pulled again. A few hundred bytes plus the
references, far from any cloud's user-data limit.
"""

from collections.abc import Mapping

import yaml

from mlops_vm.bootstrap.boot_source import BootSource
from mlops_vm.bootstrap.payload import DONE_MARKER, BlockDumper, LiteralText

INSTANCE_FILE = "/etc/mlops-vm/instance.env"
# The fetcher, baked into the image: run with --baked on the source below.
BOOT_HOOK = "/opt/mlops-vm/instance-boot"
BOOT_SOURCE = "/etc/mlops-vm/boot-source.json"
# The nginx_proxy role's defaults (an environment sets neither): where the hook writes.
API_KEYS_FILE = "/etc/nginx/api-keys.conf"
API_KEY_HEADER = "X-API-Key"


def baked_facts(
    model_image: str, registry_host: str = "", registry_username: str = ""
) -> Mapping[str, str]:
    """BootSource.baked: what the hook applies the secrets to (nothing secret)."""
    facts = {
        "api_keys_file": API_KEYS_FILE,
        "api_key_header": API_KEY_HEADER,
        "model_image": model_image,
    }
    if registry_host and registry_username:  # a password login, should a pull be needed
        facts |= {"registry_host": registry_host, "registry_username": registry_username}
    return facts


def render_baked_user_data(
    env: str, release: str, fingerprint: str, source: BootSource | None = None
) -> str:
    """#cloud-config for an instance of ENV booting from the image of RELEASE; with SOURCE,
    the hook reads the secrets it references with the instance's identity."""
    facts = f"MLOPS_VM_ENV={env}\nMLOPS_VM_RELEASE={release}\nMLOPS_VM_IMAGE={fingerprint}\n"
    files = [{"path": INSTANCE_FILE, "owner": "root:root", "permissions": "0644", "content": facts}]
    command = f'mkdir -p "$(dirname {DONE_MARKER})" && touch {DONE_MARKER}'
    if source is not None:
        files.append(
            {
                "path": BOOT_SOURCE,
                "owner": "root:root",
                "permissions": "0600",
                "content": LiteralText(source.as_json()),
            }
        )
        # No hook, or a failed one: the instance never reports done (and serves no key).
        command = f"{BOOT_HOOK} {BOOT_SOURCE} --baked && {command}"
    document = {"locale": False, "write_files": files, "runcmd": [["sh", "-c", command]]}
    return (
        "#cloud-config\n"
        "# mlops-vm: a baked image; only this instance's facts (mlops_vm.bootstrap.baked)\n"
        + yaml.dump(document, Dumper=BlockDumper, sort_keys=False, width=4096)
    )
