"""Bring the whole local platform up: images, CA, registry, model images in the registry.

Run as `python -m mlops_vm.localcloud`. Idempotent: a second run builds and pushes nothing
whose inputs did not change.
"""

import logging

from mlops_vm.localcloud import images, lambda_emulator, registry

log = logging.getLogger(__name__)


def ensure_platform() -> dict[str, list[str]]:
    built = images.ensure_images()
    creds = registry.ensure_registry()
    pushed = [
        images.model_tag(version)
        for version in (
            *images.MODEL_VERSIONS,
            images.BROKEN_MODEL_VERSION,
            *images.FAULTY_MODEL_VERSIONS,
        )
        if registry.push(creds, images.model_tag(version))
    ]
    lambda_emulator.ensure_emulator()  # for the Lambda target's tests
    return {"built": built, "pushed": pushed}
