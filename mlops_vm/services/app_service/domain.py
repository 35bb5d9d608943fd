"""service.domain on App Service: the host name bound to the production site, its
certificate bound with SNI, and the DNS records the user creates.

The certificate is an App Service Managed Certificate (no certificate setting: canonicalName
= the domain, on the site's plan), the PEM files of service.cert_file/key_file, uploaded as
a password-protected PFX (the password is random, used for that one upload, never logged;
ARM never shows either back), or a Key Vault certificate (service.certificate: the ARM id
of its secret, .../providers/Microsoft.KeyVault/vaults/<vault>/secrets/<name>; App Service
reads it with its own identity, which needs get on the vault's secrets). A certificate's
name carries what identifies it (a managed one's domain, an uploaded one's thumbprint, the
Key Vault secret's id), so a new certificate is a new resource:
created, bound in place of the old, and the old one deleted once no binding uses it.

Order, as App Service wants it: an uploaded certificate before the binding that names its
thumbprint; a managed one after its host name is bound (Azure issues it for a bound name
only), then the binding switched to SNI. The staging slot has no custom domain: a swap
moves the content, the production site keeps its host names.

App Service checks domain ownership on the binding's PUT: a CNAME <domain> -> the site's
default host name, and a TXT asuid.<domain> holding the site's customDomainVerificationId.
DNS stays the user's: the run prints the records (notes) and `status` shows them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError
from cryptography.hazmat.primitives import hashes

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.azure.certificate import load_pem_chain, pfx_from_pem
from mlops_vm.provision.azure.client import Arm, Json
from mlops_vm.provision.azure.errors import status_of
from mlops_vm.provision.azure.names import has_tags, tags
from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.model import ROLE_MODEL
from mlops_vm.services.app_service.names import AppNames
from mlops_vm.services.base import ServiceSpec

AZURE_HOST_SUFFIX = ".azurewebsites.net"
SNI = "SniEnabled"


@dataclass(frozen=True)
class DnsRecord:
    """A record the user creates (DNS stays theirs)."""

    name: str
    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.name} {self.type} {self.value}"


PLANNED_THUMBPRINT = "(thumbprint of the new certificate)"
UNKNOWN_VERIFICATION_ID = "(the web app's customDomainVerificationId, once it exists)"


def dns_records(domain: str, site_host: str, verification_id: str) -> list[DnsRecord]:
    """What App Service checks before it binds DOMAIN: the name, and the proof of ownership."""
    return [
        DnsRecord(domain, "CNAME", site_host),
        DnsRecord(f"asuid.{domain}", "TXT", verification_id or UNKNOWN_VERIFICATION_ID),
    ]


def leaf_thumbprint(cert_file: str) -> str:
    """The SHA-1 thumbprint App Service names a certificate by (upper-case hex)."""
    return load_pem_chain(cert_file)[0].fingerprint(hashes.SHA1()).hex().upper()


@dataclass(frozen=True)
class WantedCertificate:
    name: str
    managed: bool
    thumbprint: str | None  # an uploaded one's, known before; a managed one's once issued
    key_vault_secret: str | None = None  # the ARM id of a Key Vault certificate's secret

    @property
    def detail(self) -> str:
        if self.key_vault_secret:
            return f"Key Vault {self.key_vault_secret.rsplit('/vaults/', 1)[-1]}"
        return "App Service Managed Certificate" if self.managed else f"PFX {self.thumbprint}"


def wanted_certificate(spec: ServiceSpec, names: AppNames) -> WantedCertificate:
    assert spec.domain, "only with a domain"
    secret, thumbprint, managed = spec.certificate, None, False
    if secret:
        identity = secret.lower()
    elif spec.cert_file:
        thumbprint = identity = leaf_thumbprint(spec.cert_file)
    else:
        identity, managed = f"managed:{spec.domain.lower()}", True
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return WantedCertificate(f"{names.site}-{digest}", managed, thumbprint, secret)


class Domains:
    """The production site's host name bindings and the environment's certificates."""

    def __init__(self, arm: Arm, client: Any, names: AppNames) -> None:
        self.arm, self.client, self.names = arm, client, names
        self.apps, self.certificates = client.web_apps, client.certificates

    # -- reading ----------------------------------------------------------------------------

    def bindings(self) -> dict[str, Json]:
        """Custom host name -> its binding's properties (the default host name aside)."""
        found = self.arm.read_all(
            "list host name bindings",
            self.apps.list_host_name_bindings,
            self.names.resource_group,
            self.names.site,
        )
        custom = {}
        for binding in found:
            host = binding["name"].rsplit("/", 1)[-1].lower()
            if not host.endswith(AZURE_HOST_SUFFIX):
                custom[host] = binding.get("properties") or {}
        return custom

    def owned_certificates(self, env: str) -> dict[str, Json]:
        found = self.arm.read_all(
            "list certificates",
            self.certificates.list_by_resource_group,
            self.names.resource_group,
        )
        prefix = f"{self.names.site}-"
        return {c["name"]: c for c in found if has_tags(c, env) and c["name"].startswith(prefix)}

    # -- writing ----------------------------------------------------------------------------

    def bind(self, host: str, thumbprint: str | None, records: list[DnsRecord]) -> Json:
        props: Json = {
            "siteName": self.names.site,
            "hostNameType": "Verified",
            "customHostNameDnsRecordType": "CName",
            "sslState": SNI if thumbprint else "Disabled",
        }
        if thumbprint:
            props["thumbprint"] = thumbprint
        try:
            found = self.arm.write(
                f"bind host name {host}",
                self.apps.create_or_update_host_name_binding,
                self.names.resource_group,
                self.names.site,
                host,
                {"properties": props},
            )
        except ProvisionError as error:
            raise ProvisionError(
                error.code,
                error.message,
                hint="App Service checks these DNS records before it binds the name: "
                + "; ".join(str(r) for r in records),
                provider=error.provider,
                operation=error.operation,
            ) from None
        return (found or {}).get("properties") or props

    def unbind(self, host: str) -> None:
        self.arm.write(
            f"unbind host name {host}",
            self.apps.delete_host_name_binding,
            self.names.resource_group,
            self.names.site,
            host,
        )

    def upload(self, spec: ServiceSpec, wanted: WantedCertificate, plan_id: str) -> str:
        """The PEM files as a PFX, or the Key Vault certificate App Service imports (the
        secret's ARM id: the vault's id and the secret's name)."""
        body = self._body(spec, plan_id)
        if wanted.key_vault_secret:
            vault, _, secret = wanted.key_vault_secret.rpartition("/secrets/")
            body["properties"].update(keyVaultId=vault, keyVaultSecretName=secret)
        else:
            assert spec.cert_file and spec.key_file, "validate() checks the pair"
            password = secrets.token_urlsafe(24)
            pfx = pfx_from_pem(spec.cert_file, spec.key_file, password)
            body["properties"].update(pfxBlob=base64.b64encode(pfx).decode(), password=password)
        found = self.arm.write(
            "upload certificate",
            self.certificates.create_or_update,
            self.names.resource_group,
            wanted.name,
            body,
        )
        return (found or {}).get("properties", {}).get("thumbprint") or wanted.thumbprint or ""

    def issue_managed(self, spec: ServiceSpec, wanted: WantedCertificate, plan_id: str) -> str:
        """The managed certificate's PUT answers 202 (Azure issues it later), which the SDK
        raises on (it expects 200): taken as accepted, then the certificate is waited for."""
        body = self._body(spec, plan_id)
        body["properties"]["canonicalName"] = spec.domain

        def put() -> None:
            try:
                self.certificates.create_or_update(self.names.resource_group, wanted.name, body)
            except HttpResponseError as error:
                if status_of(error) != 202:
                    raise

        self.arm.write("create managed certificate", put)
        deadline = time.monotonic() + self.arm.options.operation_timeout_s
        while True:
            found = self.arm.read(
                "read certificate",
                self.certificates.get,
                self.names.resource_group,
                wanted.name,
            )
            thumbprint = ((found or {}).get("properties") or {}).get("thumbprint")
            if thumbprint:
                return str(thumbprint)
            if time.monotonic() >= deadline:
                raise ProvisionError(
                    ErrorCode.TIMEOUT,
                    f"the managed certificate for {spec.domain} was not issued after "
                    f"{self.arm.options.operation_timeout_s:.0f}s",
                    hint="check the CNAME of the domain; run again later (it resumes)",
                    provider="azure",
                    operation="create managed certificate",
                )
            time.sleep(self.arm.options.poll_interval_s)

    def _body(self, spec: ServiceSpec, plan_id: str) -> Json:
        return {
            "location": self.arm.location,
            "tags": tags(spec.env, ROLE_MODEL, spec.tags),
            "properties": {"serverFarmId": plan_id},
        }

    def delete_certificate(self, name: str) -> None:
        self.arm.write(
            "delete certificate", self.certificates.delete, self.names.resource_group, name
        )


def converge_domain(
    domains: Domains,
    spec: ServiceSpec,
    plan_id: str,
    records: list[DnsRecord],
    log: ChangeLog,
) -> None:
    """SPEC's domain bound with SNI to its certificate; other custom host names and the
    certificates no binding needs any more removed (a domain dropped or changed)."""
    site = domains.names.site
    bindings = domains.bindings()
    certificates = domains.owned_certificates(spec.env)
    keep: str | None = None
    if spec.domain:
        host = spec.domain.lower()
        wanted = wanted_certificate(spec, domains.names)
        keep = wanted.name
        existing = certificates.get(wanted.name)
        thumbprint = ((existing or {}).get("properties") or {}).get("thumbprint")
        if existing is None and not wanted.managed:
            thumbprint = log.create(
                "certificate",
                wanted.name,
                lambda: domains.upload(spec, wanted, plan_id),
                wanted.detail,
                planned=wanted.thumbprint or PLANNED_THUMBPRINT,
            )
        binding = bindings.get(host)
        if binding is None:
            binding = log.create(
                "hostname_binding",
                f"{site}/{host}",
                lambda: domains.bind(host, thumbprint, records),
                "SNI" if thumbprint else "TLS after its managed certificate",
                planned={"sslState": SNI if thumbprint else "Disabled", "thumbprint": thumbprint},
            )
        if thumbprint is None:  # a managed certificate, for the name bound above
            thumbprint = log.create(
                "certificate",
                wanted.name,
                lambda: domains.issue_managed(spec, wanted, plan_id),
                f"{wanted.detail} for {host}",
                planned=PLANNED_THUMBPRINT,
            )
        bound = (binding.get("sslState"), str(binding.get("thumbprint") or "").upper())
        if bound != (SNI, str(thumbprint).upper()):
            log.update(
                "hostname_binding",
                f"{site}/{host}",
                lambda: domains.bind(host, thumbprint, records),
                f"SNI with {wanted.detail}",
            )
    for other in sorted(set(bindings) - {(spec.domain or "").lower()}):
        log.delete("hostname_binding", f"{site}/{other}", lambda other=other: domains.unbind(other))
    for name in sorted(set(certificates) - {keep}):
        log.delete("certificate", name, lambda name=name: domains.delete_certificate(name))


def domain_resources(host: str, records: list[DnsRecord]) -> dict[str, object]:
    """What ServiceRecord.resources shows for a custom domain, as the AWS targets do
    (services/aws_alb.py custom_domain): the platform's own URL and the CNAME to create;
    dns_records adds the TXT record App Service checks ownership with."""
    if not records:
        return {}
    shown = [asdict(record) for record in records]
    return {"platform_url": f"https://{host}", "dns_record": shown[0], "dns_records": shown}


def domain_endpoint(domains: Domains, site: Json) -> tuple[str | None, list[DnsRecord]]:
    """(the custom domain bound with SNI, its DNS records) as the site shows them now."""
    props = site.get("properties") or {}
    for host, binding in sorted(domains.bindings().items()):
        if binding.get("sslState") == SNI:
            records = dns_records(
                host, props.get("defaultHostName", ""), props.get("customDomainVerificationId", "")
            )
            return host, records
    return None, []
