"""Microsoft.Storage in the fake ARM, and Blob storage's data plane, held to their contracts.

- storageAccounts: a long-running PUT; the name 3-24 lower-case letters and digits
  (AccountNameInvalid); kind and sku required. Containers are a child of the account's one
  blob service: PUT .../blobServices/default/containers/<name> answers 201 (then 200) at
  once, GET 404 ContainerNotFound, DELETE 200.
- Blob data plane (https://<account>.blob.core.windows.net/<container>/<blob>; served here
  under /blob/<account>/...): PUT with x-ms-blob-type BlockBlob (201), GET (200, the bytes),
  HEAD (200, or 404 with no body), DELETE (202). Every request needs a bearer token and
  x-ms-version (an OAuth request without it is refused); errors carry x-ms-error-code. An
  account with allowSharedKeyAccess false still takes Azure AD tokens: the operator's, and
  an identity's that holds Storage Blob Data Reader (read) or Contributor on the container,
  the account or a scope above.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from tests.fakes.azure import rbac
from tests.fakes.azure.rules import ResourceType, require
from tests.fakes.azure.state import ArmError, ArmState, Json

PATH_PREFIX = "/blob/"
ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
READ_ROLES = {rbac.BLOB_READER, rbac.BLOB_CONTRIBUTOR}
WRITE_ROLES = {rbac.BLOB_CONTRIBUTOR}


class StorageAccounts(ResourceType):
    namespace = "Microsoft.Storage"
    collection = "storageAccounts"

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        name = rid.rsplit("/", 1)[1]
        require(
            bool(ACCOUNT_NAME.match(name)),
            "AccountNameInvalid",
            f"{name} is not a valid storage account name. Storage account name must be between"
            " 3 and 24 characters in length and use numbers and lower-case letters only.",
        )
        require(bool(body.get("kind")), "InvalidRequestContent", "kind is required")
        require(bool((body.get("sku") or {}).get("name")), "InvalidRequestContent", "sku required")
        props = body.setdefault("properties", {})
        props["primaryEndpoints"] = {"blob": f"https://{name}.blob.core.windows.net/"}
        return body

    def nested(
        self,
        protocol: object,
        method: str,
        subscription: str,
        parent: Json,
        extra: list[str],
        body: Json,
        query: dict[str, str],
    ) -> tuple:
        lowered = [e.lower() for e in extra]
        require(
            len(extra) == 4 and lowered[:3] == ["blobservices", "default", "containers"],
            "InvalidRequestUri",
            f"No route for {'/'.join(extra)}",
            404,
        )
        name = extra[3]
        containers = containers_of(state_of(protocol), parent)
        cid = f"{parent['id']}/blobServices/default/containers/{name}"
        found = containers.get(name.lower())
        if method == "GET":
            if found is None:
                raise ArmError(404, "ContainerNotFound", "The specified container does not exist.")
            return 200, dict(found), {}
        if method == "DELETE":
            containers.pop(name.lower(), None)
            return 200, None, {}
        require(method == "PUT", "MethodNotAllowed", f"{method} on a container", 405)
        require(
            re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", name) is not None,
            "ContainerNameInvalid",
            f"The specified container name {name} is not valid.",
        )
        props = dict(body.get("properties") or {})
        props.setdefault("publicAccess", "None")
        container = {
            "id": cid,
            "name": name,
            "type": "Microsoft.Storage/storageAccounts/blobServices/containers",
            "properties": props,
        }
        containers[name.lower()] = container
        return (200 if found else 201), dict(container), {}


def state_of(protocol: object) -> ArmState:
    return protocol.state  # type: ignore[attr-defined]


def containers_of(state: ArmState, account: Json) -> dict[str, Json]:
    return state.private_of(account["id"]).setdefault("containers", {})


def blobs_of(state: ArmState, account: Json, container: str) -> dict[str, bytes]:
    return state.private_of(account["id"]).setdefault("blobs", {}).setdefault(container, {})


def find_account(state: ArmState, name: str) -> Json | None:
    return next(
        (a for a in state.of_type("Microsoft.Storage/storageAccounts") if a["name"] == name), None
    )


class BlobProtocol:
    """One data-plane request: (status, bytes, headers)."""

    def __init__(self, state: ArmState) -> None:
        self.state = state

    def handle(
        self, method: str, path: str, data: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        try:
            return self._handle(method, path, data, headers)
        except ArmError as error:
            body = b"" if method == "HEAD" else error.message.encode()
            return error.status, body, {"x-ms-error-code": error.code}

    def _handle(
        self, method: str, path: str, data: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        if not headers.get("authorization", "").lower().startswith("bearer "):
            raise ArmError(401, "NoAuthenticationInformation", "Server failed to authenticate.")
        require(
            bool(headers.get("x-ms-version")),
            "MissingRequiredHeader",
            "An HTTP header that's mandatory for this request is not specified: x-ms-version",
        )
        account_name, _, rest = path[len(PATH_PREFIX) :].partition("/")
        container_name, _, blob = rest.partition("/")
        blob = unquote(blob)
        account = find_account(self.state, account_name)
        if account is None:
            raise ArmError(404, "ResourceNotFound", f"No such host: {account_name}")
        container = containers_of(self.state, account).get(container_name.lower())
        if container is None:
            raise ArmError(404, "ContainerNotFound", "The specified container does not exist.")
        principal = rbac.principal_of(headers)
        roles = READ_ROLES if method in ("GET", "HEAD") else WRITE_ROLES
        if principal is not None and not rbac.has_role(
            self.state, principal, container["id"], roles
        ):
            raise ArmError(
                403,
                "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.",
            )
        stored = blobs_of(self.state, account, container_name.lower())
        if method == "PUT":
            require(
                headers.get("x-ms-blob-type") == "BlockBlob",
                "MissingRequiredHeader",
                "x-ms-blob-type is required",
            )
            stored[blob] = data
            return 201, b"", {}
        if blob not in stored:
            raise ArmError(404, "BlobNotFound", "The specified blob does not exist.")
        if method == "GET":
            return 200, stored[blob], {"Content-Type": "application/octet-stream"}
        if method == "HEAD":
            return (
                200,
                b"",
                {"x-ms-blob-type": "BlockBlob", "Content-Length": str(len(stored[blob]))},
            )
        if method == "DELETE":
            del stored[blob]
            return 202, b"", {}
        raise ArmError(405, "UnsupportedHttpVerb", f"{method} is not supported")
