"""A stand-in for App Service's data plane on the local Docker engine.

For a slot's host name (<site>.azurewebsites.net, <site>-<slot>.azurewebsites.net) it runs
what the fake ARM says the slot runs, under App Service's container contract: the image of
`linuxFxVersion` (DOCKER|<image>), the slot's app settings as the environment, and traffic
sent to the container's WEBSITES_PORT (80 when unset, as App Service does). Key Vault
references are resolved from a dict the test gives (App Service resolves them itself).
Containers are labelled with the test run and removed by `close`.
"""

from __future__ import annotations

import re
import subprocess
import urllib.error
import urllib.request
import uuid

from tests.fakes.azure import FakeArm

KEY_VAULT_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(SecretUri=(.+)\)$")


class AppServiceHost:
    def __init__(self, arm: FakeArm, secrets: dict[str, str] | None = None) -> None:
        self.arm = arm
        self.secrets = secrets or {}
        self.label = f"mlops-vm-test-app-service={uuid.uuid4().hex[:8]}"
        self.running: dict[tuple, str] = {}  # (site, slot, image, settings) -> base URL

    def slot_of(self, host: str) -> tuple[dict, str, dict] | None:
        """(site, slot name, slot state) for a default host name."""
        for site in self.arm.resources("Microsoft.Web/sites"):
            default = site["properties"]["defaultHostName"]
            for slot, state in self.arm.site_slots(site["id"]).items():
                name = default if slot == "production" else default.replace(".", f"-{slot}.", 1)
                if name == host:
                    return site, slot, state
        return None

    def environment(self, settings: dict[str, str]) -> dict[str, str]:
        resolved = {}
        for name, value in settings.items():
            reference = KEY_VAULT_REFERENCE.match(value)
            resolved[name] = self.secrets[reference.group(1)] if reference else value
        return resolved

    def base_url(self, host: str) -> str | None:
        found = self.slot_of(host)
        if found is None:
            return None
        site, slot, state = found
        image = state["config"].get("linuxFxVersion", "").removeprefix("DOCKER|")
        settings = state["appsettings"]
        key = (site["id"], slot, image, tuple(sorted(settings.items())))
        if key not in self.running:
            port = settings.get("WEBSITES_PORT", "80")
            command = ["docker", "run", "-d", "--label", self.label, "-p", f"127.0.0.1::{port}"]
            for name, value in self.environment(settings).items():
                command += ["-e", f"{name}={value}"]
            container = subprocess.run(
                [*command, image], check=True, capture_output=True, text=True
            ).stdout.strip()
            published = subprocess.run(
                ["docker", "port", container, port], check=True, capture_output=True, text=True
            ).stdout.split()[0]
            self.running[key] = f"http://127.0.0.1:{published.rsplit(':', 1)[1]}"
        return self.running[key]

    def probe(self, url: str) -> int | None:
        """The target's probe: https://<host><path> answered by the slot's container."""
        match = re.match(r"^https://([^/]+)(/.*)$", url)
        assert match, url
        base = self.base_url(match.group(1))
        if base is None:
            return None
        try:
            with urllib.request.urlopen(base + match.group(2), timeout=5) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code
        except (urllib.error.URLError, OSError):
            return None

    def close(self) -> None:
        found = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={self.label}"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if found:
            subprocess.run(["docker", "rm", "-f", *found], capture_output=True, check=False)
