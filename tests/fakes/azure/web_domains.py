"""Custom domains in the fake's Microsoft.Web: a site's hostNameBindings and the resource
group's certificates (Microsoft.Web/certificates), held to the real API's shapes.

- hostNameBindings (sites/{site}/hostNameBindings/{host}): PUT, GET, DELETE answer at once
  (200; DELETE 200, as the SDK expects: no poller). The list shows the default host name's
  binding too, which cannot be deleted. A binding with sslState SniEnabled needs the
  thumbprint of a certificate that exists and covers the host name, as the real API
  refuses otherwise; a host name bound to another site is a 409.
  Not checked here: DNS. Azure verifies the CNAME and the TXT asuid.<host> record (the
  site's customDomainVerificationId) on the PUT; the fake accepts the binding without them.
- certificates: an uploaded PFX (pfxBlob, base64, and its password: parsed, never shown
  back), a Key Vault certificate (keyVaultId + keyVaultSecretName: the secret, a base64 PFX
  with no password, read from the fake's vaults), or an App Service Managed Certificate
  (canonicalName + serverFarmId, the host name bound to a site of that plan first).
  A managed certificate's PUT answers 202 with a Location that answers 202 until it is
  issued, then 200: what the real API does and its SDK (200 only) raises on (a GET of the
  certificate moves it on too: Azure issues it whether or not anyone polls).
  Two certificates of one thumbprint in a group are a 409; a certificate a binding uses
  cannot be deleted.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.fakes.azure import key_vault
from tests.fakes.azure.rules import ResourceType, require
from tests.fakes.azure.state import ArmError, ArmState, Json, key

# The api-versions of Microsoft.Web these routes answer (azure-mgmt-web 11 sends 2025-05-01).
API_VERSIONS = {"2023-12-01", "2024-04-01", "2024-11-01", "2025-03-01", "2025-05-01"}
SSL_STATES = {"Disabled", "SniEnabled", "IpBasedEnabled"}
HOST_NAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def check_api_version(query: dict[str, str]) -> None:
    version = query.get("api-version", "")
    require(
        version in API_VERSIONS,
        "NoRegisteredProviderFound",
        f"No registered resource provider found for API version '{version}' of Microsoft.Web.",
    )


def verification_id(subscription: str) -> str:
    """customDomainVerificationId: one per subscription, as in Azure."""
    return hashlib.sha256(subscription.lower().encode()).hexdigest().upper()


def bindings_of(state: ArmState, site_id: str) -> dict[str, Json]:
    return state.private_of(site_id).setdefault("bindings", {})


def covers(names: list[str], host: str) -> bool:
    """Whether a certificate issued for NAMES is valid for HOST (one-label wildcards)."""
    for name in names:
        name = name.lower()
        if name == host or (name.startswith("*.") and host.split(".", 1)[-1] == name[2:]):
            return True
    return False


def certificate_by_thumbprint(state: ArmState, thumbprint: str) -> Json | None:
    for stored in state.of_type("Microsoft.Web/certificates"):
        if stored["properties"].get("thumbprint", "").upper() == thumbprint.upper():
            return stored
    return None


def binding_users(state: ArmState, thumbprint: str) -> list[str]:
    users = []
    for site in state.of_type("Microsoft.Web/sites"):
        for host, binding in bindings_of(state, site["id"]).items():
            if binding["properties"].get("thumbprint", "").upper() == thumbprint.upper():
                users.append(f"{site['name']}/{host}")
    return users


class HostNameBindings:
    """The routes under sites/{site}/hostNameBindings (Sites.nested hands them here)."""

    def __init__(self, state: ArmState, site: Json, subscription: str) -> None:
        self.state, self.site, self.subscription = state, site, subscription
        self.default = site["properties"]["defaultHostName"]

    def _shown(self, host: str, props: Json) -> Json:
        return {
            "id": f"{self.site['id']}/hostNameBindings/{host}",
            "name": f"{self.site['name']}/{host}",
            "type": "Microsoft.Web/sites/hostNameBindings",
            "properties": {**copy.deepcopy(props), "siteName": self.site["name"]},
        }

    def _default(self) -> Json:
        return self._shown(
            self.default,
            {
                "hostNameType": "Verified",
                "customHostNameDnsRecordType": "CName",
                "sslState": "Disabled",
            },
        )

    def handle(self, method: str, extra: list[str], body: Json, query: dict[str, str]) -> tuple:
        check_api_version(query)
        bindings = bindings_of(self.state, self.site["id"])
        if len(extra) == 1:
            require(method == "GET", "MethodNotAllowed", f"{method} on hostNameBindings", 405)
            shown = [
                self._default(),
                *(self._shown(h, b["properties"]) for h, b in bindings.items()),
            ]
            return 200, {"value": shown}, {}
        require(len(extra) == 2, "InvalidRequestUri", "No route for hostNameBindings", 404)
        host = extra[1].lower()
        if method == "GET":
            if host == self.default:
                return 200, self._default(), {}
            require(host in bindings, "NotFound", f"Hostname binding {host} was not found.", 404)
            return 200, self._shown(host, bindings[host]["properties"]), {}
        if method == "DELETE":
            require(
                host != self.default,
                "BadRequest",
                f"Cannot delete the default hostname binding '{host}' of the site.",
            )
            bindings.pop(host, None)
            return 200, None, {}
        require(method == "PUT", "MethodNotAllowed", f"{method} on a hostname binding", 405)
        return 200, self._shown(host, self._put(host, body)), {}

    def _put(self, host: str, body: Json) -> Json:
        require(bool(HOST_NAME.match(host)), "BadRequest", f"'{host}' is not a valid hostname.")
        require(
            host != self.default and not host.endswith(".azurewebsites.net"),
            "BadRequest",
            f"Hostname '{host}' is an Azure host name; it is bound already.",
        )
        for site in self.state.of_type("Microsoft.Web/sites"):
            if key(site["id"]) != key(self.site["id"]) and host in bindings_of(
                self.state, site["id"]
            ):
                raise ArmError(
                    409,
                    "Conflict",
                    f"Hostname '{host}' already exists. Please select a different name.",
                )
        props = copy.deepcopy(body.get("properties") or {})
        props.pop("siteName", None)
        ssl_state = props.setdefault("sslState", "Disabled")
        require(ssl_state in SSL_STATES, "BadRequest", f"sslState '{ssl_state}' is not valid.")
        if ssl_state == "Disabled":
            props.pop("thumbprint", None)
        else:
            thumbprint = props.get("thumbprint") or ""
            certificate = certificate_by_thumbprint(self.state, thumbprint)
            require(
                certificate is not None,
                "BadRequest",
                f"Certificate with thumbprint '{thumbprint}' was not found in the site's "
                "resource group and region.",
            )
            assert certificate is not None
            require(
                covers(certificate["properties"].get("hostNames") or [], host),
                "BadRequest",
                f"Hostname '{host}' does not match the certificate with thumbprint "
                f"'{thumbprint}' ({', '.join(certificate['properties'].get('hostNames') or [])}).",
            )
            props["thumbprint"] = thumbprint.upper()
        props.setdefault("hostNameType", "Verified")
        props.setdefault("customHostNameDnsRecordType", "CName")
        bindings_of(self.state, self.site["id"])[host] = {"properties": props}
        return props


def parse_pfx(blob: str, password: str) -> x509.Certificate:
    try:
        data = base64.b64decode(blob, validate=True)
        _, certificate, _ = pkcs12.load_key_and_certificates(data, password.encode())
    except (binascii.Error, ValueError) as error:
        raise ArmError(
            400,
            "BadRequest",
            "The certificate is not a valid PFX or the password is incorrect.",
        ) from error
    require(certificate is not None, "BadRequest", "The PFX holds no certificate.")
    assert certificate is not None
    return certificate


def described(certificate: x509.Certificate) -> Json:
    """What Azure reads from a certificate: thumbprint (SHA-1), names, validity."""
    try:
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    common = [a.value for a in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return {
        "thumbprint": certificate.fingerprint(hashes.SHA1()).hex().upper(),
        "subjectName": str(common[0]) if common else "",
        "hostNames": list(names) or [str(n) for n in common],
        "issuer": certificate.issuer.rfc4514_string(),
        "expirationDate": certificate.not_valid_after_utc.isoformat(),
    }


def key_vault_certificate(state: ArmState, props: Json) -> x509.Certificate:
    """What App Service imports from Key Vault: the certificate's secret, a base64 PFX with
    no password (the fake's data-plane vaults, tests/fakes/azure/key_vault.py)."""
    vault_id, name = props["keyVaultId"], props.get("keyVaultSecretName") or ""
    vault_name = vault_id.rstrip("/").rsplit("/", 1)[-1].lower()
    require(
        "/providers/microsoft.keyvault/vaults/" in vault_id.lower(),
        "BadRequest",
        f"The parameter KeyVaultId has an invalid value: {vault_id}.",
    )
    vault = key_vault.vaults(state).get(vault_name)
    secret = vault.secrets.get(name.lower()) if vault else None
    require(
        secret is not None and bool(secret.versions),
        "BadRequest",
        f"The Key Vault secret {name} of vault {vault_name} was not found, or App Service "
        "may not read it.",
    )
    assert secret is not None
    return parse_pfx(list(secret.versions.values())[-1], "")


class Certificates(ResourceType):
    namespace = "Microsoft.Web"
    collection = "certificates"
    long_running = False  # the SDK has no poller: 200 at once (a managed one: 202, deferred)
    created_status = 200

    def prepare(self, state: ArmState, rid: str, body: Json, existing: Json | None) -> Json:
        props = body.setdefault("properties", {})
        plan_id = props.get("serverFarmId") or ""
        require(
            bool(plan_id) and state.get(plan_id) is not None,
            "BadRequest",
            f"Server farm '{plan_id}' of the certificate was not found.",
        )
        if props.get("keyVaultId"):
            facts = described(key_vault_certificate(state, props))
        elif props.get("pfxBlob"):
            require(
                not props.get("canonicalName"),
                "BadRequest",
                "A certificate is either uploaded (pfxBlob) or managed (canonicalName).",
            )
            facts = described(parse_pfx(props["pfxBlob"], props.get("password") or ""))
        else:
            host = (props.get("canonicalName") or "").lower()
            require(bool(host), "BadRequest", "Properties.CanonicalName or PfxBlob is required.")
            require(
                not host.startswith("*."),
                "BadRequest",
                "App Service Managed Certificates do not support wildcard host names.",
            )
            bound = [
                site
                for site in state.of_type("Microsoft.Web/sites")
                if host in bindings_of(state, site["id"])
                and key(site["properties"].get("serverFarmId", "")) == key(plan_id)
            ]
            require(
                bool(bound),
                "BadRequest",
                f"Properties.CanonicalName is invalid. Canonical name {host} is not bound to "
                "any web app of the server farm.",
            )
            facts = {
                "thumbprint": hashlib.sha1(f"managed:{rid}:{host}".encode()).hexdigest().upper(),
                "subjectName": host,
                "hostNames": [host],
                "issuer": "CN=GeoTrust Global TLS RSA4096 SHA256 2022 CA1",
                "expirationDate": "2027-06-01T00:00:00+00:00",
            }
        twin = certificate_by_thumbprint(state, facts["thumbprint"])
        require(
            twin is None or key(twin["id"]) == key(rid),
            "Conflict",
            f"Another certificate exists with same thumbprint {facts['thumbprint']} at "
            "given location.",
            409,
        )
        props.update(facts)
        return body

    def deferred(self, stored: Json) -> bool:
        """A managed certificate is issued after the answer (202 + Location)."""
        return bool(stored["properties"].get("canonicalName"))

    def render(self, state: ArmState, stored: Json, query: dict[str, str]) -> Json:
        shown = copy.deepcopy(stored)
        for secret in ("pfxBlob", "password"):  # never shown back
            shown["properties"].pop(secret, None)
        return shown

    def check_delete(self, state: ArmState, stored: Json) -> None:
        users = binding_users(state, stored["properties"].get("thumbprint", ""))
        require(
            not users,
            "Conflict",
            f"Certificate {stored['name']} is used by hostname bindings: {', '.join(users)}.",
            409,
        )
