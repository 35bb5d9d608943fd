"""The fake's instance actions: stop, start, setMachineType, setScheduling; disks.resize.

As Compute Engine behaves: the machine type and a GPU machine's scheduling change only on
a stopped (TERMINATED) instance; the machine type must be offered in the instance's zone;
GPU machine types refuse live migration (onHostMaintenance MIGRATE); disks only grow.
Each answers an operation whose completion applies the change.
"""

from typing import Any

from tests.fakes.gcp.api import Call, ComputeApi
from tests.fakes.gcp.catalog import GPU_MACHINE_PREFIXES
from tests.fakes.gcp.errors import ApiError, invalid
from tests.fakes.gcp.state import link, parse_path, to_path


def not_stopped(name: str, status: str) -> ApiError:
    return ApiError(
        400,
        "resourceNotReady",
        f"The resource '{name}' is not ready: the instance is {status}; stop it first.",
    )


class InstanceActions:
    def __init__(self, api: ComputeApi) -> None:
        self.api = api
        self.store = api.store
        api.custom.update(
            {
                "compute.instances.stop": self.stop,
                "compute.instances.start": self.start,
                "compute.instances.setMachineType": self.set_machine_type,
                "compute.instances.setScheduling": self.set_scheduling,
                "compute.disks.resize": self.resize_disk,
            }
        )

    def _instance(self, call: Call) -> tuple[str, dict[str, Any]]:
        path = self.api.item_path(call)
        return path, self.store.get(path)

    def _apply(self, call: Call, path: str, change: dict[str, Any]) -> dict[str, Any]:
        def apply() -> None:
            resource = self.store.find(path)
            if resource is not None:
                resource.update(change)

        return self.api.operation(call, path, apply)

    def stop(self, call: Call) -> dict[str, Any]:
        path, _ = self._instance(call)
        return self._apply(call, path, {"status": "TERMINATED"})

    def start(self, call: Call) -> dict[str, Any]:
        path, _ = self._instance(call)
        # STAGING for one read, then RUNNING (render_instance counts the reads down).
        return self._apply(call, path, {"status": "STAGING", "_reads_until_running": 1})

    def set_machine_type(self, call: Call) -> dict[str, Any]:
        path, instance = self._instance(call)
        if instance["status"] != "TERMINATED":
            raise not_stopped(instance["name"], instance["status"])
        wanted = to_path(call.body.get("machineType") or "", call.project) or ""
        zone, name = parse_path(path).zone or "", wanted.rsplit("/", 1)[-1]
        if f"/zones/{zone}/machineTypes/" not in wanted or not self.api.catalog.offers(zone, name):
            raise invalid(
                f"Invalid value for field 'machineType': '{call.body.get('machineType')}'. "
                f"Machine type with name '{name}' does not exist in zone '{zone}'."
            )
        scheduling = instance.get("scheduling", {})
        if name.startswith(GPU_MACHINE_PREFIXES) and scheduling.get("onHostMaintenance") != (
            "TERMINATE"
        ):
            raise invalid(
                "Instances with guest accelerators do not support live migration: "
                "set scheduling.onHostMaintenance to TERMINATE."
            )
        return self._apply(call, path, {"machineType": link(wanted)})

    def set_scheduling(self, call: Call) -> dict[str, Any]:
        path, instance = self._instance(call)
        return self._apply(
            call, path, {"scheduling": {**instance.get("scheduling", {}), **call.body}}
        )

    def resize_disk(self, call: Call) -> dict[str, Any]:
        path = self.api.item_path(call)
        disk = self.store.get(path)
        size = int(call.body.get("sizeGb", 0))
        if size < int(disk["sizeGb"]):
            raise invalid(
                f"Invalid value for field 'sizeGb': '{size}'. Requested disk size cannot be "
                f"smaller than the current size ({disk['sizeGb']} GB)."
            )
        return self._apply(call, path, {"sizeGb": str(size)})
