"""GCP references checked by their form alone, with no SDK (the settings' checks and the
provider share them; importing the provider would load the Google client libraries for a
regular expression): Artifact Registry hosts and Secret Manager versions."""

import re

# <location>-docker.pkg.dev: an Artifact Registry, pulled from with the service account.
ARTIFACT_REGISTRY = re.compile(r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev$")
SECRET_VERSION = re.compile(
    r"^(?P<secret>projects/(?P<project>[a-z0-9][a-z0-9-]{4,28}[a-z0-9]|\d+)"
    r"/secrets/[A-Za-z0-9_-]{1,255})(?:/versions/(?P<version>latest|[1-9]\d*))?$"
)
SECRET_FORM = "a Secret Manager version (projects/PROJECT/secrets/NAME[/versions/VERSION])"


def is_artifact_registry(registry_host: str | None) -> bool:
    return bool(registry_host and ARTIFACT_REGISTRY.match(registry_host))


def is_secret_reference(reference: str) -> bool:
    return SECRET_VERSION.match(reference) is not None
