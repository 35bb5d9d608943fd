"""The per-client rate limit at the edge (haproxy_lb_rate_limit_requests in molecule.yml:
60 per 10 s), seen from inside the VM: one client over it, another client, and a client that
claims another address in X-Forwarded-For."""

from __future__ import annotations

import pytest
from conftest import CA_ON_VM

LIMIT = 60
NAME = "lb.mlops-vm.test"  # in the certificate (molecule.yml)


@pytest.fixture(scope="module")
def own_address(host) -> str:
    """The VM's network address: requests to it come from it, a client other than 127.0.0.1."""
    return host.check_output("hostname -I").split()[0]


def codes(host, source: str, count: int, *headers: str) -> list[str]:
    """COUNT requests over one connection from SOURCE; their status codes."""
    options = " ".join(f"-H '{header}'" for header in headers)
    urls = " ".join([f"-o /dev/null https://{NAME}/predict"] * count)
    return host.check_output(
        f"curl -s --cacert {CA_ON_VM} -m 30 --resolve {NAME}:443:{source} --interface {source} "
        f"{options} -w '%{{http_code}}\\n' {urls}"
    ).split()


def test_a_client_over_the_rate_limit_gets_429_and_other_clients_do_not(host, own_address):
    answers = codes(host, own_address, LIMIT + 20)
    assert answers[:LIMIT] == ["200"] * LIMIT, answers
    assert answers[LIMIT:] == ["429"] * 20, answers
    head = host.check_output(
        f"curl -s -i --cacert {CA_ON_VM} --resolve {NAME}:443:{own_address} "
        f"--interface {own_address} https://{NAME}/predict"
    ).lower()
    assert head.startswith("http/1.1 429") or head.startswith("http/2 429"), head
    assert "retry-after: 10" in head
    assert '{"error": "too many requests"}' in head
    # Another client address is counted apart.
    assert codes(host, "127.0.0.1", 5) == ["200"] * 5
    # A client's own X-Forwarded-For is not believed at the edge.
    assert codes(host, own_address, 3, "X-Forwarded-For: 203.0.113.7") == ["429"] * 3
