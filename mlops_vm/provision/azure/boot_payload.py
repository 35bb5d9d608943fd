"""The boot payload of scale set instances in Blob storage: the roles, playbook and
variables (nothing secret) that the instances fetch at boot with their managed identity,
instead of carrying them in customData.

One storage account per environment (in its resource group: no public blobs, no shared
keys, TLS 1.2), one private container "boot", one blob per payload named by its SHA-256
(boot/<sha256>.xz, as on S3): a new payload is a new blob, so an older model (a rollback)
still finds its own; an unchanged one uploads nothing.
"""

from __future__ import annotations

import hashlib

from mlops_vm.bootstrap.boot_source import BootPlan
from mlops_vm.plan import ChangeLog
from mlops_vm.provision.azure import generic
from mlops_vm.provision.azure.blob import BlobStore, blob_url
from mlops_vm.provision.azure.client import Arm
from mlops_vm.provision.azure.names import tags
from mlops_vm.provision.azure.network import Layout

STORAGE_API = "2023-05-01"
STORAGE_TYPE = "Microsoft.Storage/storageAccounts"
CONTAINER = "boot"


def account_name(subscription_id: str, env: str, configured: str | None = None) -> str:
    """The boot_storage_account option, or mlopsvm + a hash of subscription and environment
    (account names are global, 3-24 lower-case letters and digits)."""
    if configured:
        return configured
    return "mlopsvm" + hashlib.sha256(f"{subscription_id}/{env}".encode()).hexdigest()[:17]


def account_id(layout: Layout, name: str) -> str:
    return f"{layout.ids.group}/providers/{STORAGE_TYPE}/{name}"


def container_id(layout: Layout, name: str) -> str:
    """The container's ARM id: the scope of the instances' read access."""
    return f"{account_id(layout, name)}/blobServices/default/containers/{CONTAINER}"


def account_body(layout: Layout, env: str, role: str) -> dict:
    return {
        "location": layout.location,
        "tags": tags(env, role),
        "kind": "StorageV2",
        "sku": {"name": "Standard_LRS"},
        "properties": {
            "allowBlobPublicAccess": False,
            "allowSharedKeyAccess": False,  # Azure AD only: the identities' roles decide
            "minimumTlsVersion": "TLS1_2",
            "supportsHttpsTrafficOnly": True,
        },
    }


def ensure_payload(
    arm: Arm, blobs: BlobStore, layout: Layout, env: str, role: str, plan: BootPlan, log: ChangeLog
) -> tuple[str, str]:
    """(the payload's blob URL, the container's ARM id), account, container and blob made
    when missing."""
    name = account_name(arm.subscription_id, env, arm.options.boot_storage_account)
    account = account_id(layout, name)
    account_exists = generic.get(arm, "storage account", account, STORAGE_API) is not None
    if not account_exists:
        log.create(
            "storage_account",
            name,
            lambda: generic.put(
                arm, "storage account", account, STORAGE_API, account_body(layout, env, role)
            ),
            "boot payloads",
        )
    container = container_id(layout, name)
    # What a new account holds is known without asking (a dry run could not).
    present = account_exists and generic.get(arm, "container", container, STORAGE_API) is not None
    if not present:
        log.create(
            "blob_container",
            f"{name}/{CONTAINER}",
            lambda: generic.put(
                arm, "container", container, STORAGE_API, {"properties": {"publicAccess": "None"}}
            ),
            "private",
        )
    key = plan.payload_key()
    uploaded = present and blobs.exists(name, CONTAINER, key)
    if not uploaded:
        log.create(
            "boot_payload",
            blob_url(name, CONTAINER, key),
            lambda: blobs.upload(name, CONTAINER, key, plan.payload),
            f"{len(plan.payload)} bytes",
        )
    return blob_url(name, CONTAINER, key), container
