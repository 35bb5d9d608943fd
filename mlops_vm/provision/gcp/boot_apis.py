"""The Google APIs a boot by identity needs besides Compute Engine: IAM (the instances'
service account), Cloud Storage (the payload bucket), Secret Manager (the secrets and who
may read them) and Artifact Registry (who may pull the model).

Each goes through the provider's client wrapper (client.py: retries, classified
ProvisionError; `get` is None on not-found); none of these calls is a long-running
operation. Tests aim them all at one fake root (ProviderSettings.endpoint_url, each API
under /<api>/), as the Cloud Run target does.
"""

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from googleapiclient.http import MediaInMemoryUpload

from mlops_vm.provision.gcp.client import ClientOptions, ComputeClient, build_service

API_VERSIONS = {
    "iam": "v1",
    "storage": "v1",
    "secretmanager": "v1",
    "artifactregistry": "v1",
}


@dataclass
class BootApis:
    """One client per API, built on first use (building one reads the credentials)."""

    project: str
    options: ClientOptions
    endpoint_url: str | None
    credentials: Any
    http_timeout_s: float
    sleep: Callable[[float], None]

    def _client(self, api: str) -> ComputeClient:
        service = build_service(
            endpoint_url=self.endpoint_url,
            credentials=self.credentials,
            http_timeout_s=self.http_timeout_s,
            api=api,
            version=API_VERSIONS[api],
        )
        return ComputeClient(service, self.project, self.options, sleep=self.sleep)

    @cached_property
    def iam(self) -> ComputeClient:
        return self._client("iam")

    @cached_property
    def storage(self) -> ComputeClient:
        return self._client("storage")

    @cached_property
    def secrets(self) -> ComputeClient:
        return self._client("secretmanager")

    @cached_property
    def registry(self) -> ComputeClient:
        return self._client("artifactregistry")

    def upload(self, service: Any, bucket: str, name: str, blob: bytes) -> Any:
        """The objects.insert request of a simple media upload of BLOB as BUCKET/NAME."""
        request = service.objects().insert(
            bucket=bucket,
            name=name,
            media_body=MediaInMemoryUpload(blob, mimetype="application/octet-stream"),
        )
        if self.endpoint_url:
            # googleapiclient moves the upload host to api_endpoint's but keeps https.
            scheme = urllib.parse.urlsplit(self.endpoint_url).scheme
            request.uri = urllib.parse.urlunsplit(
                urllib.parse.urlsplit(request.uri)._replace(scheme=scheme)
            )
        return request


def emulator_endpoints(root: str) -> dict[str, str]:
    """The fetcher's API bases under one emulator ROOT, laid out as the real hosts are
    (Storage's JSON API under /storage/v1/, Secret Manager's under /secretmanager/v1/)."""
    root = root.rstrip("/")
    return {"storage": root, "secretmanager": f"{root}/secretmanager"}
