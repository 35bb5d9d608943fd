"""tls_certificate's selfsigned mode run by ansible-playbook against hosts that are directories
of this machine (connection local): real keys, a real CA and real certificates, no container.

Four runs share one CA: the first makes everything; the second must change nothing and
run one read per host and no key, CA, signing-request, signing or install task; before the
third, certificates are put in place that the fast path must not keep (expiring within 30
days, a wrong subjectAltName, another CA of the same name, another key, not PEM), one host's
key becomes world-readable and the CA directory's mode drifts, while the first host's
certificate still serves; the fourth changes nothing.

What this cannot show: a certificate with the CA's name and key identifier but a forged
signature is kept by the fast path, which does not verify signatures (the signer does).
"""

from __future__ import annotations

import datetime
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.ansible_cli import ansible_playbook

# The first host's certificate keeps serving while the others are replaced.
SERVING = "serving"
REPLACED = ["expiring", "wrong-san", "other-ca", "other-key", "not-pem"]
# Its key's mode drifts: the key and the certificate are kept, the mode is put back.
KEY_MODE = "key-mode"
HOSTS = [SERVING, KEY_MODE, *REPLACED]
HANDLER = "Note that the certificate changed"
CA_TASKS = [
    "Create the CA directory on the controller",
    "Generate the CA private key on the controller",
    "Check whether the CA certificate exists on the controller",
]
SIGNING_TASKS = [
    "Create the host's certificate signing request",
    "Sign the host certificate with the CA on the controller",
    "Install the host certificate",
]
READ_TASK = "Read the host's key and current certificate"
KEY_TASK = "Generate the host's private key"
SIGN_INCLUDE = "Sign a new host certificate"
VALID_DAYS = 825


def playbook(work: Path) -> list[dict]:
    return [
        {
            "name": "Apply tls_certificate to directories of this machine",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Install the certificate and key",
                    "ansible.builtin.include_role": {"name": "tls_certificate"},
                    "vars": {
                        "tls_certificate_ca_dir": str(work / "ca"),
                        "tls_certificate_path": f"{work}/{{{{ inventory_hostname }}}}.crt",
                        "tls_certificate_key_path": f"{work}/{{{{ inventory_hostname }}}}.key",
                        "tls_certificate_valid_days": VALID_DAYS,
                    },
                }
            ],
            "handlers": [
                {
                    "name": HANDLER,
                    "ansible.builtin.debug": {"msg": "changed"},
                    "listen": "tls certificate changed",
                }
            ],
        }
    ]


@dataclass
class Run:
    """One ansible-playbook run, from the ansible.posix.json callback."""

    output: dict

    def results(self, task: str) -> dict[str, dict]:
        """Each host's result of the named task (run_once tasks: the first host's only)."""
        return {
            host: result
            for play in self.output["plays"]
            for entry in play["tasks"]
            if entry["task"]["name"].split(" : ")[-1] == task
            for host, result in entry["hosts"].items()
        }

    def changed(self) -> int:
        return sum(stats["changed"] for stats in self.output["stats"].values())


def apply(work: Path) -> Run:
    inventory = {"all": {"hosts": {host: {"ansible_connection": "local"} for host in HOSTS}}}
    (work / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    (work / "playbook.yml").write_text(yaml.safe_dump(playbook(work), sort_keys=False))
    proc = ansible_playbook(
        *("-i", str(work / "inventory.yml"), str(work / "playbook.yml")),
        *("-e", f"ansible_python_interpreter={sys.executable}"),
        timeout=300,
        env={
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            # The facts the role gathers on the first run serve the later ones.
            "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(work / "facts"),
        },
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return Run(json.loads(proc.stdout))


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert: x509.Certificate) -> set[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name.value) for name in names}


def sign(
    template: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    days: int = VALID_DAYS,
    extra_san: x509.GeneralName | None = None,
) -> bytes:
    """A host certificate shaped as the role makes them, from the template's subject and names."""
    san = list(template.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(template.subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([*san, *filter(None, [extra_san])]), False)
        .add_extension(
            x509.KeyUsage(True, *[False] * 8),  # digitalSignature only
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def other_ca(name: x509.Name) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA with the same name as the role's: only its key identifier tells them apart."""
    key = ec.generate_private_key(ec.SECP384R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def tamper(work: Path) -> None:
    """Certificates the fast path must not keep; the first host's is left alone."""
    ca_cert = load_cert(work / "ca" / "ca.crt")
    ca_key = serialization.load_pem_private_key((work / "ca" / "ca.key").read_bytes(), None)

    def own(host: str) -> tuple[x509.Certificate, ec.EllipticCurvePublicKey]:
        key = serialization.load_pem_private_key((work / f"{host}.key").read_bytes(), None)
        return load_cert(work / f"{host}.crt"), key.public_key()

    certificates = {
        "expiring": sign(*own("expiring"), ca_cert, ca_key, days=10),
        "wrong-san": sign(
            *own("wrong-san"), ca_cert, ca_key, extra_san=x509.DNSName("other.example")
        ),
        "other-ca": sign(*own("other-ca"), *other_ca(ca_cert.subject)),
        "other-key": sign(
            own("other-key")[0],
            ec.generate_private_key(ec.SECP256R1()).public_key(),
            ca_cert,
            ca_key,
        ),
        "not-pem": b"not a certificate\n",
    }
    for host, pem in certificates.items():
        (work / f"{host}.crt").write_bytes(pem)
    (work / f"{KEY_MODE}.key").chmod(0o644)
    # Drift that only the CA tasks repair: they must run although the first host serves.
    (work / "ca").chmod(0o755)


@dataclass
class Runs:
    work: Path
    first: Run
    second: Run
    after_second: dict[str, bytes]
    before_third: dict[str, bytes]
    third: Run
    fourth: Run


def snapshot(work: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(work.glob("*.*")) if path.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    work = tmp_path_factory.mktemp("tls-certificate")
    first = apply(work)
    before_second = snapshot(work)
    second = apply(work)
    after_second = snapshot(work)
    assert after_second == before_second
    tamper(work)
    before_third = snapshot(work)
    third = apply(work)
    fourth = apply(work)
    return Runs(work, first, second, after_second, before_third, third, fourth)


def expected_names(runs: Runs, host: str) -> tuple[x509.Name, set[str]]:
    """The subject and names the role gave the host on its first run."""
    cert = x509.load_pem_x509_certificate(runs.after_second[f"{host}.crt"])
    return cert.subject, sans(cert)


def test_the_first_run_signs_every_host_with_the_ca(runs):
    ca_cert = load_cert(runs.work / "ca" / "ca.crt")
    for host in HOSTS:
        cert = x509.load_pem_x509_certificate(runs.after_second[f"{host}.crt"])
        cert.verify_directly_issued_by(ca_cert)
        assert {host, "localhost", "127.0.0.1"} <= sans(cert)
    assert set(runs.first.results(HANDLER)) == set(HOSTS)


def test_a_second_run_reads_once_and_skips_the_rest(runs):
    assert runs.second.changed() == 0
    reads = runs.second.results(READ_TASK)
    assert set(reads) == set(HOSTS)
    assert not any(result.get("skipped") for result in reads.values())
    skipped = runs.second.results(SIGN_INCLUDE)
    assert set(skipped) == set(HOSTS) and all(result.get("skipped") for result in skipped.values())
    for task in [KEY_TASK, *CA_TASKS, *SIGNING_TASKS]:
        assert runs.second.results(task) == {}, task
    assert runs.second.results(HANDLER) == {}


@pytest.mark.parametrize("host", REPLACED)
def test_a_certificate_that_no_longer_serves_is_replaced(runs, host):
    assert runs.before_third[f"{host}.crt"] != runs.after_second[f"{host}.crt"]
    cert = load_cert(runs.work / f"{host}.crt")
    cert.verify_directly_issued_by(load_cert(runs.work / "ca" / "ca.crt"))
    key = serialization.load_pem_private_key((runs.work / f"{host}.key").read_bytes(), None)
    assert cert.public_key() == key.public_key()
    subject, names = expected_names(runs, host)
    assert (cert.subject, sans(cert)) == (subject, names)
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert VALID_DAYS - 2 <= left.days <= VALID_DAYS
    assert host in runs.third.results(HANDLER)


def test_the_expiring_certificate_was_otherwise_right(runs):
    """Only its date can have made the role replace it."""
    tampered = x509.load_pem_x509_certificate(runs.before_third["expiring.crt"])
    assert (tampered.subject, sans(tampered)) == expected_names(runs, "expiring")
    left = tampered.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert left.days < 30


def test_the_ca_is_prepared_when_only_a_later_host_needs_signing(runs):
    assert runs.third.results(SIGN_INCLUDE)[SERVING].get("skipped")
    assert (runs.work / f"{SERVING}.crt").read_bytes() == runs.after_second[f"{SERVING}.crt"]
    assert SERVING not in runs.third.results(HANDLER)
    # Run once, on the first host that needs signing.
    [ca_dir] = runs.third.results(CA_TASKS[0]).values()
    assert ca_dir["changed"]
    assert (runs.work / "ca").stat().st_mode & 0o777 == 0o700


def test_a_key_whose_mode_drifted_is_kept_with_its_certificate_and_made_private(runs):
    for name in (f"{KEY_MODE}.key", f"{KEY_MODE}.crt"):
        assert (runs.work / name).read_bytes() == runs.after_second[name], name
    assert (runs.work / f"{KEY_MODE}.key").stat().st_mode & 0o777 == 0o600
    assert runs.third.results(KEY_TASK)[KEY_MODE]["changed"]


def test_after_the_replacements_nothing_changes(runs):
    assert runs.fourth.changed() == 0
    assert runs.fourth.results(HANDLER) == {}
