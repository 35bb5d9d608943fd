"""The fake's project images: made from a disk, found by name or family, listed, deleted.

As Compute Engine behaves: images.insert takes a sourceDisk that exists and is not in use
by a running instance (stop it first, or pass forceCreate=true); an image's family answers
getFromFamily with its newest image; a project's own images are read before the catalog's
public ones (debian-cloud, ...), and instances and templates may boot from either.
list and delete are the generic verbs.
"""

from typing import Any

from tests.fakes.gcp.api import Call, ComputeApi, Hooks
from tests.fakes.gcp.errors import ApiError, not_found, required
from tests.fakes.gcp.state import ResourcePath, link, to_path


def images_of(store: Any, project: str) -> list[tuple[str, dict[str, Any]]]:
    return store.collection(f"projects/{project}/global/images")


def own_image(store: Any, project: str, *, family: str | None, name: str | None) -> str | None:
    """The name of PROJECT's own image NAME, or the newest of FAMILY; None if none."""
    found = [
        resource
        for _, resource in images_of(store, project)
        if (name is not None and resource["name"] == name)
        or (family is not None and resource.get("family") == family)
    ]
    return found[-1]["name"] if found else None  # creation order: the newest last


class ProjectImages:
    def __init__(self, api: ComputeApi) -> None:
        self.api = api
        self.store = api.store
        self.catalog_get = api.custom["compute.images.get"]
        self.catalog_family = api.custom["compute.images.getFromFamily"]
        api.hooks["images"] = Hooks(check=self.check_image, prepare=self.prepare_image)
        api.custom.update(
            {"compute.images.get": self.get, "compute.images.getFromFamily": self.from_family}
        )

    def get(self, call: Call) -> dict[str, Any]:
        path = self.api.item_path(call)
        if path in self.store.resources:
            return self.api.verb_get(call)
        return self.catalog_get(call)

    def from_family(self, call: Call) -> dict[str, Any]:
        name = own_image(self.store, call.project, family=call.params["family"], name=None)
        if name is None:
            return self.catalog_family(call)
        path = f"projects/{call.project}/global/images/{name}"
        return self.api.render(path, self.store.get(path))

    def check_image(self, call: Call, where: ResourcePath, body: dict[str, Any]) -> None:
        source = body.get("sourceDisk")
        if not source:
            raise required("resource.sourceDisk")
        disk = self.store.find(to_path(source, where.project) or "")
        if disk is None:
            raise not_found(source)
        forced = str(call.query.get("forceCreate", "false")).lower() == "true"
        for user in disk.get("users", []):
            instance = self.store.find(to_path(user, where.project) or "") or {}
            if instance.get("status") not in (None, "TERMINATED") and not forced:
                raise ApiError(
                    400,
                    "resourceInUseByAnotherResource",
                    f"The disk resource '{source}' is already being used by '{user}'",
                )

    def prepare_image(self, call: Call, where: ResourcePath, body: dict[str, Any]) -> None:
        disk = self.store.get(to_path(body["sourceDisk"], where.project) or "")
        body.update(
            status="READY",
            sourceType="RAW",
            diskSizeGb=disk["sizeGb"],
            sourceDisk=link(to_path(body["sourceDisk"], where.project) or ""),
            sourceDiskId=str(disk["id"]),
        )
        body.setdefault("labels", {})
        self.store.fingerprint(body, "labelFingerprint")
