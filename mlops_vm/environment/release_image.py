"""An environment's release image: the ImageSpec a provider bakes (or finds), and the real
configure step that applies the roles to the image builder over SSH.

The roles and variables are those a scaling-group instance would apply at boot
(boot_config.environment_boot_config), so a baked instance ends up exactly where a cold boot
would. The fingerprint digests them without any secret. The configure step runs
`ansible-playbook playbooks/image-builder.yml` against the builder, as Packer's Ansible
provisioner does: the registry password goes to it in a vars file of this run only (it
pulls the model image), and the playbook logs the builder out of the registry before the
image is made. The API keys never go to a builder: the image's Nginx requires a key and
accepts none until the instance's boot hook (the fetcher, installed by the playbook) writes
the keys it read with the instance's identity (mlops_vm.bootstrap.baked).
"""

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from mlops_vm import paths
from mlops_vm.bootstrap import BootConfig
from mlops_vm.bootstrap.baked import render_baked_user_data
from mlops_vm.bootstrap.fingerprint import fingerprint
from mlops_vm.bootstrap.payload import variables
from mlops_vm.environment.boot_config import environment_boot_config
from mlops_vm.environment.config import EnvironmentConfig
from mlops_vm.environment.inventory import host_vars
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import ImageSpec, Instance

BUILDER_PLAYBOOK = paths.PROJECT_DIR / "playbooks" / "image-builder.yml"
# Baked into the image as bootstrap.baked.BOOT_HOOK: the fetcher, run with --baked.
BOOT_HOOK_SOURCE = Path(__file__).resolve().parent.parent / "bootstrap" / "fetch_script.py"
OUTPUT_TAIL = 40  # lines of a failed run shown in the error

Run = Callable[..., subprocess.CompletedProcess]


def release_image(
    config: EnvironmentConfig,
    inventory_dir: Path,
    *,
    registry_username: str = "",
    registry_password: str = "",
    api_keys: bool = False,
    run: Run = subprocess.run,
) -> ImageSpec:
    """The ImageSpec of CONFIG's release (model.image), its configure step ready. API_KEYS:
    whether the environment has API keys (the modules' CONFIG carries none): its Nginx then
    requires one, which the instances' boot hook writes."""
    boot = environment_boot_config(
        config,
        inventory_dir,
        registry_username=registry_username,
        registry_password=registry_password,
        role_vars=image_role_vars(config, api_keys),
    )
    return ImageSpec(
        env=config.env,
        release=config.model.image,
        fingerprint=fingerprint(boot),  # the password is in boot.secret_vars: not read
        keep_images=config.fleet.keep_images,
        configure=ansible_configure(config, inventory_dir, boot, run=run),
    )


def image_role_vars(config: EnvironmentConfig, api_keys: bool = False) -> dict:
    """What only an image is configured with: Nginx requires a key although it knows none
    (the boot hook writes them), and the hook's digest (a new hook is a new image)."""
    hook = hashlib.sha256(BOOT_HOOK_SOURCE.read_bytes()).hexdigest()
    return {
        "nginx_proxy_api_keys_at_boot": api_keys or bool(config.auth.api_keys),
        "mlops_vm_boot_hook_sha256": hook,
    }


def baked_user_data(image: ImageSpec) -> str:
    """What an instance booting from IMAGE is handed: its facts (a provider whose instances
    read secrets by identity renders it again with their references: bootstrap.baked)."""
    return render_baked_user_data(image.env, image.release, image.fingerprint)


def ansible_configure(
    config: EnvironmentConfig,
    inventory_dir: Path,
    boot: BootConfig,
    *,
    run: Run = subprocess.run,
) -> Callable[[Instance], None]:
    """The configure step: BOOT's roles applied to the builder over SSH, with its non-secret
    variables (and its secret ones, the registry password, in a file of this run only)."""

    def configure(builder: Instance) -> None:
        with tempfile.TemporaryDirectory(prefix="mlops-vm-bake-") as work:
            folder = Path(work)
            inventory = {"all": {"hosts": {"builder": host_vars(builder, config, inventory_dir)}}}
            write_private(folder / "inventory.yml", yaml.safe_dump(inventory))
            write_private(folder / "vars.yml", yaml.safe_dump(builder_variables(config, boot)))
            write_private(folder / "secrets.yml", yaml.safe_dump(dict(boot.secret_vars)))
            command = [
                "ansible-playbook",
                "-i",
                str(folder / "inventory.yml"),
                str(BUILDER_PLAYBOOK),
                "-e",
                f"@{folder / 'vars.yml'}",
                "-e",
                f"@{folder / 'secrets.yml'}",
            ]
            done = run(
                command,
                cwd=paths.PROJECT_DIR,
                # Ansible refuses a non-blocking stdin, and needs none.
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
                check=False,
            )
        if done.returncode != 0:
            tail = "\n".join((done.stdout or "").splitlines()[-OUTPUT_TAIL:])
            # The provider removes the builder all the same.
            raise ProvisionError(
                ErrorCode.INTERNAL,
                f"the roles failed on image builder {builder.name} "
                f"(ansible-playbook exit {done.returncode}):\n{tail}",
                hint="fix the failing task, then run again: a new builder is launched",
                operation="configure the image builder",
            )

    return configure


def builder_variables(config: EnvironmentConfig, boot: BootConfig) -> dict:
    """BOOT's variables for a run over SSH: the roles sign the host certificate with a CA
    on the controller (delegate_to localhost), the environment's, as for its fixed hosts;
    a cold boot keeps one on the instance itself instead."""
    return {
        **variables(boot),
        "nginx_proxy_ca_dir": str(environment_ca_dir(config.env)),
        "mlops_vm_boot_hook_src": str(BOOT_HOOK_SOURCE),
    }


def environment_ca_dir(env: str) -> Path:
    """Where playbooks/vars/environment.yml keeps ENV's CA (mlops_vm_ca_dir)."""
    return paths.STATE_DIR / "envs" / env / "pki"


def write_private(path: Path, text: str) -> None:
    """TEXT in PATH, readable by this user only (it may hold the registry password)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
