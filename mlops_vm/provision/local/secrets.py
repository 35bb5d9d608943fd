"""The local scaling group's secret store stand-in: a root-only directory on the controller.

A cloud instance reads its secrets at boot from the cloud's secret store with its own
identity. Locally the autoscaler plays both parts: it reads the environment's secrets from
this directory (mode 0700, files 0600, under the environment's state directory, never in an
image or a container's configuration) and writes them into each instance it launches before
the instance joins the load balancer. Only the API keys file of Nginx is needed: the model
image is baked in, so an instance never logs in to the registry.
"""

import os
from pathlib import Path

from mlops_vm import paths

API_KEYS_FILE = "api-keys.conf"


def directory(env: str) -> Path:
    path = paths.STATE_DIR / "envs" / env / "group"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def api_keys_path(env: str) -> Path:
    return directory(env) / API_KEYS_FILE


def store_api_keys_file(env: str, content: str) -> None:
    """Keep Nginx's API keys file (empty: the environment has no keys) for new instances."""
    path = api_keys_path(env)
    if not content:
        path.unlink(missing_ok=True)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(content + "\n")


def api_keys_file(env: str) -> str | None:
    path = api_keys_path(env)
    return path.read_text() if path.exists() else None
