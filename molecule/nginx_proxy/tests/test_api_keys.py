"""API keys on nginx_proxy: applied, rotated under load and removed again, seen from inside
the VM with curl. The role is applied through apply_role.yml with the keys; the module's
fixture puts the scenario's settings (no keys) back for the other tests."""

from __future__ import annotations

import json
import re
import secrets

import pytest
from conftest import CA_ON_VM
from mlops_molecule import apply_role, assert_refused

CURL = f"curl -s --cacert {CA_ON_VM} -m 10"
OLD_KEY = "old-" + secrets.token_hex(16)
NEW_KEY = "new." + secrets.token_urlsafe(24)
KEYS_FILE = "/etc/nginx/api-keys.conf"


@pytest.fixture(scope="module")
def status(host, limits):
    """The HTTP status of a request with HEADERS to PATH, never faster than the scenario's
    rate limit."""

    def request(*headers: str, path: str = "/predict") -> str:
        options = " ".join(f"-H '{header}'" for header in headers)
        limits.pace()
        return host.check_output(
            f"{CURL} -o /dev/null -w '%{{http_code}}' {options} https://vm1{path}"
        )

    return request


@pytest.fixture(scope="module")
def applied(host, limits):
    """Apply the role with the given keys; its output. The rate limit's bucket is empty
    again afterwards."""

    def apply(keys: list[str]) -> str:
        result = apply_role("nginx_proxy", {"nginx_proxy_api_keys": keys})
        assert result.returncode == 0, result.stdout
        limits.drain()
        return result.stdout

    return apply


@pytest.fixture(scope="module")
def with_old_key(applied, status):
    """The role applied with one key, and its Ansible output; the keys removed afterwards."""
    output = applied([OLD_KEY])
    yield output
    applied([])
    assert status() == "200"


def test_without_a_key_every_request_but_the_health_check_gets_401(host, with_old_key, status):
    raw = host.check_output(f"{CURL} -i -d '{{}}' https://vm1/predict")
    head, _, body = raw.partition("\r\n\r\n")
    head = head.lower()
    assert head.startswith("http/1.1 401"), raw
    assert 'www-authenticate: bearer realm="mlops-vm"' in head
    assert "API key is required" in json.loads(body)["error"]
    # The 401 keeps the security headers, each once.
    assert head.count("strict-transport-security:") == 1
    assert head.count("x-frame-options:") == 1
    assert status(path="/") == "401"
    assert status(path="/healthz") == "200"


def test_a_valid_key_in_either_header_is_accepted_and_nothing_else(host, with_old_key, status):
    assert status(f"Authorization: Bearer {OLD_KEY}") == "200"
    assert status(f"Authorization: bearer {OLD_KEY}") == "200"  # the scheme is case-blind
    assert status(f"X-API-Key: {OLD_KEY}") == "200"
    for wrong in (OLD_KEY[:-1], OLD_KEY + "x", OLD_KEY.upper(), f"x{OLD_KEY}", NEW_KEY):
        assert status(f"Authorization: Bearer {wrong}") == "401", wrong
        assert status(f"X-API-Key: {wrong}") == "401", wrong
    assert status(f"Authorization: Basic {OLD_KEY}") == "401"


def test_keys_are_root_only_and_never_logged(host, with_old_key, status):
    keys_file = host.file(KEYS_FILE)
    assert (keys_file.user, keys_file.group, keys_file.mode) == ("root", "root", 0o600)
    assert re.escape(OLD_KEY) in host.check_output(f"cat {KEYS_FILE}")  # as a regex
    status(f"Authorization: Bearer {OLD_KEY}")
    for path in ("/etc/nginx/nginx.conf", "/var/log/nginx/access.log", "/var/log/nginx/error.log"):
        assert host.run(f"grep -c -F -- '{OLD_KEY}' {path}").stdout.strip() == "0", path
    assert OLD_KEY not in with_old_key  # the Ansible run's output


def test_rotation_under_load_drops_no_request(host, with_old_key, status, applied):
    """Add the new key, move the client over, remove the old key: a client sending with the
    key it holds at each step never sees a failure while Nginx reloads."""
    script = (
        "rm -f /root/codes /root/loop.done\n"
        "until [ -e /root/loop.stop ]; do\n"
        f"  {CURL} -o /dev/null -w '%{{http_code}}\\n' "
        '-H "Authorization: Bearer $(cat /root/key)" https://vm1/predict >> /root/codes\n'
        "  sleep 0.1\n"
        "done\n"
        "touch /root/loop.done\n"
    )
    host.ansible("copy", f"dest=/root/loop.sh content={json.dumps(script)} mode=0700", check=False)
    host.check_output(f"rm -f /root/loop.stop; echo -n {OLD_KEY} > /root/key")
    host.check_output("nohup /root/loop.sh >/dev/null 2>&1 &")
    applied([OLD_KEY, NEW_KEY])
    host.check_output(f"echo -n {NEW_KEY} > /root/key")
    # The client has sent with the new key: a request that may have read the old key ended
    # after the switch, and one more ended after it.
    sent = int(host.check_output("wc -l < /root/codes"))
    host.check_output(
        f"timeout 30 sh -c 'until [ $(wc -l < /root/codes) -ge {sent + 2} ]; do sleep 0.1; done'"
    )
    applied([NEW_KEY])
    host.check_output("touch /root/loop.stop")
    host.check_output("timeout 30 sh -c 'until [ -e /root/loop.done ]; do sleep 0.2; done'")
    codes = host.check_output("cat /root/codes").split()
    assert len(codes) > 50  # requests all through both reloads
    assert codes.count("200") == len(codes), {code: codes.count(code) for code in set(codes)}
    assert status(f"Authorization: Bearer {OLD_KEY}") == "401"
    assert status(f"Authorization: Bearer {NEW_KEY}") == "200"


def test_a_malformed_key_is_refused_by_position_without_showing_it(host, with_old_key, status):
    before = host.file(KEYS_FILE).sha256sum
    result = apply_role("nginx_proxy", {"nginx_proxy_api_keys": [NEW_KEY, "short key!"]})
    assert_refused(result, "nginx_proxy_api_keys[1]")
    assert "short key!" not in result.stdout
    assert host.file(KEYS_FILE).sha256sum == before
