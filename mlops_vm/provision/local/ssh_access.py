"""SSH into the local VMs the way cloud VMs are reached: a key per environment, known
host keys.

Like cloud-init on a cloud, the provider puts the environment's public key in root's
authorized_keys when a VM boots. Unlike a cloud, it can read the VM's host key directly,
so the environment's known_hosts holds the real key and strict checking stays on. This
keeps the local cloud on the same connection path as every cloud (ssh, pipelining,
ControlPersist) instead of a docker-specific one.
"""

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mlops_vm import paths
from mlops_vm.localcloud.docker_cli import docker
from mlops_vm.localcloud.pki import write_private
from mlops_vm.paths import known_hosts_file


def key_file(env: str) -> Path:
    return paths.STATE_DIR / "envs" / env / "ssh" / "id_ed25519"


def ensure_key(env: str) -> str:
    """The environment's key pair (created once); returns the public key line."""
    private = key_file(env)
    public = private.with_suffix(".pub")
    if not (private.exists() and public.exists()):
        key = ed25519.Ed25519PrivateKey.generate()
        write_private(
            private,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ),
        )
        line = (
            key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
        public.write_text(f"{line} mlops-vm-{env}\n")
    return public.read_text().strip()


def authorize(vm: str, public_key: str) -> None:
    """Root's authorized_keys in VM holds exactly the environment's key."""
    docker(
        "exec",
        "-i",
        vm,
        "sh",
        "-c",
        "install -d -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys"
        " && chmod 600 /root/.ssh/authorized_keys",
        input_bytes=f"{public_key}\n".encode(),
    )


def read_host_key(vm: str) -> list[str]:
    """VM's ed25519 host key: [type, key]."""
    return docker("exec", vm, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").split()[:2]


def record_host_keys(env: str, host_keys: dict[str, list[str]]) -> None:
    """Put each address's host key in the environment's known_hosts, replacing older keys of
    those addresses (addresses are reused when VMs are recreated)."""
    if not host_keys:
        return
    path = known_hosts_file(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if line.split(" ", 1)[0] not in host_keys]
    kept += [" ".join([address, *key]) for address, key in host_keys.items()]
    path.write_text("\n".join(kept) + "\n")
