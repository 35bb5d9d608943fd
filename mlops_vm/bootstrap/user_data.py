"""Render the cloud-init user-data that makes a fresh Debian 12 instance serve the model.

The user-data is a small #cloud-config document: one write_files entry holding the
payload (payload.py: roles, playbook, variables, run script; xz, base85) and runcmd
entries that unpack it with Python (present wherever cloud-init is) and run it. The
run script installs Ansible and applies docker_engine, model_service and nginx_proxy to
the instance itself (connection=local): the same roles and variables as the SSH path,
so the instance ends up serving HTTPS through Nginx without anyone logging in.

The result is text (InstanceSpec.user_data is a str on every cloud); the payload is
compressed inside it, which is how it fits the tightest limit, EC2's 16 KB.
"""

import base64
import gzip
import inspect
import logging

import yaml

from mlops_vm.bootstrap import fetch_script
from mlops_vm.bootstrap.config import BootConfig
from mlops_vm.bootstrap.payload import BOOT_DIR, BlockDumper, LiteralText, build_payload

log = logging.getLogger(__name__)

# Largest user-data each cloud takes, in bytes of what is handed to the API
# (user_data_bytes).
USER_DATA_LIMITS = {
    "aws": 16 * 1024,  # EC2 / launch templates, before base64, gzip'd
    "azure": 64 * 1024,  # customData (VMSS and VMs), before base64
    "gcp": 256 * 1024,  # one metadata value
}
PAYLOAD = f"{BOOT_DIR}/payload.b85"
LINE_LENGTH = 1024  # of the payload's lines (a literal block: no escaping, no folding)


def unpack_code(payload_path: str = PAYLOAD, boot_dir: str = BOOT_DIR) -> str:
    """The instance's unpacker of the payload at PAYLOAD_PATH (base85 text, xz inside): the
    boot fetcher's own `unpack`, so both boots read payload.read_payload's format alike.
    Python does it because python3 is wherever cloud-init is; xz-utils is not always."""
    return (
        "import base64, lzma, os\n"
        + inspect.getsource(fetch_script.unpack)
        + f"unpack(base64.b85decode(b''.join(open({payload_path!r}, 'rb').read().split())), "
        + f"{boot_dir!r})\n"
    )


class UserDataTooLarge(ValueError):
    """The rendered user-data is over a cloud's limit."""


# EC2 carries bytes, and cloud-init gunzips gzip'd user-data: AWS gets it gzip'd, which
# is what keeps the roles within its 16 KB. GCP metadata values and Azure customData are
# text, and roomy.
GZIPPED_CLOUDS = frozenset({"aws"})


def user_data_bytes(user_data: str, cloud: str) -> bytes:
    """What CLOUD's API is handed for USER_DATA (deterministic: no time in the gzip header,
    so the same user-data never makes a new launch template version)."""
    data = user_data.encode()
    return gzip.compress(data, compresslevel=9, mtime=0) if cloud in GZIPPED_CLOUDS else data


def render_user_data(
    boot: BootConfig, *, cloud: str = "azure", limit_bytes: int | None = None
) -> str:
    """The #cloud-config user-data for BOOT, the payload embedded; UserDataTooLarge when
    what CLOUD is handed (user_data_bytes) is over LIMIT_BYTES (default: the cloud's limit).
    AWS instances do not boot this way (EC2's 16 KB cannot hold the roles): they fetch the
    payload from S3 with their own identity (bootstrap/boot_source.py)."""
    # Base85 is denser than cloud-init's own base64 encoding, and it needs no escaping
    # in a YAML block.
    encoded = base64.b85encode(build_payload(boot)).decode()
    payload = LiteralText(
        "\n".join(
            encoded[start : start + LINE_LENGTH] for start in range(0, len(encoded), LINE_LENGTH)
        )
        + "\n"
    )
    document = {
        # The image's locale stays as it is: Ansible runs with C.UTF-8, and a locale the
        # image lacks would fail the boot for nothing.
        "locale": False,
        "write_files": [
            {"path": PAYLOAD, "owner": "root:root", "permissions": "0600", "content": payload}
        ],
        "runcmd": [
            ["python3", "-c", unpack_code()],
            ["rm", "-f", PAYLOAD],
            ["sh", f"{BOOT_DIR}/run.sh"],
        ],
    }
    text = (
        "#cloud-config\n"
        "# mlops-vm: configure this instance with the project's roles (mlops_vm.bootstrap)\n"
        + yaml.dump(document, Dumper=BlockDumper, sort_keys=False, width=4096)
    )
    limit_bytes = limit_bytes or USER_DATA_LIMITS[cloud]
    wire = user_data_bytes(text, cloud)
    check_size(wire, limit_bytes)
    # Sizes only: the document carries the secret variables.
    log.debug("rendered user-data: %d bytes for %s (limit %d)", len(wire), cloud, limit_bytes)
    return text


def check_size(user_data: str | bytes, limit_bytes: int) -> None:
    size = len(user_data.encode() if isinstance(user_data, str) else user_data)
    if size > limit_bytes:
        raise UserDataTooLarge(
            f"user-data is {size} bytes, over the limit of {limit_bytes}: embed fewer "
            "roles, or use a cloud with a larger limit (Azure 64 KB, GCP 256 KB)"
        )
