"""The clients of Azure's data planes (Blob storage, Key Vault): plain azure-core pipelines
signed with the operator's token for the service's scope, or with AUTHENTICATION_POLICY in
its place (as for the ARM clients: tests use it over plain http)."""

from typing import Any

from azure.core import PipelineClient
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy


def signed_client(
    credential: Any, scope: str, base_url: str, authentication_policy: Any = None
) -> PipelineClient:
    signing = authentication_policy or BearerTokenCredentialPolicy(credential, scope)
    return PipelineClient(
        base_url=base_url, policies=[RetryPolicy(retry_total=3, retry_connect=1), signing]
    )
