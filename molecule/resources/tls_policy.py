"""The TLS policy every HTTPS endpoint of the roles keeps (nginx_proxy on the model hosts,
haproxy_lb on the load-balancer host), tested from inside the VM with openssl and curl.

A scenario's test module imports these tests (`from tls_policy import *`); its conftest
says where the generated CA is on the VM (CA_ON_VM) and which plain-HTTP URL of the
endpoint must redirect to https://vm1/predict?x=1 (HTTP_PROBE_URL).
"""

from __future__ import annotations

import pytest
from conftest import CA_ON_VM, HTTP_PROBE_URL

__all__ = [
    "test_http_redirects_to_https",
    "test_modern_tls_versions_are_accepted",
    "test_old_tls_versions_are_refused_by_the_server",
    "test_weak_tls12_cipher_is_refused",
]


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_tls_versions_are_refused_by_the_server(host, version):
    # SECLEVEL=0 lets this client offer TLS 1.0/1.1; the refusal must come
    # from the server (alert 70, protocol_version).
    result = host.run(
        f"openssl s_client -connect 127.0.0.1:443 {version} -cipher 'DEFAULT@SECLEVEL=0' </dev/null"
    )
    output = result.stdout + result.stderr
    assert result.rc != 0
    assert "alert protocol version" in output, output
    assert "no protocols available" not in output, output


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_modern_tls_versions_are_accepted(host, version):
    result = host.run(
        f"openssl s_client -connect 127.0.0.1:443 {version} -CAfile {CA_ON_VM} </dev/null"
    )
    assert result.rc == 0, result.stdout + result.stderr
    assert "Verify return code: 0 (ok)" in result.stdout


def test_weak_tls12_cipher_is_refused(host):
    result = host.run(
        "openssl s_client -connect 127.0.0.1:443 -tls1_2 "
        "-cipher 'AES128-SHA:@SECLEVEL=0' </dev/null"
    )
    assert result.rc != 0
    assert "handshake failure" in result.stdout + result.stderr


def test_http_redirects_to_https(host):
    result = host.run(
        f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' '{HTTP_PROBE_URL}'"
    )
    assert result.stdout == "301 https://vm1/predict?x=1"
