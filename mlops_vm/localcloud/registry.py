"""The local private registry that serves the model image to the VMs.

A container of Debian's docker-registry on the platform network, reachable by the VMs as
registry.mlops-vm.test:5443 and by this machine as 127.0.0.1:5443. It speaks TLS only (a
certificate from the project CA) and asks for a user and password (htpasswd, bcrypt). The
password is generated once and kept 0600 in the state folder.
"""

import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import requests

from mlops_vm import paths
from mlops_vm.localcloud import images, pki
from mlops_vm.localcloud.docker_cli import docker, image_id

log = logging.getLogger(__name__)

NETWORK = "mlops-vm-platform"
CONTAINER = "mlops-vm-registry"
VOLUME = "mlops-vm-registry-data"
HOSTNAME = "registry.mlops-vm.test"
PORT = 5443
ADDRESS = f"{HOSTNAME}:{PORT}"  # as the VMs see it
HOST_ADDRESS = f"127.0.0.1:{PORT}"  # as this machine sees it
USERNAME = "mlops"
CONFIG_LABEL = "org.mlops-vm.config"
OWNER_LABEL = "org.mlops-vm.owner=platform"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print the password by accident
        return f"Credentials(username={self.username!r}, password='***')"


def credentials_file() -> Path:
    return paths.REGISTRY_STATE_DIR / "credentials.json"


def ensure_credentials() -> Credentials:
    path = credentials_file()
    if path.exists():
        data = json.loads(path.read_text())
        return Credentials(data["username"], data["password"])
    creds = Credentials(USERNAME, secrets.token_urlsafe(24))
    pki.write_private(path, json.dumps(creds.__dict__).encode())
    return creds


# The registry checks the bcrypt hash on every request (a pull is 4 to 6 of them), not once
# per login: at bcrypt's default cost (12) that is 0.25 s of CPU per request on a quiet
# 2-core machine and over a second under load, most of a pull. Cost 5 is what
# `htpasswd -B` writes (the registry's own documentation uses it); the password is a
# random 192-bit token, which no cost factor needs to slow a guess of.
BCRYPT_COST = 5


def ensure_htpasswd(creds: Credentials) -> Path:
    path = paths.REGISTRY_STATE_DIR / "auth" / "htpasswd"
    if path.exists():
        user, _, hashed = path.read_text().strip().partition(":")
        if (
            user == creds.username
            and hashed.startswith(f"$2b${BCRYPT_COST:02d}$")
            and bcrypt.checkpw(creds.password.encode(), hashed.encode())
        ):
            return path
    hashed = bcrypt.hashpw(creds.password.encode(), bcrypt.gensalt(rounds=BCRYPT_COST)).decode()
    pki.write_private(path, f"{creds.username}:{hashed}\n".encode())
    return path


def ensure_tls() -> pki.CertPair:
    return pki.ensure_server_cert(
        paths.REGISTRY_STATE_DIR / "tls", "registry", [HOSTNAME, "localhost", "127.0.0.1"]
    )


def ensure_network() -> None:
    if not docker("network", "ls", "-q", "--filter", f"name=^{NETWORK}$"):
        docker("network", "create", "--label", OWNER_LABEL, NETWORK)


def trust_ca_on_this_machine() -> None:
    """Let this machine's Docker engine verify the registry (used for pushes)."""
    target = Path("/etc/docker/certs.d") / HOST_ADDRESS / "ca.crt"
    ca = pki.ensure_ca().cert.read_bytes()
    if not target.exists() or target.read_bytes() != ca:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(ca)


def running_config() -> str | None:
    out = docker(
        "inspect",
        "--format",
        f'{{{{.State.Running}}}} {{{{index .Config.Labels "{CONFIG_LABEL}"}}}}',
        CONTAINER,
        check=False,
    )
    running, _, config = out.partition(" ")
    return config if running == "true" else None


def ensure_registry() -> Credentials:
    """Run the registry container (again only if its image, certificate or users changed)."""
    creds = ensure_credentials()
    htpasswd = ensure_htpasswd(creds)
    tls = ensure_tls()
    ensure_network()
    trust_ca_on_this_machine()
    config = hashlib.sha256(
        image_id(images.REGISTRY_IMAGE).encode() + tls.cert.read_bytes() + htpasswd.read_bytes()
    ).hexdigest()[:32]
    if running_config() != config:
        log.info("starting the registry container %s", CONTAINER)
        docker("rm", "-f", CONTAINER, check=False)
        docker(
            "run",
            "-d",
            "--name",
            CONTAINER,
            "--label",
            OWNER_LABEL,
            "--label",
            f"{CONFIG_LABEL}={config}",
            "--network",
            NETWORK,
            "--network-alias",
            HOSTNAME,
            "-p",
            f"{HOST_ADDRESS}:{PORT}",
            "--restart",
            "unless-stopped",
            "--cap-drop",
            "ALL",
            "-v",
            f"{VOLUME}:/var/lib/docker-registry",
            "-v",
            f"{tls.cert.parent}:/etc/docker/registry/tls:ro",
            "-v",
            f"{htpasswd.parent}:/etc/docker/registry/auth:ro",
            images.REGISTRY_IMAGE,
        )
    wait_until_serving(creds)
    return creds


def registry_get(creds: Credentials, path: str, **kwargs) -> requests.Response:
    """GET from the registry's API, trusting only the project CA.

    verify is passed per request: a Session's verify loses to REQUESTS_CA_BUNDLE.
    """
    return requests.get(
        f"https://{HOST_ADDRESS}{path}",
        auth=(creds.username, creds.password),
        verify=str(pki.ca_pair().cert),
        **kwargs,
    )


def wait_until_serving(creds: Credentials, timeout_s: float = 120.0) -> None:
    # Generous: a registry busy with pushes and pulls on a loaded 2-core machine takes
    # seconds to answer /v2/, and a fresh one a moment to start.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if registry_get(creds, "/v2/", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            logs = docker("logs", "--tail", "20", CONTAINER, check=False)
            raise RuntimeError(f"registry did not answer within {timeout_s:.0f}s:\n{logs}")
        time.sleep(0.5)


def remote_config_digest(creds: Credentials, repository: str, tag: str) -> str | None:
    """The image config digest (= local image id) of REPOSITORY:TAG in the registry."""
    response = registry_get(
        creds,
        f"/v2/{repository}/manifests/{tag}",
        headers={"Accept": MANIFEST_TYPES},
        timeout=10,
    )
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json().get("config", {}).get("digest")


def push(creds: Credentials, local_tag: str) -> bool:
    """Push LOCAL_TAG to the registry under the same name; False when already there."""
    repository, _, tag = local_tag.rpartition(":")
    if remote_config_digest(creds, repository, tag) == image_id(local_tag):
        return False
    import docker as docker_sdk  # the SDK passes credentials without storing them

    remote = f"{HOST_ADDRESS}/{repository}"
    client = docker_sdk.from_env()
    client.images.get(local_tag).tag(remote, tag)
    auth = {"username": creds.username, "password": creds.password}
    for line in client.images.push(remote, tag, auth_config=auth, stream=True, decode=True):
        if "error" in line:
            raise RuntimeError(f"push of {local_tag} failed: {line['error']}")
    return True


def model_image_ref(version: str) -> str:
    """The model image as the VMs pull it."""
    return f"{ADDRESS}/{images.model_tag(version)}"
