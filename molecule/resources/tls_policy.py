"""The TLS policy every HTTPS endpoint of the roles keeps (nginx_proxy on the model hosts,
haproxy_lb on the load-balancer host), tested from inside the VM with openssl and curl.

A scenario's test module imports these tests (`from tls_policy import *`); its conftest
gives the fixtures they use: `ca_on_vm` (the generated CA's path on the VM) and
`http_probe_url` (a plain-HTTP URL of the endpoint that must redirect to
https://vm1/predict?x=1).
"""

from __future__ import annotations

import pytest

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
def test_modern_tls_versions_are_accepted(host, version, ca_on_vm):
    result = host.run(
        f"openssl s_client -connect 127.0.0.1:443 {version} -CAfile {ca_on_vm} </dev/null"
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


def test_http_redirects_to_https(host, http_probe_url):
    result = host.run(
        f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' '{http_probe_url}'"
    )
    assert result.stdout == "301 https://vm1/predict?x=1"
