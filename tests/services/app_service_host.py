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
import socketserver
import ssl
import subprocess
import threading
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
        self.lock = threading.Lock()  # the proxy asks from several threads

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
        with self.lock:
            return self._start(key, image, settings)

    def _start(self, key: tuple, image: str, settings: dict[str, str]) -> str:
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


class HostsProxy:
    """An HTTPS proxy standing in for DNS and App Service's front end, for processes the test
    does not own (the CLI, Ansible): with HTTPS_PROXY set to `url`, a CONNECT to
    <host>.azurewebsites.net:443 is answered with TLS for that name (a certificate of the
    project CA, which the process trusts through SSL_CERT_FILE) and the request is passed to
    the slot's container."""

    def __init__(self, host: AppServiceHost, cert_file: str, key_file: str) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        stand_in = host

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request_line = self.rfile.readline().decode()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                method, target, _ = request_line.split(" ", 2)
                if method != "CONNECT":
                    self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                    return
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
                with context.wrap_socket(self.request, server_side=True) as tls:
                    forward(tls, target.rsplit(":", 1)[0])

        def forward(tls: ssl.SSLSocket, hostname: str) -> None:
            stream = tls.makefile("rb")
            method, path, _ = stream.readline().decode().split(" ", 2)
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = stream.read(length) if length else None
            base = stand_in.base_url(hostname)
            status, payload = 502, b"no such app"
            if base is not None:
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                request = urllib.request.Request(base + path, data=body, method=method)
                request.add_header("Content-Type", "application/json")
                try:
                    with opener.open(request, timeout=5) as answer:
                        status, payload = answer.status, answer.read()
                except urllib.error.HTTPError as error:
                    status, payload = error.code, error.read()
                except (urllib.error.URLError, OSError):
                    status, payload = 502, b"the container did not answer"
            head = f"HTTP/1.1 {status} -\r\nContent-Length: {len(payload)}\r\n"
            tls.sendall(head.encode() + b"Connection: close\r\n\r\n" + payload)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
