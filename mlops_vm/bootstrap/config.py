"""BootConfig: what a fresh instance needs to configure itself with the project's roles.

The variables are the roles' own (docker_engine_*, model_service_*, nginx_proxy_*), the
same ones the SSH path takes from the inventory's group_vars. Secrets are kept apart
(secret_vars): they travel in a separate vars file that the instance deletes after the
run, and they never appear in a repr, a log line or an error message.

Secrets in user-data are a known weakness: the user-data stays readable on the instance
through the metadata service (IMDSv2, hop limit 1 on AWS) and /var/lib/cloud (root only).
On AWS, GCP and Azure, prefer short-lived registry tokens, or fetch the secret at boot
from the cloud's secret store (AWS Secrets Manager / SSM Parameter Store, GCP Secret
Manager, Azure Key Vault) with the instance's own identity, instead of passing it here.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from mlops_vm import paths

DEFAULT_ROLES = ("docker_engine", "model_service", "nginx_proxy")


def installed_version(distribution: str, fallback: str) -> str:
    """The controller's version of DISTRIBUTION: instances run the Ansible it runs."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return fallback


@dataclass(frozen=True)
class BootConfig:
    """How an instance configures itself at first boot."""

    # Non-secret role variables, exactly as in group_vars (e.g. model_service_image).
    role_vars: Mapping[str, Any] = field(default_factory=dict)
    # Secret role variables (model_service_registry_password, ...): never logged.
    secret_vars: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # Roles applied in order, and where their sources are.
    roles: tuple[str, ...] = DEFAULT_ROLES
    roles_dir: Path = paths.PROJECT_DIR / "roles"
    # "pip": ansible (the community package, with community.docker/crypto) in a venv, at
    # the controller's versions. "apt": Debian's ansible package (older collections).
    ansible_install: Literal["pip", "apt"] = "pip"
    ansible_version: str = field(default_factory=lambda: installed_version("ansible", "12.3.0"))
    ansible_core_version: str = field(
        default_factory=lambda: installed_version("ansible-core", "2.19.14")
    )
    # A package index mirror (pip --index-url), or a plain directory of wheels served
    # over HTTP (pip --no-index --find-links) for instances without the internet.
    pip_index_url: str | None = None
    pip_find_links: str | None = None
    # PEM CA certificates the instance trusts system-wide (a TLS-intercepting proxy or
    # a private mirror), on top of Debian's.
    extra_ca_certs: tuple[str, ...] = ()
    # The secret variables are read at boot from the cloud's secret store with the
    # instance's identity (bootstrap.boot_source), into the same secrets file.
    secrets_at_boot: bool = False

    def __post_init__(self) -> None:
        overlap = set(self.role_vars) & set(self.secret_vars)
        if overlap:
            raise ValueError(f"variables both secret and not: {', '.join(sorted(overlap))}")
        if self.ansible_install not in ("pip", "apt"):
            raise ValueError(f"ansible_install must be pip or apt, not {self.ansible_install!r}")

    @classmethod
    def for_model(
        cls,
        image_ref: str,
        *,
        registry_username: str = "",
        registry_password: str = "",
        registry_ca_cert: str = "",
        replicas: int = 2,
        role_vars: Mapping[str, Any] | None = None,
        secret_role_vars: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> "BootConfig":
        """A BootConfig for IMAGE_REF (registry/repository:tag or @sha256:...)."""
        repository, tag, digest = split_image_ref(image_ref)
        registry = repository.split("/", 1)[0] if "/" in repository else ""
        variables: dict[str, Any] = {
            "model_service_image": repository,
            "model_service_replicas": replicas,
        }
        if digest:
            variables["model_service_image_digest"] = digest
        else:
            variables["model_service_image_tag"] = tag
        secrets: dict[str, Any] = {}
        if registry_username:
            variables["model_service_registry"] = registry
            variables["model_service_registry_username"] = registry_username
            secrets["model_service_registry_password"] = registry_password
        if registry_ca_cert:
            variables["docker_engine_registry_ca_certs"] = [
                {"registry": registry, "content": registry_ca_cert}
            ]
        variables.update(role_vars or {})
        secrets.update(secret_role_vars or {})
        return cls(role_vars=variables, secret_vars=secrets, **options)


def split_image_ref(image_ref: str) -> tuple[str, str, str]:
    """(repository, tag, digest) of an image reference; the tag defaults to latest."""
    if "@" in image_ref:
        repository, digest = image_ref.split("@", 1)
        return repository, "", digest
    name, _, tag = image_ref.rpartition(":")
    if name and "/" not in tag:
        return name, tag, ""
    return image_ref, "latest", ""
