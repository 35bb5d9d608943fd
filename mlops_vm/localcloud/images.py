"""Build the project's images locally, each only when its inputs changed.

Nothing can be pulled here, so the chain starts from a Debian 12 root filesystem made by
debootstrap and imported with `docker import`; every other image is a Dockerfile FROM it.
Each image carries a label with a hash of its inputs (files, build args, parent image id),
and a build is skipped when the existing image already has that hash.
"""

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlops_vm import paths
from mlops_vm.localcloud.docker_cli import docker, image_id, image_label, run

log = logging.getLogger(__name__)

INPUTS_LABEL = "org.mlops-vm.inputs"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"

BASE_IMAGE = "mlops-vm/debian:12"
VM_IMAGE = "mlops-vm/vm:debian12"
# VM_IMAGE with a model host's packages installed (images/vm-packaged: a golden image).
PACKAGED_VM_IMAGE = "mlops-vm/vm:debian12-packaged"
REGISTRY_IMAGE = "mlops-vm/registry:2"
MODEL_REPOSITORY = "mlops-vm/model-service"
MODEL_VERSIONS = ("1.0", "1.1")
# A tag that pulls fine but never becomes ready (the release tests' bad release).
BROKEN_MODEL_VERSION = "1.1-broken"
# Tags that are healthy and ready but serve worse (the canary tests' bad releases):
# each one's settings of images/model-faulty (a slowdown factor, one prediction in N a 500).
FAULTY_MODEL_VERSIONS = {
    # 4 times slower, counting at least 600 ms of work: a clear p99 even on a loaded machine.
    "1.1-slow": {"MODEL_SLOWDOWN": "4", "MODEL_SLOWDOWN_BASE_MS": "600"},
    "1.1-errors": {"MODEL_ERROR_EVERY": "8"},
}


@dataclass(frozen=True)
class ImageSpec:
    """One image: how to build it and which inputs decide whether it is stale."""

    tag: str
    # Directory holding the Dockerfile; None for the debootstrap base.
    context: Path | None = None
    # Image the Dockerfile builds FROM (passed as the BASE_IMAGE build arg).
    parent: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    # Extra files copied into the build context before the build (name -> producer).
    extra_context: Callable[[Path], None] | None = None
    extra_inputs: tuple[str, ...] = ()


def hash_tree(root: Path, digest: "hashlib._Hash") -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())


def inputs_hash(spec: ImageSpec) -> str:
    digest = hashlib.sha256(spec.tag.encode())
    if spec.context is not None:
        hash_tree(spec.context, digest)
    if spec.parent is not None:
        digest.update(image_id(spec.parent).encode())
    for key, value in sorted(spec.build_args.items()):
        digest.update(f"{key}={value}".encode())
    for extra in spec.extra_inputs:
        digest.update(extra.encode())
    return digest.hexdigest()[:32]


def is_current(spec: ImageSpec, wanted: str) -> bool:
    return image_label(spec.tag, INPUTS_LABEL) == wanted


def build_base(spec: ImageSpec, wanted: str) -> None:
    """debootstrap a minimal Debian into a scratch folder and import it as an image."""
    deb_cache = paths.CACHE_DIR / "debootstrap"
    deb_cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlops-vm-rootfs-") as rootfs:
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--cache-dir={deb_cache}",
                "--include=ca-certificates",
                DEBIAN_SUITE,
                rootfs,
                DEBIAN_MIRROR,
            ]
        )
        # The image should not carry this host's apt lists or the debootstrap log.
        shutil.rmtree(Path(rootfs, "var/lib/apt/lists"), ignore_errors=True)
        Path(rootfs, "var/lib/apt/lists/partial").mkdir(parents=True)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            [
                "docker",
                "import",
                "-c",
                'CMD ["/bin/bash"]',
                "-c",
                f"LABEL {INPUTS_LABEL}={wanted}",
                "-",
                spec.tag,
            ],
            stdin=tar.stdout,
            check=True,
            capture_output=True,
        )
        if tar.wait() != 0:
            raise RuntimeError(f"tar of the {spec.tag} root filesystem failed")


def build_dockerfile(spec: ImageSpec, wanted: str) -> None:
    assert spec.context is not None
    with tempfile.TemporaryDirectory(prefix="mlops-vm-build-") as tmp:
        context = Path(tmp, "context")
        shutil.copytree(spec.context, context, ignore=shutil.ignore_patterns("__pycache__"))
        if spec.extra_context is not None:
            spec.extra_context(context)
        args = ["build", "--quiet", "--label", f"{INPUTS_LABEL}={wanted}", "-t", spec.tag]
        build_args = dict(spec.build_args)
        if spec.parent is not None:
            build_args["BASE_IMAGE"] = spec.parent
        for key, value in sorted(build_args.items()):
            args += ["--build-arg", f"{key}={value}"]
        docker(*args, str(context))


def model_wheels(context: Path) -> None:
    """Build (once per requirements file) the wheels the model image installs from."""
    requirements = context / "requirements.txt"
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    wheels = paths.CACHE_DIR / "wheels" / key
    if not (wheels / ".complete").exists():
        shutil.rmtree(wheels, ignore_errors=True)
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "-r",
                str(requirements),
                "-w",
                str(wheels),
            ]
        )
        (wheels / ".complete").touch()
    shutil.copytree(wheels, context / "wheels", ignore=shutil.ignore_patterns(".complete"))


def model_tag(version: str) -> str:
    return f"{MODEL_REPOSITORY}:{version}"


def all_specs() -> list[ImageSpec]:
    """Every image in build order (parents first)."""
    specs = [
        ImageSpec(
            BASE_IMAGE,
            extra_inputs=(DEBIAN_SUITE, DEBIAN_MIRROR, "minbase", "ca-certificates", "v1"),
        ),
        ImageSpec(VM_IMAGE, context=paths.IMAGES_DIR / "vm", parent=BASE_IMAGE),
        ImageSpec(PACKAGED_VM_IMAGE, context=paths.IMAGES_DIR / "vm-packaged", parent=VM_IMAGE),
        ImageSpec(REGISTRY_IMAGE, context=paths.IMAGES_DIR / "registry", parent=BASE_IMAGE),
    ]
    specs += [
        ImageSpec(
            model_tag(version),
            context=paths.EXAMPLES_DIR / "model-service",
            parent=BASE_IMAGE,
            build_args={"MODEL_VERSION": version},
            extra_context=model_wheels,
        )
        for version in MODEL_VERSIONS
    ]
    specs.append(
        ImageSpec(
            model_tag(BROKEN_MODEL_VERSION),
            context=paths.IMAGES_DIR / "model-broken",
            parent=model_tag(MODEL_VERSIONS[-1]),
        )
    )
    specs += [
        ImageSpec(
            model_tag(version),
            context=paths.IMAGES_DIR / "model-faulty",
            parent=model_tag(MODEL_VERSIONS[-1]),
            build_args={"FAULTY_VERSION": version, **settings},
        )
        for version, settings in FAULTY_MODEL_VERSIONS.items()
    ]
    return specs


def ensure_image(spec: ImageSpec) -> bool:
    """Build SPEC if its inputs changed. Returns True when it was (re)built."""
    wanted = inputs_hash(spec)
    if is_current(spec, wanted):
        log.info("image %s is up to date", spec.tag)
        return False
    log.info("building image %s", spec.tag)
    if spec.context is None:
        build_base(spec, wanted)
    else:
        build_dockerfile(spec, wanted)
    return True


def ensure_images(only: set[str] | None = None) -> list[str]:
    """Build every stale image; returns the tags that were built."""
    built = []
    for spec in all_specs():
        if only is not None and spec.tag not in only:
            continue
        if ensure_image(spec):
            built.append(spec.tag)
    return built
