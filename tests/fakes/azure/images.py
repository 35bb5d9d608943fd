"""Microsoft.Compute/images: a managed image made from a generalized VM.

As ARM behaves: the source VM must be deallocated and generalized (generalize answers 200 at
once and refuses a VM that is not deallocated); an image records the VM's OS disk as its own;
VMs and scale sets may boot from an image id, which must exist.
"""

from __future__ import annotations

from tests.fakes.azure.rules import ResourceType, require
from tests.fakes.azure.state import ArmState, Json, ref_id


def generalized(state: ArmState, vm_id: str) -> bool:
    return bool(state.private_of(vm_id).get("generalized"))


def check_image_reference(state: ArmState, image: Json) -> None:
    """An imageReference by id names an image that exists."""
    image_id = image.get("id")
    if image_id and "/providers/microsoft.compute/images/" in image_id.lower():
        require(
            state.get(image_id) is not None,
            "InvalidParameter",
            f"The Image '{image_id}' cannot be found in '{image_id.split('/')[4]}' resource group.",
            status=404,
        )


class Images(ResourceType):
    namespace = "Microsoft.Compute"
    collection = "images"

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        props = body.setdefault("properties", {})
        source = ref_id(props.get("sourceVirtualMachine")) or ""
        vm = state.get(source)
        require(
            vm is not None, "InvalidParameter", f"Source VM {source} was not found.", status=404
        )
        assert vm is not None
        require(
            generalized(state, vm["id"]),
            "OperationNotAllowed",
            f"The source VM {vm['name']} must be generalized before an image is made of it.",
            status=409,
        )
        os_disk = vm["properties"]["storageProfile"]["osDisk"]
        props["storageProfile"] = {
            "osDisk": {
                "osType": "Linux",
                "osState": "Generalized",
                "managedDisk": {"id": os_disk["managedDisk"]["id"]},
                "diskSizeGB": os_disk.get("diskSizeGB"),
            }
        }
        props["hyperVGeneration"] = props.get("hyperVGeneration", "V2")
        return body
