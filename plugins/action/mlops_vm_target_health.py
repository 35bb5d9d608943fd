"""Action plugin: what an mlops-vm environment's load balancer reports of its targets, read
on the controller in Ansible's own worker process (documentation:
plugins/modules/mlops_vm_target_health.py).

An action plugin, not a module: a module is a new Python process that imports the project
again (its settings schema and the provider: 0.5 s here, over a second on a busy
controller), while this worker is forked from ansible-playbook, whose inventory plugin has
already imported them. A release reads this once, on the path every batch waits for.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("config", "inventory_dir"))
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [name for name in ("config", "inventory_dir") if not args.get(name)]
        if missing:
            return {**result, "failed": True, "msg": f"missing required arguments: {missing}"}
        from mlops_vm.environment.config import ConfigError, validate_config
        from mlops_vm.environment.specs import load_balancer_spec, provider_settings
        from mlops_vm.provision import ProvisionError, get_provider

        inventory_dir = Path(str(args["inventory_dir"])).expanduser()
        try:
            config = validate_config(dict(args["config"]), source=inventory_dir / "group_vars")
            provider = get_provider(provider_settings(config))
            targets = provider.target_health(load_balancer_spec(config, inventory_dir))
        except ConfigError as error:
            return {**result, "failed": True, "msg": f"invalid configuration: {error}"}
        except ProvisionError as error:
            return {**result, "failed": True, "msg": str(error), "error": error.as_dict()}
        serving: dict[str, bool] = {}
        for target in targets:
            # In more than one backend (GCP, Azure): serving once one of them says healthy.
            serving[target.instance_id] = serving.get(target.instance_id, False) or target.healthy
        return {
            **result,
            "changed": False,
            "targets": [asdict(target) for target in targets],
            "serving": serving,
        }
