"""Helpers the AWS, Azure and GCP provider tests share."""

import datetime
from dataclasses import replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mlops_vm.provision.model import FleetSpec


def self_signed_certificate(directory: Path, domain: str) -> tuple[str, str]:
    """A PEM certificate and key for DOMAIN, written to DIRECTORY; their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A little in the past, so that a clock a little behind still accepts it.
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{domain}.crt"
    key_path = directory / f"{domain}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def resized(spec: FleetSpec, machine_type: str, disk_gb: int | None = None) -> FleetSpec:
    """SPEC with another machine type (and disk size): what a resize converges to."""
    instance = replace(
        spec.instance, machine_type=machine_type, disk_gb=disk_gb or spec.instance.disk_gb
    )
    return replace(spec, instance=instance)
