"""Boot by identity: user-data that only says where things are, never what the secrets are.

    plan = BootPlan.for_config(boot, secrets={"nginx_proxy_api_keys": (arn,)},
                               registry_host="123456789012.dkr.ecr.eu-west-1.amazonaws.com")
    key, blob = plan.payload_key(), plan.payload      # uploaded by the provider
    source = plan.source("aws", region="eu-west-1", payload_url=f"s3://{bucket}/{key}")
    InstanceSpec(..., user_data=render_fetch_user_data(source))

The user-data holds the fetcher (fetch_script.py, stdlib Python) and a JSON source: the
payload's object URL and SHA-256, the secret references per role variable, the registry
to log in to with the instance's identity. Whatever the roles weigh, the user-data stays
a few KB: the payload lives in object storage (S3, GCS, Blob storage), read with the
instance's identity like the secrets (Secrets Manager / SSM, Secret Manager, Key Vault).
"""

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

import yaml

from mlops_vm.bootstrap.config import BootConfig
from mlops_vm.bootstrap.payload import BOOT_DIR, BlockDumper, LiteralText, build_payload
from mlops_vm.bootstrap.user_data import USER_DATA_LIMITS, check_size, user_data_bytes

log = logging.getLogger(__name__)

FETCHER = f"{BOOT_DIR}/fetch.py"
SOURCE = f"{BOOT_DIR}/source.json"
PAYLOAD_PREFIX = "boot/"

# A secret reference per role variable: one reference, or one per item of a list variable.
SecretReferences = Mapping[str, str | tuple[str, ...]]


def fetcher_code() -> str:
    """The fetcher as the instance runs it."""
    return resources.files("mlops_vm.bootstrap").joinpath("fetch_script.py").read_text()


@dataclass(frozen=True)
class BootSource:
    """What the fetcher reads at boot (nothing secret: it is in the user-data)."""

    cloud: str  # aws, gcp, azure
    region: str = ""
    payload_url: str | None = None  # s3://bucket/key, gs://bucket/name, https://...blob...
    payload_sha256: str | None = None
    secrets: SecretReferences = field(default_factory=dict)
    registry_host: str | None = None  # pulled with the instance's identity, no password
    identity_client_id: str = ""  # Azure: the user-assigned identity to ask tokens for
    # Emulators and tests only: the metadata service and the cloud APIs' base URL.
    metadata_url: str | None = None
    endpoints: Mapping[str, str] = field(default_factory=dict)
    # A baked instance's boot hook: where to apply what it reads (baked.baked_facts).
    baked: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> str:
        document: dict[str, Any] = {
            "cloud": self.cloud,
            "region": self.region,
            "payload": (
                {"url": self.payload_url, "sha256": self.payload_sha256}
                if self.payload_url
                else None
            ),
            "secrets": {
                name: list(ref) if isinstance(ref, tuple) else ref
                for name, ref in sorted(self.secrets.items())
            },
            "registry": {"host": self.registry_host} if self.registry_host else None,
            "identity_client_id": self.identity_client_id,
            "metadata_url": self.metadata_url,
            "endpoints": dict(sorted(self.endpoints.items())),
        }
        if self.baked:
            document["baked"] = dict(sorted(self.baked.items()))
        return json.dumps(document, indent=1, sort_keys=False) + "\n"


@dataclass(frozen=True)
class BootPlan:
    """An instance's boot by identity, before the cloud's places are known: the payload
    (non-secret) and what the instance reads with its identity."""

    payload: bytes
    secrets: SecretReferences = field(default_factory=dict)
    registry_host: str | None = None
    # The registry's repository (path, without host or tag): what the identity may pull.
    repository: str | None = None
    # Where each reference is set (setting -> reference), for the checks' messages.
    fields: Mapping[str, str] = field(default_factory=dict)
    # A baked image's instances (no payload): what their boot hook applies the secrets to.
    baked: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_config(
        cls,
        boot: BootConfig,
        *,
        secrets: SecretReferences | None = None,
        registry_host: str | None = None,
        repository: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> "BootPlan":
        if boot.secret_vars:
            raise ValueError(
                "a boot by identity carries no secret value: give references instead of "
                f"{', '.join(sorted(boot.secret_vars))}"
            )
        fetched = bool(secrets) or bool(registry_host)
        return cls(
            payload=build_payload(replace(boot, secrets_at_boot=fetched)),
            secrets=dict(secrets or {}),
            registry_host=registry_host,
            repository=repository,
            fields=dict(fields or {}),
        )

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    def payload_key(self) -> str:
        """Content-addressed: a new payload is a new object, an old template's stays."""
        return f"{PAYLOAD_PREFIX}{self.payload_sha256}.xz"

    def secret_references(self) -> list[str]:
        """Every reference, each once, sorted (what the identity may read)."""
        found = {ref for value in self.secrets.values() for ref in as_tuple(value)}
        return sorted(found)

    def source(self, cloud: str, payload_url: str | None, **options: Any) -> BootSource:
        return BootSource(
            cloud=cloud,
            payload_url=payload_url,
            payload_sha256=self.payload_sha256 if payload_url else None,
            secrets=self.secrets,
            registry_host=self.registry_host,
            baked=self.baked,
            **options,
        )


def as_tuple(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


def render_fetch_user_data(source: BootSource, *, limit_bytes: int | None = None) -> str:
    """The #cloud-config user-data that fetches and runs the boot: the fetcher, its
    source, one command. UserDataTooLarge past the cloud's limit (it is a few KB)."""
    document = {
        "locale": False,
        "write_files": [
            {
                "path": FETCHER,
                "owner": "root:root",
                "permissions": "0700",
                "content": LiteralText(fetcher_code()),
            },
            {
                "path": SOURCE,
                "owner": "root:root",
                "permissions": "0600",
                "content": LiteralText(source.as_json()),
            },
        ],
        "runcmd": [["python3", FETCHER, SOURCE]],
    }
    text = (
        "#cloud-config\n"
        "# mlops-vm: fetch this instance's boot with its own identity (mlops_vm.bootstrap)\n"
        + yaml.dump(document, Dumper=BlockDumper, sort_keys=False, width=4096)
    )
    cloud = source.cloud if source.cloud in USER_DATA_LIMITS else "aws"
    wire = user_data_bytes(text, cloud)
    check_size(wire, limit_bytes or USER_DATA_LIMITS[cloud])
    log.debug("rendered fetch user-data: %d bytes for %s", len(wire), cloud)
    return text
