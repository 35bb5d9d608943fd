"""The gateway's TLS certificate: a PFX built from PEM files, or a Key Vault secret.

ARM never shows a certificate's PFX back, and a PFX differs at every build (random salt), so
whether the gateway holds the right certificate is told by a tag: the SHA-256 of the
certificate chain (or the Key Vault secret id).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from mlops_vm.provision.azure.client import Json
from mlops_vm.provision.model import CertificateSpec


@dataclass(frozen=True)
class GatewayCertificate:
    """One certificate for the gateway: the tag value that stands for it, and how to build
    the sslCertificate properties (only when the gateway is written: a PFX costs a KDF)."""

    spec: CertificateSpec
    fingerprint: str
    # The user-assigned managed identity that lets the gateway read a Key Vault secret.
    identity_id: str | None = None

    def properties(self) -> Json:
        if self.spec.key_vault_secret_id:
            return {"keyVaultSecretId": self.spec.key_vault_secret_id}
        assert self.spec.cert_file and self.spec.key_file, "validate() checks the spec"
        password = secrets.token_urlsafe(24)
        pfx = pfx_from_pem(self.spec.cert_file, self.spec.key_file, password)
        return {"data": base64.b64encode(pfx).decode(), "password": password}


def load_pem_chain(cert_file: str) -> list[x509.Certificate]:
    chain = x509.load_pem_x509_certificates(Path(cert_file).read_bytes())
    if not chain:
        raise ValueError(f"{cert_file} holds no PEM certificate")
    return chain


def load_pem_key(key_file: str) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)


def check_pem_pair(cert_file: str, key_file: str) -> None:
    """Raise ValueError unless the files hold a certificate and its private key."""
    chain = load_pem_chain(cert_file)
    key = load_pem_key(key_file)
    leaf_public = (
        chain[0]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key_public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if leaf_public != key_public:
        raise ValueError(f"the key in {key_file} does not match the certificate in {cert_file}")


def chain_fingerprint(chain: list[x509.Certificate]) -> str:
    digest = hashlib.sha256()
    for certificate in chain:
        digest.update(certificate.fingerprint(hashes.SHA256()))
    return digest.hexdigest()


def pfx_from_pem(cert_file: str, key_file: str, password: str) -> bytes:
    """A password-protected PKCS#12 of the key, its certificate and the rest of the chain.

    The PBE is the classic 3DES/SHA-1 one rather than AES-256: it is the encoding every
    Windows-based service reads (Application Gateway among them). The password is random and
    used for this one upload, and the PFX only travels to ARM over TLS.
    """
    chain = load_pem_chain(cert_file)
    key = load_pem_key(key_file)
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50000)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(password.encode())
    )
    return pkcs12.serialize_key_and_certificates(
        b"mlops-vm",
        key,  # type: ignore[arg-type]
        chain[0],
        chain[1:] or None,
        encryption,
    )


def gateway_certificate(spec: CertificateSpec, identity_id: str | None) -> GatewayCertificate:
    if spec.key_vault_secret_id:
        secret = spec.key_vault_secret_id
        return GatewayCertificate(spec, hashlib.sha256(secret.encode()).hexdigest(), identity_id)
    assert spec.cert_file, "validate() checks the certificate spec"
    return GatewayCertificate(spec, chain_fingerprint(load_pem_chain(spec.cert_file)))


def trusted_root_data(ca_file: str) -> str:
    """A CA for the gateway to trust HTTPS backends with: base64 DER, as ARM wants it."""
    ca = load_pem_chain(ca_file)[0]
    return base64.b64encode(ca.public_bytes(serialization.Encoding.DER)).decode()
