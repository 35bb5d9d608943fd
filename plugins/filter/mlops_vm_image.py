"""Filters that split an image reference for roles/model_service."""

from mlops_vm.bootstrap.config import split_image_ref


def split_image(reference: str) -> dict[str, str]:
    """'reg:5443/team/model:1.0' -> {'name': 'reg:5443/team/model', 'tag': '1.0', 'digest': ''}"""
    name, tag, digest = split_image_ref(reference)
    return {"name": name, "tag": tag or "latest", "digest": digest}


def image_registry(reference: str) -> str:
    """The registry host[:port] of REFERENCE, or '' for Docker Hub images."""
    first, _slash, rest = reference.partition("/")
    return first if rest and ("." in first or ":" in first or first == "localhost") else ""


class FilterModule:
    def filters(self) -> dict:
        return {"mlops_vm_split_image": split_image, "mlops_vm_image_registry": image_registry}
