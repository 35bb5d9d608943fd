"""Filters that split an image reference for roles/model_service."""

import re

# registry[:port]/path[:tag][@sha256:digest]; the tag is what follows the last ":" after
# the last "/" (a registry port is not a tag).
REFERENCE = re.compile(
    r"^(?P<name>.+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


def split_image(reference: str) -> dict[str, str]:
    """'reg:5443/team/model:1.0' -> {'name': 'reg:5443/team/model', 'tag': '1.0', 'digest': ''}"""
    match = REFERENCE.match(reference)
    if not match or "/" in (match.group("tag") or ""):
        return {"name": reference, "tag": "latest", "digest": ""}
    return {
        "name": match.group("name"),
        "tag": match.group("tag") or "latest",
        "digest": match.group("digest") or "",
    }


def image_registry(reference: str) -> str:
    """The registry host[:port] of REFERENCE, or '' for Docker Hub images."""
    first, _, rest = reference.partition("/")
    return first if rest and ("." in first or ":" in first or first == "localhost") else ""


class FilterModule:
    def filters(self) -> dict:
        return {"mlops_vm_split_image": split_image, "mlops_vm_image_registry": image_registry}
