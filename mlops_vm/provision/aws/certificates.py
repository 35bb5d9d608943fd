"""The HTTPS listener's certificate: an ACM ARN as given, or PEM files imported into ACM.

An imported certificate is tagged with the environment and the SHA-256 of its PEM, so the
same files are imported once; new files are imported beside the old certificate, which is
deleted once the listener no longer uses it. The private key goes to ACM only: it is read
here, sent once, and never written or logged.
"""

import hashlib
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from mlops_vm.plan import ChangeLog
from mlops_vm.provision.aws import errors, names
from mlops_vm.provision.aws.client import AwsContext
from mlops_vm.provision.model import ROLE_LB, CertificateSpec, LoadBalancerSpec

PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True)
class PemBundle:
    certificate: bytes
    chain: bytes  # the intermediates after the leaf, possibly empty
    fingerprint: str  # SHA-256 of the certificate file's certificates

    def __repr__(self) -> str:
        return f"PemBundle(fingerprint={self.fingerprint!r})"


invalid = partial(errors.invalid, operation="read the certificate")


def check_spec(certificate: CertificateSpec) -> None:
    """Exactly one source of the certificate, in a form AWS can use."""
    from_files = bool(certificate.cert_file or certificate.key_file)
    if certificate.arn and from_files:
        raise invalid(
            "certificate: both arn and cert_file/key_file are set",
            "give either an ACM certificate ARN or the PEM files to import, not both",
        )
    if not certificate.arn and not (certificate.cert_file and certificate.key_file):
        raise invalid(
            "certificate: AWS needs arn, or cert_file and key_file",
            "set CertificateSpec.arn (ACM) or both CertificateSpec.cert_file and key_file",
        )
    for path in (certificate.cert_file, certificate.key_file):
        if path and not Path(path).is_file():
            raise invalid(f"certificate file {path} does not exist", "fix the path")


def read_bundle(cert_file: str) -> PemBundle:
    blocks = PEM_BLOCK.findall(Path(cert_file).read_bytes())
    if not blocks:
        raise invalid(
            f"{cert_file} holds no PEM certificate",
            "give the certificate (and its chain) in PEM form",
        )
    return PemBundle(
        certificate=blocks[0] + b"\n",
        chain=b"\n".join(blocks[1:]) + (b"\n" if len(blocks) > 1 else b""),
        fingerprint=hashlib.sha256(b"\n".join(blocks)).hexdigest(),
    )


def describe_certificate(ctx: AwsContext, arn: str) -> dict[str, Any] | None:
    return ctx.call(
        "acm",
        "describe_certificate",
        f"read certificate {arn}",
        missing_ok=True,
        CertificateArn=arn,
    ).get("Certificate")


def imported_certificates(ctx: AwsContext, env: str) -> list[dict[str, Any]]:
    """The environment's imported certificates: {"arn", "tags"} each."""
    summaries = ctx.pages(
        "acm",
        "list_certificates",
        "CertificateSummaryList",
        "list the certificates",
    )
    found = []
    for summary in summaries:
        arn = summary["CertificateArn"]
        tag_items = ctx.call(
            "acm",
            "list_tags_for_certificate",
            "read the certificate's tags",
            missing_ok=True,
            CertificateArn=arn,
        ).get("Tags", [])
        tag_set = names.as_dict(tag_items)
        if tag_set.get(names.TAG_ENV) == env:
            found.append({"arn": arn, "tags": tag_set})
    return found


def ensure_certificate(ctx: AwsContext, spec: LoadBalancerSpec, log: ChangeLog) -> str:
    """The ARN the HTTPS listener uses (a stand-in when a dry run would import it)."""
    certificate = spec.certificate
    check_spec(certificate)
    if certificate.arn:
        return certificate.arn
    assert certificate.cert_file and certificate.key_file
    bundle = read_bundle(certificate.cert_file)
    existing = imported_arn(ctx, spec.env, bundle.fingerprint)
    if existing:
        return existing
    name = f"mlops-vm-{spec.env}"
    return log.create(
        "certificate",
        name,
        lambda: import_certificate(ctx, spec, name, bundle),
        f"import {certificate.cert_file}",
        planned=names.planned("arn", name),
    )


def import_certificate(
    ctx: AwsContext, spec: LoadBalancerSpec, name: str, bundle: PemBundle
) -> str:
    assert spec.certificate.key_file
    tag_set = names.tag_dict(spec.env, ROLE_LB, name)
    tag_set[names.TAG_CERT_SHA256] = bundle.fingerprint
    params: dict[str, Any] = {
        "Certificate": bundle.certificate,
        "PrivateKey": Path(spec.certificate.key_file).read_bytes(),
        "Tags": names.tag_list(tag_set),
    }
    if bundle.chain:
        params["CertificateChain"] = bundle.chain
    # ImportCertificate takes no token: a retry first adopts what a lost answer imported.
    return ctx.create(
        "acm",
        "import_certificate",
        "import the certificate into ACM",
        adopt=lambda: adopted_arn(imported_arn(ctx, spec.env, bundle.fingerprint)),
        **params,
    )["CertificateArn"]


def imported_arn(ctx: AwsContext, env: str, fingerprint: str) -> str | None:
    """The ARN of ENV's imported certificate with FINGERPRINT (its sha256 tag), if any."""
    for existing in imported_certificates(ctx, env):
        if existing["tags"].get(names.TAG_CERT_SHA256) == fingerprint:
            return existing["arn"]
    return None


def adopted_arn(arn: str | None) -> dict[str, Any] | None:
    return None if arn is None else {"CertificateArn": arn}


def delete_stale_certificates(
    ctx: AwsContext, env: str, keep_arn: str | None, log: ChangeLog
) -> None:
    """Imported certificates of ENV other than KEEP_ARN (replaced ones)."""
    arns = [found["arn"] for found in imported_certificates(ctx, env)]
    stale = [arn for arn in arns if arn != keep_arn]
    log.delete_each("certificate", stale, str, partial(delete_certificate, ctx), "replaced")


def delete_certificate(ctx: AwsContext, arn: str) -> None:
    ctx.delete(
        "acm",
        "delete_certificate",
        f"delete certificate {arn}",
        CertificateArn=arn,
    )
