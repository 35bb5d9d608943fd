"""App Service on a custom domain (issue 25, item 3): service.domain bound to the production
site with SNI, to an App Service Managed Certificate or to the user's PEM files uploaded as a
PFX; HTTPS only; `--check` lists what the run does; a second run changes nothing; a new
certificate replaces the old; the domain dropped or the environment destroyed removes them;
status shows https://<domain>, the platform's URL and the DNS records to create
(ServiceRecord.resources, as the AWS targets show theirs).

A contract check against the fake ARM (tests/fakes/azure), not DNS: Azure verifies the CNAME
and the TXT asuid.<domain> record before it binds a name; the fake binds without them (and
issues a managed certificate without a CA). What it does hold to is the API's shape: the
binding's SNI thumbprint must name a certificate that exists and covers the name, a managed
certificate's PUT answers 202 (which the SDK raises on), PFX and password never shown
back, a Key Vault certificate read from the fake's vaults.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from mlops_vm.plan import Change
from mlops_vm.provision import ErrorCode, ProvisionError
from mlops_vm.provision.azure.certificate import load_pem_chain, load_pem_key
from mlops_vm.services import ServiceSpec
from mlops_vm.services.app_service import AppServiceTarget
from mlops_vm.services.app_service.domain import leaf_thumbprint
from tests.fakes.azure import SUBSCRIPTION_ID, FakeArm
from tests.providers.cloud_fixtures import self_signed_certificate
from tests.services.test_app_service import arm, plain_http
from tests.services.test_app_service_plan import make_spec, make_target

__all__ = ["arm", "plain_http"]  # the fixtures, shared with test_app_service.py

CERTIFICATES = "Microsoft.Web/certificates"


def plan_of(changes: list[Change]) -> list[tuple[str, str, str]]:
    return [(c.action, c.kind, c.name) for c in changes]


def site_id(env: str) -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/mlops-vm-{env}"
        f"/providers/Microsoft.Web/sites/mlops-vm-{env}"
    )


def binding(arm: FakeArm, env: str, host: str) -> dict:
    site = arm.resource(site_id(env)) or {}
    for state in site.get("properties", {}).get("hostNameSslStates", []):
        if state["name"] == host:
            return state
    raise AssertionError(f"{host} is not bound to the site")


def check_equals_run(target: AppServiceTarget, spec: ServiceSpec, arm: FakeArm) -> list:
    """`--check` plans exactly what the run then does, and writes nothing."""
    arm.clear_requests()
    planned = target.ensure_service(spec, dry_run=True)
    assert [w for w in arm.writes() if not w.path.endswith("/list")] == []  # reads by POST
    done = target.ensure_service(spec)
    assert plan_of(planned.changes) == plan_of(done.changes)
    # The same records (a new web app's TXT value is known once it exists).
    dns = [n.split(" TXT ")[0] for n in done.notes if n.startswith("DNS record")]
    assert [n.split(" TXT ")[0] for n in planned.notes] == dns
    return plan_of(done.changes)


def first_run_uploads_then_binds(
    target: AppServiceTarget, spec: ServiceSpec, arm: FakeArm
) -> list[dict]:
    """A certificate of the user's (PEM or Key Vault) goes up before the binding, which
    names its thumbprint with SNI at once; returns the certificates of the site."""
    target.validate(spec)
    done = check_equals_run(target, spec, arm)
    assert [c[:2] for c in done if c[1] in {"hostname_binding", "certificate"}] == [
        ("create", "certificate"),
        ("create", "hostname_binding"),
    ]
    return arm.resources(CERTIFICATES, f"mlops-vm-{spec.env}")


def test_managed_certificate_bound_with_sni_then_destroyed(arm: FakeArm) -> None:
    env = f"d{uuid.uuid4().hex[:8]}"
    domain = f"api-{env}.example.com"
    site = f"mlops-vm-{env}"
    target, spec = make_target(arm), replace(make_spec(env, "public"), domain=domain)
    target.validate(spec)

    done = check_equals_run(target, spec, arm)
    domain_changes = [c for c in done if c[1] in {"hostname_binding", "certificate"}]
    # The name first (Azure issues a managed certificate for a bound name), then SNI.
    assert [c[:2] for c in domain_changes] == [
        ("create", "hostname_binding"),
        ("create", "certificate"),
        ("update", "hostname_binding"),
    ]
    certificates = arm.resources(CERTIFICATES, site)
    assert len(certificates) == 1
    issued = certificates[0]["properties"]
    assert issued["canonicalName"] == domain
    assert issued["serverFarmId"].lower().endswith(f"/serverfarms/{site}-plan")
    assert binding(arm, env, domain)["sslState"] == "SniEnabled"
    assert binding(arm, env, domain)["thumbprint"] == issued["thumbprint"]
    shown = arm.resource(site_id(env))["properties"]
    assert shown["httpsOnly"] is True

    again = target.ensure_service(spec)
    assert again.changes == []
    record = again.record
    assert record is not None
    assert record.url == f"https://{domain}"
    verification = shown["customDomainVerificationId"]
    records = [
        {"name": domain, "type": "CNAME", "value": f"{site}.azurewebsites.net"},
        {"name": f"asuid.{domain}", "type": "TXT", "value": verification},
    ]
    # As the AWS targets show theirs (status prints platform_url and dns_record).
    assert record.resources["platform_url"] == f"https://{site}.azurewebsites.net"
    assert record.resources["dns_record"] == records[0]
    assert record.resources["dns_records"] == records
    assert f"DNS record to create: asuid.{domain} TXT {verification}" in again.notes

    # A release swaps staging in: the host name stays on the production site.
    second = replace(spec, image="registry.example.test/iris:1.1", source="deploy")
    assert ("update", "web_app", site) in plan_of(target.release(second).changes)
    assert binding(arm, env, domain)["sslState"] == "SniEnabled"
    assert target.release(second).changes == []

    planned = plan_of(target.destroy(env, dry_run=True))
    assert ("delete", CERTIFICATES, certificates[0]["name"]) in planned
    assert plan_of(target.destroy(env)) == planned
    assert arm.resources(CERTIFICATES, site) == []
    assert arm.resource(site_id(env)) is None
    assert target.destroy(env) == []


def test_provided_certificate_uploaded_rotated_and_dropped(arm: FakeArm, tmp_path: Path) -> None:
    env = f"d{uuid.uuid4().hex[:8]}"
    domain = f"api-{env}.example.com"
    site = f"mlops-vm-{env}"
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir(), second_dir.mkdir()
    cert_file, key_file = self_signed_certificate(first_dir, domain)
    target = make_target(arm)
    spec = replace(make_spec(env, "public"), domain=domain, cert_file=cert_file, key_file=key_file)
    (certificate,) = first_run_uploads_then_binds(target, spec, arm)
    thumbprint = leaf_thumbprint(cert_file)
    assert certificate["properties"]["thumbprint"] == thumbprint
    assert binding(arm, env, domain)["thumbprint"] == thumbprint
    # ARM never shows the PFX or its password back; neither reaches a change or a note.
    assert {"pfxBlob", "password"}.isdisjoint(certificate["properties"])
    password = arm.stored(certificate["id"])["properties"]["password"]
    assert len(password) >= 24
    first_run = target.ensure_service(spec)
    assert first_run.changes == []
    assert password not in repr(first_run)

    # A renewed certificate: uploaded, bound in place of the old, the old one deleted.
    new_cert, new_key = self_signed_certificate(second_dir, domain)
    renewed = replace(spec, cert_file=new_cert, key_file=new_key)
    done = check_equals_run(target, renewed, arm)
    assert [c[:2] for c in done] == [
        ("create", "certificate"),
        ("update", "hostname_binding"),
        ("delete", "certificate"),
    ]
    assert binding(arm, env, domain)["thumbprint"] == leaf_thumbprint(new_cert)
    assert [c["name"] for c in arm.resources(CERTIFICATES, site)] == [done[0][2]]
    assert target.ensure_service(renewed).changes == []

    # The domain dropped: its binding and certificate go, the platform's URL is the endpoint.
    plain = replace(renewed, domain=None, cert_file=None, key_file=None)
    done = check_equals_run(target, plain, arm)
    assert [c[:2] for c in done] == [("delete", "hostname_binding"), ("delete", "certificate")]
    assert arm.resources(CERTIFICATES, site) == []
    record = target.status(env)
    assert record is not None
    assert record.url == f"https://{site}.azurewebsites.net"
    assert "dns_record" not in record.resources
    assert target.ensure_service(plain).changes == []
    target.destroy(env)


def test_validate_refuses_a_certificate_for_another_name(arm: FakeArm, tmp_path: Path) -> None:
    """Bad input: the file and the field named, nothing asked of ARM."""
    cert_file, key_file = self_signed_certificate(tmp_path, "other.example.com")
    spec = replace(
        make_spec("bad", "public"),
        domain="api.example.com",
        cert_file=cert_file,
        key_file=key_file,
    )
    arm.clear_requests()
    with pytest.raises(ProvisionError) as raised:
        make_target(arm).validate(spec)
    assert raised.value.code is ErrorCode.INVALID_INPUT
    assert f"service.cert_file ({cert_file}) is for other.example.com" in str(raised.value)
    assert [r for r in arm.requests if "/keyvault/" not in r.path] == []


def test_fake_refuses_what_app_service_refuses(arm: FakeArm, tmp_path: Path) -> None:
    """The fake's contract: SNI with a thumbprint that exists and covers the name; a bound
    certificate cannot be deleted; a managed certificate's PUT answers 202."""
    env = f"d{uuid.uuid4().hex[:8]}"
    domain = f"api-{env}.example.com"
    site, group = f"mlops-vm-{env}", f"mlops-vm-{env}"
    target = make_target(arm)
    cert_file, key_file = self_signed_certificate(tmp_path, domain)
    spec = replace(make_spec(env, "public"), domain=domain, cert_file=cert_file, key_file=key_file)
    target.ensure_service(spec)
    apps, certificates = target.web.web_apps, target.web.certificates
    (certificate,) = arm.resources(CERTIFICATES, site)

    def bind(host: str, thumbprint: str) -> None:
        properties = {"siteName": site, "sslState": "SniEnabled", "thumbprint": thumbprint}
        apps.create_or_update_host_name_binding(group, site, host, {"properties": properties})

    with pytest.raises(HttpResponseError, match="thumbprint '0000' was not found"):
        bind(f"www-{env}.example.com", "0000")
    with pytest.raises(HttpResponseError, match="does not match the certificate"):
        bind(f"www-{env}.example.com", certificate["properties"]["thumbprint"])
    with pytest.raises(HttpResponseError, match="used by hostname bindings") as raised:
        certificates.delete(group, certificate["name"])
    assert raised.value.status_code == 409
    plan = certificate["properties"]["serverFarmId"]
    body = {"location": "westeurope", "properties": {"canonicalName": domain, "serverFarmId": plan}}
    with pytest.raises(HttpResponseError) as accepted:
        certificates.create_or_update(group, f"{site}-managed", body)
    assert accepted.value.status_code == 202
    assert accepted.value.response.headers["Location"]
    target.destroy(env)


def test_key_vault_certificate_imported_and_bound(arm: FakeArm, tmp_path: Path) -> None:
    """service.certificate: the ARM id of a Key Vault certificate's secret (a PFX with no
    password, as Key Vault keeps one); App Service imports it by keyVaultId + secret name."""
    env = f"d{uuid.uuid4().hex[:8]}"
    domain = f"api-{env}.example.com"
    cert_file, key_file = self_signed_certificate(tmp_path, domain)
    pfx = pkcs12.serialize_key_and_certificates(
        b"api",
        load_pem_key(key_file),  # type: ignore[arg-type]
        load_pem_chain(cert_file)[0],
        None,
        serialization.NoEncryption(),
    )
    arm.add_secret(
        f"https://certs-{env}.vault.azure.net/secrets/api", base64.b64encode(pfx).decode()
    )
    secret_id = (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/shared/providers/"
        f"Microsoft.KeyVault/vaults/certs-{env}/secrets/api"
    )
    target = make_target(arm)
    spec = replace(make_spec(env, "public"), domain=domain, certificate=secret_id)
    (certificate,) = first_run_uploads_then_binds(target, spec, arm)
    assert certificate["properties"]["keyVaultSecretName"] == "api"
    assert certificate["properties"]["keyVaultId"].endswith(f"/vaults/certs-{env}")
    assert binding(arm, env, domain)["thumbprint"] == leaf_thumbprint(cert_file)
    assert target.ensure_service(spec).changes == []
    target.destroy(env)
