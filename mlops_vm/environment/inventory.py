"""How Ansible reaches an instance: the host variables built from an `Instance` record.

Used by the fleet module (add_host during a run) and by the inventory plugin (later runs),
so both give Ansible the same connection settings.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_vm import paths
from mlops_vm.environment.config import EnvironmentConfig, resolve_path
from mlops_vm.provision.model import Instance


def host_vars(instance: Instance, config: EnvironmentConfig, inventory_dir: Path) -> dict[str, Any]:
    common = {"mlops_vm_private_ip": instance.private_ip, "mlops_vm_instance_id": instance.id}
    port = int(instance.tags.get("ssh_port", 22))
    known_hosts = paths.known_hosts_file(config.env)
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    host = {
        **common,
        "ansible_connection": "ssh",
        "ansible_host": instance.address,
        "ansible_port": port,
        "ansible_user": instance.ssh_user or config.fleet.ssh_user,
        "ansible_become": True,
        "ansible_python_interpreter": "/usr/bin/python3",
        # Trust a host key on first contact, per environment, and refuse a changed one.
        "ansible_ssh_common_args": (
            f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={known_hosts}"
        ),
    }
    if instance.tags.get("ssh_key_file"):  # a key the provider made (local)
        host["ansible_ssh_private_key_file"] = instance.tags["ssh_key_file"]
    elif config.fleet.ssh_private_key_file:
        host["ansible_ssh_private_key_file"] = str(
            resolve_path(config.fleet.ssh_private_key_file, inventory_dir)
        )
    return host


def host_vars_of(config: EnvironmentConfig, inventory_dir: Path) -> Callable[[Instance], dict]:
    """host_vars of any instance of the environment (for reading the hosts over SSH)."""

    def of(instance: Instance) -> dict[str, Any]:
        return host_vars(instance, config, inventory_dir)

    return of


def host_entry(instance: Instance, config: EnvironmentConfig, inventory_dir: Path) -> dict:
    return {
        "name": instance.name,
        "group": instance.role,
        "vars": host_vars(instance, config, inventory_dir),
    }
