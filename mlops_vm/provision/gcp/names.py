"""Deterministic names, labels and links: how the provider finds its resources again.

Resources that take labels (instances, disks, templates' instances, addresses, forwarding
rules) carry mlops-vm-env / mlops-vm-role and are found by label. The others (networks,
firewalls, health checks, backend services, URL maps, proxies, certificates, groups,
autoscalers) take no labels: they are found by names derived from the environment, e.g.
`mlops-vm-prod-net`, and carry an ownership marker in their description, which destroy checks
before it deletes anything it found by name.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from mlops_vm.provision.model import LABEL_ENV, LABEL_ROLE
from mlops_vm.provision.prefixed import EnvironmentNames, Prefixed

API_ROOT = "https://www.googleapis.com/compute/v1/"
DEFAULT_IMAGE = "projects/debian-cloud/global/images/family/debian-12"
NAME_PATTERN = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
LABEL_KEY_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE_PATTERN = re.compile(r"[a-z0-9_-]{0,63}")
_OWNER = re.compile(r"managed by mlops-vm; env=([^;]+); role=([^;]+)")


def digest(value: Any, length: int = 10) -> str:
    """A short content hash: the suffix that makes immutable resources' names change."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def description(env: str, role: str) -> str:
    return f"managed by mlops-vm; env={env}; role={role}"


def owner(resource: dict[str, Any]) -> tuple[str, str] | None:
    """(env, role) from a resource's description marker, None if not ours."""
    match = _OWNER.search(resource.get("description") or "")
    return (match[1], match[2]) if match else None


def owned_by(resource: dict[str, Any] | None, env: str, role: str | None = None) -> bool:
    """RESOURCE's description marks it as ENV's (and ROLE's, when given)."""
    mark = owner(resource or {})
    return mark is not None and mark[0] == env and (role is None or mark[1] == role)


def labels(env: str, role: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**(extra or {}), LABEL_ENV: env, LABEL_ROLE: role}


def label_filter(env: str, role: str | None = None) -> str:
    terms = [f'(labels.{LABEL_ENV} = "{env}")']
    if role is not None:
        terms.append(f'(labels.{LABEL_ROLE} = "{role}")')
    return " ".join(terms)


def path_of(link: str) -> str:
    """`projects/...` from a full or partial URL, so links compare equal however written."""
    if "/compute/v1/" in link:
        return link.split("/compute/v1/", 1)[1]
    return link


def same_link(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and path_of(a) == path_of(b)


def basename(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Links:
    """Canonical self links of the project's resources (known before they exist, which is
    what lets a dry run plan the whole chain)."""

    project: str

    def global_(self, collection: str, name: str) -> str:
        return f"{API_ROOT}projects/{self.project}/global/{collection}/{name}"

    def zonal(self, zone: str, collection: str, name: str) -> str:
        return f"{API_ROOT}projects/{self.project}/zones/{zone}/{collection}/{name}"

    def regional(self, region: str, collection: str, name: str) -> str:
        return f"{API_ROOT}projects/{self.project}/regions/{region}/{collection}/{name}"


@dataclass(frozen=True)
class Names(EnvironmentNames):
    """Every name the environment ENV uses."""

    # network
    network = Prefixed("net")
    subnetwork = Prefixed("subnet")
    firewall_lb = Prefixed("allow-lb")
    firewall_ssh = Prefixed("allow-ssh")

    @property
    def network_tag(self) -> str:
        return self.prefix

    # fleet and scaling group
    def instance(self, role: str, index: int) -> str:
        return f"{self.prefix}-{role}-{index}"

    def instance_index(self, role: str, name: str) -> int | None:
        match = re.fullmatch(rf"{re.escape(self.prefix)}-{re.escape(role)}-(\d+)", name)
        return int(match[1]) if match else None

    def instance_group(self, role: str) -> str:
        return f"{self.prefix}-{role}-ig"

    def template(self, role: str, content_hash: str) -> str:
        return f"{self.prefix}-{role}-{content_hash}"

    def is_template(self, role: str, name: str) -> bool:
        return (
            re.fullmatch(rf"{re.escape(self.prefix)}-{re.escape(role)}-[0-9a-f]{{10}}", name)
            is not None
        )

    def group_manager(self, role: str) -> str:
        return f"{self.prefix}-{role}-mig"

    def base_instance_name(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def autoscaler(self, role: str) -> str:
        return f"{self.prefix}-{role}-as"

    # load balancer
    health_check = Prefixed("hc")
    backend_service = Prefixed("backend")
    url_map = Prefixed("urlmap")
    redirect_url_map = Prefixed("redirect")
    https_proxy = Prefixed("https-proxy")
    http_proxy = Prefixed("http-proxy")
    address = Prefixed("ip")
    https_rule = Prefixed("https")
    http_rule = Prefixed("http")

    def certificate(self, content_hash: str) -> str:
        return f"{self.prefix}-cert-{content_hash}"

    def is_certificate(self, name: str) -> bool:
        return re.fullmatch(rf"{re.escape(self.prefix)}-cert-[0-9a-f]{{10}}", name) is not None

    def longest(self, role: str) -> str:
        """The longest name this environment will use (names are limited to 63)."""
        candidates = [
            self.template(role, "0" * 10),
            self.firewall_ssh,
            self.https_proxy,
            self.group_manager(role),
            self.instance(role, 999),
            self.redirect_url_map,
            self.certificate("0" * 10),
        ]
        return max(candidates, key=len)
