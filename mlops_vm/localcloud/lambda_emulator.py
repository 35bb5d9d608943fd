"""The official AWS Lambda Runtime Interface Emulator, for running Lambda images locally.

It ships as a binary inside the aws-sam-cli wheel; aws-sam-cli itself is not installed
(it pins versions that conflict with the project's): the wheel is downloaded once, without
its dependencies, and the binary extracted into the cache.
"""

import logging
import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from mlops_vm import paths

log = logging.getLogger(__name__)

SAM_CLI = "aws-sam-cli==1.170.0"
ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def emulator_path(architecture: str | None = None) -> Path:
    arch = architecture or ARCHITECTURES.get(platform.machine().lower(), "x86_64")
    version = SAM_CLI.split("==")[1]
    return paths.CACHE_DIR / "lambda-rie" / version / f"aws-lambda-rie-{arch}"


def ensure_emulator(architecture: str | None = None) -> Path:
    """The emulator binary for ARCHITECTURE (this machine's by default), extracted once."""
    target = emulator_path(architecture)
    if target.exists():
        return target
    log.info("extracting the Lambda Runtime Interface Emulator from %s", SAM_CLI)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlops-vm-sam-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", SAM_CLI, "-d", tmp],
            check=True,
            capture_output=True,
        )
        wheel = next(Path(tmp).glob("aws_sam_cli-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(f"samcli/local/rapid/{target.name}")
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.rename(target)
    return target
