"""A process with no cloud credentials and no network, for the checks that promise to need
neither (`validate`, and the CI recipe's pull-request steps).

`offline` (a fixture) removes the clouds' credential variables, points their config files at
nothing, and makes every IP connection attempt fail, recording it: a test asserts the list
stays empty. Local sockets (the Docker engine's) still work.
"""

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

CLOUD_VARIABLES = ("AWS_", "GOOGLE_", "AZURE_", "CLOUDSDK_", "ARM_")


def clear_cloud_credentials(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in list(os.environ):
        if name.startswith(CLOUD_VARIABLES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(home / "no-gcloud"))
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(home / "no-azure"))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[object]]:
    """No credentials, no network; yields the addresses a connection was attempted to."""
    clear_cloud_credentials(monkeypatch, tmp_path)
    attempts: list[object] = []
    connect = socket.socket.connect

    def refuse(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"network disabled by the test: {address}")
        connect(self, address)

    def refuse_ex(self: socket.socket, address: object) -> int:
        try:
            refuse(self, address)
        except OSError:
            return 111
        return 0

    def no_name_lookup(host: object, *args: object, **kwargs: object) -> list:
        attempts.append(host)
        raise socket.gaierror(f"name lookup disabled by the test: {host}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_ex)
    monkeypatch.setattr(socket, "getaddrinfo", no_name_lookup)
    yield attempts
