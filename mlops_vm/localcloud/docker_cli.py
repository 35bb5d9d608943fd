"""One place that runs the docker CLI, so errors read the same everywhere."""

import subprocess
from collections.abc import Sequence


class DockerError(RuntimeError):
    """A docker command failed; the message carries the command and its stderr."""


def docker(*args: str, input_bytes: bytes | None = None, check: bool = True) -> str:
    """Run `docker ARGS` and return its stdout (stripped)."""
    return run(["docker", *args], input_bytes=input_bytes, check=check)


def run(cmd: Sequence[str], *, input_bytes: bytes | None = None, check: bool = True) -> str:
    proc = subprocess.run(list(cmd), input=input_bytes, capture_output=True, check=False)
    if check and proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace").strip()
        raise DockerError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}): {stderr[-2000:]}")
    return proc.stdout.decode(errors="replace").strip()


def image_label(image: str, label: str) -> str | None:
    """The value of LABEL on IMAGE, or None when the image or the label is missing."""
    out = docker(
        "image",
        "inspect",
        "--format",
        f'{{{{index .Config.Labels "{label}"}}}}',
        image,
        check=False,
    )
    return out if out and out != "<no value>" else None


def image_id(image: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", image)
