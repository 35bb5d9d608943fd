"""Blob storage's data plane, for the boot payloads: HEAD and PUT of a block blob with the
operator's Azure AD token (https://storage.azure.com), as the REST API defines them
(x-ms-version, x-ms-blob-type). The storage accounts keep shared keys off, so an Azure AD
identity is the only way in: the operator needs Storage Blob Data Contributor on the account
(or its resource group) to upload, the instances Storage Blob Data Reader on the container.
"""

from typing import Any
from urllib.parse import quote

from azure.core.exceptions import AzureError
from azure.core.rest import HttpRequest, HttpResponse

from mlops_vm.provision.azure.data_plane import signed_client
from mlops_vm.provision.azure.errors import PROVIDER
from mlops_vm.provision.errors import ErrorCode, ProvisionError

SCOPE = "https://storage.azure.com/.default"
VERSION = "2021-08-06"  # x-ms-version: what the fetcher sends too
# With provider.endpoint_url (tests) every account is served under it, at /blob/<account>.
OVERRIDE_PATH = "/blob/"


def blob_url(account: str, container: str, name: str) -> str:
    return f"https://{account}.blob.core.windows.net/{container}/{quote(name)}"


class BlobStore:
    """HEAD and PUT of blobs, signed for Storage (AUTHENTICATION_POLICY replaces the
    bearer-token policy, as for the ARM clients: tests use it over plain http)."""

    def __init__(
        self, credential: Any, *, endpoint_url: str | None = None, authentication_policy: Any = None
    ) -> None:
        self.client = signed_client(
            credential, SCOPE, "https://blob.core.windows.net", authentication_policy
        )
        self.endpoint_url = endpoint_url

    def url_of(self, account: str, container: str, name: str) -> str:
        if self.endpoint_url:
            base = self.endpoint_url.rstrip("/") + OVERRIDE_PATH + account
            return f"{base}/{container}/{quote(name)}"
        return blob_url(account, container, name)

    def _send(self, doing: str, request: HttpRequest) -> HttpResponse:
        request.headers["x-ms-version"] = VERSION
        try:
            return self.client.send_request(request)
        except AzureError as error:
            raise ProvisionError(
                ErrorCode.INTERNAL,
                f"cannot {doing}: {error}",
                hint="check the network path to *.blob.core.windows.net",
                provider=PROVIDER,
                operation=doing,
            ) from None

    def exists(self, account: str, container: str, name: str) -> bool:
        doing = f"find the blob {container}/{name} in {account}"
        response = self._send(doing, HttpRequest("HEAD", self.url_of(account, container, name)))
        if response.status_code == 404:
            return False
        check(response, doing)
        return True

    def upload(self, account: str, container: str, name: str, data: bytes) -> None:
        doing = f"upload the blob {container}/{name} to {account}"
        request = HttpRequest(
            "PUT",
            self.url_of(account, container, name),
            headers={"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"},
            content=data,
        )
        check(self._send(doing, request), doing)


def check(response: HttpResponse, doing: str) -> None:
    """A refusal as a ProvisionError, a permission error named as such."""
    status = response.status_code
    if status < 300:
        return
    code = response.headers.get("x-ms-error-code", "")
    if status in (401, 403):
        raise ProvisionError(
            ErrorCode.PERMISSION,
            f"not allowed to {doing} ({status} {code})",
            hint="give the identity that runs mlops-vm the Storage Blob Data Contributor role "
            "on the storage account",
            provider=PROVIDER,
            operation=doing,
        )
    raise ProvisionError(
        ErrorCode.INTERNAL,
        f"{doing}: Blob storage answered {status} {code}",
        hint="run provision again; if it persists, check the storage account in the portal",
        provider=PROVIDER,
        operation=doing,
    )
