"""The Docker Engine API over its UNIX socket, with the standard library only (the hosts have
python3, not the docker SDK): what the model_service role's modules share.

It lives in the role's module_utils/, which Ansible packs with the role's modules wherever the
role runs (the checkout, Molecule, the instances that configure themselves at boot); the
collection, whose roles cannot carry plugins, has it as plugins/module_utils (a link here).
"""

from __future__ import annotations

import http.client
import json
import socket


class EngineError(Exception):
    """An answer of the Docker Engine API that is not a success."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the engine's UNIX socket."""

    def __init__(self, socket_path: str, timeout: int) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class Engine:
    """Engine API calls, one connection per call; a module adds the calls it makes."""

    def __init__(self, socket_path: str, timeout: int) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def request(
        self, method: str, path: str, headers: dict | None = None, body: dict | None = None
    ) -> tuple[int, bytes]:
        """The status and the answer of one call; BODY, when given, goes as JSON."""
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection = UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


def message_of(body: bytes) -> str:
    """The engine's error message ({"message": ...}), else its answer as text."""
    try:
        return json.loads(body)["message"]
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace").strip()
