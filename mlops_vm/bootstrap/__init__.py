"""Boot-time configuration for instances nobody logs in to (scaling groups on every cloud).

    boot = BootConfig.for_model(
        "registry.example.com/team/model:1.0",
        registry_username="ci", registry_password=token, registry_ca_cert=ca_pem,
    )
    InstanceSpec(machine_type="t3.small", user_data=render_user_data(boot))

render_user_data returns cloud-init user-data (#cloud-config) that installs Ansible on
a fresh Debian 12 instance and applies the project's roles to it locally, with the same
variables as the SSH path. See config.py for how secrets are handled (and why, on a
cloud, they should come from its secret store instead).
"""

from mlops_vm.bootstrap.config import BootConfig
from mlops_vm.bootstrap.user_data import (
    USER_DATA_LIMITS,
    UserDataTooLarge,
    check_size,
    render_user_data,
    user_data_bytes,
)

__all__ = [
    "USER_DATA_LIMITS",
    "BootConfig",
    "UserDataTooLarge",
    "check_size",
    "render_user_data",
    "user_data_bytes",
]
