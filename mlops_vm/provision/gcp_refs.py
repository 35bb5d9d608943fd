"""GCP references checked by their form alone, with no SDK (the settings' checks and the
provider share them; loading an environment imports no Google client): Secret Manager
versions and Artifact Registry hosts."""

import re

SECRET_VERSION = re.compile(
    r"^(?P<secret>projects/(?P<project>[a-z0-9][a-z0-9-]{4,28}[a-z0-9]|\d+)"
    r"/secrets/[A-Za-z0-9_-]{1,255})(?:/versions/(?P<version>latest|[1-9]\d*))?$"
)
FORM = "a Secret Manager version (projects/PROJECT/secrets/NAME[/versions/VERSION])"
# <location>-docker.pkg.dev: an Artifact Registry, pulled from with the instances' identity.
ARTIFACT_REGISTRY = re.compile(r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev$")


def is_secret_reference(reference: str) -> bool:
    return SECRET_VERSION.match(reference) is not None


def is_artifact_registry(registry_host: str | None) -> bool:
    return bool(registry_host and ARTIFACT_REGISTRY.match(registry_host))
