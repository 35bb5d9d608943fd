"""What the mlops_vm modules share: the environment options, the validated settings, the
provider or managed target they name, and the project's errors mapped to fail_json.

Imported by the modules as a collection module_util
(ansible_collections.mlops_vm.deploy.plugins.module_utils.mlops_vm_common) or, from the
checkout, through ansible.cfg's module_utils path (ansible.module_utils.mlops_vm_common).
The mlops_vm package is imported when used, on the controller's Python that has it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

# The options every module takes (documented in doc_fragments/environment.py).
ENVIRONMENT_ARGS: dict[str, dict[str, Any]] = {
    "config": {"type": "dict", "required": True},
    "inventory_dir": {"type": "path", "required": True},
}


def strings(changes: Any) -> list[str]:
    """Changes as the lines a run reports."""
    return [str(change) for change in changes]


class EnvironmentRun:
    """One module run against an environment.

    Used as a context manager around the work: a configuration error, a release error or a
    provider error ends the run with fail_json, the provider's error as `error`, and (with
    report_changes) what was made before it as `changes`; any other exception too, named
    with its type and the function that raised it.
    """

    def __init__(
        self,
        argument_spec: dict[str, dict[str, Any]],
        *,
        report_changes: bool = True,
        gpu_hint: bool = False,
    ) -> None:
        self.module = AnsibleModule(
            argument_spec={**ENVIRONMENT_ARGS, **argument_spec}, supports_check_mode=True
        )
        self.params: dict[str, Any] = self.module.params
        self.inventory_dir = Path(self.params["inventory_dir"])
        self.check_mode: bool = self.module.check_mode
        self.report_changes = report_changes
        self.gpu_hint = gpu_hint
        self.config: Any = None
        # Changes already made in this run, reported with a later failure's.
        self.made: list[Any] = []

    def load_config(self) -> Any:
        """The environment's validated settings (a ConfigError fails the run)."""
        from mlops_vm.environment.config import validate_config

        self.config = validate_config(
            self.params["config"], source=self.inventory_dir / "group_vars"
        )
        return self.config

    def provider(self) -> Any:
        """The provider of the environment's VMs."""
        from mlops_vm.environment.specs import provider_settings
        from mlops_vm.provision import get_provider

        return get_provider(provider_settings(self.config))

    def service_target(self) -> Any:
        """The managed target of the environment's model service."""
        from mlops_vm.environment.specs import provider_settings
        from mlops_vm.services import get_service_target

        return get_service_target(self.config.target, provider_settings(self.config))

    def instance(self, instances: list[Any], instance_id: str) -> Any:
        """The instance with the provider's id INSTANCE_ID, or the run fails."""
        for found in instances:
            if found.id == instance_id:
                return found
        self.module.fail_json(msg=f"no instance {instance_id} in environment {self.config.env}")

    def __enter__(self) -> EnvironmentRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: Any, _trace: Any) -> None:
        if kind is None or not issubclass(kind, Exception):
            return
        from mlops_vm.environment.config import ConfigError
        from mlops_vm.provision import ProvisionError
        from mlops_vm.release.choose import ReleaseError

        if isinstance(error, ConfigError):
            self.module.fail_json(msg=f"invalid configuration: {error}")
        if isinstance(error, ReleaseError):
            self.module.fail_json(msg=str(error))
        if not isinstance(error, ProvisionError):
            # Not a classified failure (a local Docker call, a wait's timeout, a bug): the
            # run still gets its reason and where it came from, not a module that printed
            # no result ("Module result deserialization failed").
            import traceback

            where = traceback.extract_tb(_trace)[-1]
            changes = strings(self.made)
            self.module.fail_json(
                msg=f"{kind.__name__}: {error} (in {where.name}, "
                f"{Path(where.filename).name}:{where.lineno})",
                changed=bool(changes),
                changes=changes,
            )
        if self.gpu_hint and self.config is not None:
            # A GPU quota or stock-out: what to do about GPUs first.
            from mlops_vm.provision.gpu_hints import with_gpu_hint

            fleet = self.config.fleet
            with_gpu_hint(error, self.config.provider.name, fleet.machine_type, fleet.accelerator)
        if not self.report_changes:
            self.module.fail_json(msg=str(error), error=error.as_dict())
        # What was made before the failure is real: the run's summary reports it.
        changes = [*self.made, *error.changes_so_far]
        self.module.fail_json(
            msg=str(error), error=error.as_dict(), changed=bool(changes), changes=strings(changes)
        )
