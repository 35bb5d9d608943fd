"""The fingerprint of a baked machine image: what is baked in, digested, secrets left out.

    fingerprint(boot)  # sha256 hex of the roles' files, the non-secret variables, the model

An image carries the roles' result (Docker engine, Nginx, the non-secret configuration)
and the model image already pulled. Two bakes with the same fingerprint make the same
image, so a provider reuses the image tagged with it instead of baking again. The roles
are read as the instance would get them (payload.embedded_roles: the named roles and the
roles they include, every file), the variables as the payload writes them (vars.yml),
and the model image reference is part of those variables. The secret variables are not
read at all: a changed password must not make a new image (it never is in one), and a
fingerprint is a tag anyone who may describe images can read.
"""

import hashlib
import json
from pathlib import Path

from mlops_vm.bootstrap.config import BootConfig
from mlops_vm.bootstrap.payload import embedded_roles, variables

VERSION = "1"  # of this digest's layout: a new layout never matches an old image


def role_file_digests(roles_dir: Path, roles: tuple[str, ...]) -> list[tuple[str, str]]:
    """(path under ROLES_DIR, sha256 hex) of every file of ROLES and the roles they include,
    sorted; caches and version control left out (they change nothing on an instance)."""
    found = []
    for role in embedded_roles(roles_dir, roles):
        for path in sorted((roles_dir / role).rglob("*")):
            relative = path.relative_to(roles_dir)
            if not path.is_file() or {"__pycache__", ".git"} & set(relative.parts):
                continue
            found.append((relative.as_posix(), hashlib.sha256(path.read_bytes()).hexdigest()))
    return found


def fingerprint(boot: BootConfig) -> str:
    """sha256 hex over BOOT's roles (their files), its non-secret variables (the model image
    reference among them) and its role order; BOOT.secret_vars never read."""
    document = {
        "version": VERSION,
        "roles": list(boot.roles),
        "files": role_file_digests(boot.roles_dir, boot.roles),
        "variables": variables(boot),
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
