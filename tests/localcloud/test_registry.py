"""The registry speaks TLS only, with a certificate from the project CA, and wants a login."""

import socket
import ssl

import pytest
import requests

from mlops_vm.localcloud import pki, registry

pytestmark = pytest.mark.slow


def test_plain_http_is_refused(platform):
    with socket.create_connection(("127.0.0.1", registry.PORT), timeout=5) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = sock.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.0 400"), answer
    assert "HTTP request to an HTTPS server" in answer
    assert "Docker-Distribution-Api-Version" not in answer


def test_certificate_verifies_against_the_project_ca_only(platform):
    context = ssl.create_default_context(cafile=str(pki.ca_pair().cert))
    with (
        socket.create_connection(("127.0.0.1", registry.PORT), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=registry.HOSTNAME) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")

    system_only = ssl.create_default_context()
    with (
        socket.create_connection(("127.0.0.1", registry.PORT), timeout=5) as sock,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        system_only.wrap_socket(sock, server_hostname=registry.HOSTNAME)


def test_api_needs_the_password(platform):
    creds = platform
    ca = str(pki.ca_pair().cert)
    url = f"https://{registry.HOST_ADDRESS}/v2/"
    assert requests.get(url, verify=ca, timeout=5).status_code == 401
    wrong = requests.get(url, verify=ca, auth=(creds.username, "wrong"), timeout=5)
    assert wrong.status_code == 401
    assert registry.registry_get(creds, "/v2/", timeout=5).status_code == 200


def test_both_model_versions_are_in_the_registry(platform):
    tags = registry.registry_get(platform, "/v2/mlops-vm/model-service/tags/list", timeout=5)
    assert {"1.0", "1.1"} <= set(tags.json()["tags"])
