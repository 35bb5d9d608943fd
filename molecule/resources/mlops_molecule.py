"""Helpers shared by the scenarios' Testinfra tests.

The tests run on the controller inside `molecule verify`, whose environment
carries the scenario's inventory (MOLECULE_INVENTORY_FILE) and Ansible
configuration (ANSIBLE_CONFIG, with the project's roles path), so a test can
run a playbook against the scenario's VMs exactly as Molecule does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

RESOURCES = Path(__file__).resolve().parent
APPLY_ROLE_PLAYBOOK = RESOURCES / "apply_role.yml"


def run_playbook(
    playbook: Path,
    extra_vars: dict | None = None,
    limit: str | None = None,
    timeout_s: int = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ansible-playbook against the scenario's inventory; output is in .stdout."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra_vars or {}, handle)
        vars_file = handle.name
    command = ["ansible-playbook", "-i", inventory, "-e", f"@{vars_file}", str(playbook)]
    if limit:
        command += ["--limit", limit]
    try:
        return subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    finally:
        os.unlink(vars_file)


def apply_role(
    role: str, variables: dict, limit: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Apply one role with the given variables through apply_role.yml."""
    return run_playbook(APPLY_ROLE_PLAYBOOK, {"role_under_test": role, **variables}, limit=limit)


def assert_refused(result: subprocess.CompletedProcess[str], *names: str) -> None:
    """The run failed, and its output names every one of `names`."""
    assert result.returncode != 0, f"the playbook was expected to fail:\n{result.stdout}"
    for name in names:
        assert name in result.stdout, f"{name!r} not named in the failure:\n{result.stdout}"
    # The refusal came before any change: no host reports a change.
    assert "PLAY RECAP" in result.stdout, result.stdout
    assert not re.search(r"changed=[1-9]", result.stdout), result.stdout


def copy_generated_ca(host, destination: str) -> str:
    """The CA the role generated on the controller (in the scenario's ephemeral directory),
    copied into the VM at DESTINATION for curl; its controller path."""
    ca = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "nginx-ca", "ca.crt")
    host.ansible("copy", f"src={ca} dest={destination} mode=0644", check=False)
    return ca


NGINX_TIME_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def nginx_time_s(text: str) -> float:
    """Seconds of an Nginx time value ("5s", "500ms", "1m"; a bare number is seconds)."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h)?", text)
    if not match:
        raise ValueError(f"not an Nginx time: {text!r}")
    return int(match[1]) * NGINX_TIME_UNITS_S[match[2] or "s"]


@dataclass
class NginxLimits:
    """The per-client rate limit and the passive health check window of an nginx.conf, and
    the waits they make inherent: no state of the server tells a test when they are over."""

    rate_per_s: float
    burst: int
    fail_timeout_s: float
    last_request: float = 0.0

    @classmethod
    def of(cls, config: str) -> NginxLimits:
        rate = re.search(r"limit_req_zone .* rate=(\d+)r/(s|m);", config)
        burst = re.search(r"limit_req zone=\S+ burst=(\d+)", config)
        fail_timeout = re.search(r"server \S+ .*fail_timeout=(\w+);", config)
        if not (rate and burst and fail_timeout):
            raise ValueError(f"no rate limit or fail_timeout in the configuration:\n{config}")
        per_s = int(rate[1]) / (1 if rate[2] == "s" else 60)
        return cls(per_s, int(burst[1]), nginx_time_s(fail_timeout[1]))

    def drain(self) -> None:
        """Wait until a client may send BURST + 1 requests at once again, however full its
        bucket was: it holds at most BURST requests and loses one every 1/RATE s, and the
        first request of the next series passes free only one interval after it is empty
        (Nginx's limit_req). A few milliseconds more for Nginx's cached clock."""
        time.sleep((self.burst + 1) / self.rate_per_s + 0.05)

    def pace(self) -> None:
        """Wait until 1/RATE s after the previous paced request: a client that never sends
        faster than the rate never fills its bucket."""
        wait = self.last_request + 1 / self.rate_per_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last_request = time.monotonic()

    def forget_failures(self) -> None:
        """Wait until Nginx takes a server it marked failed back into the pool, which it
        shows only to the next request: fail_timeout after the last failure on Nginx's
        whole-second clock (a server failed at 100.0 s is skipped while now - 100 <= 5, so
        up to fail_timeout + 1 s)."""
        time.sleep(self.fail_timeout_s + 1)


def wait_until(predicate: Callable[[], T], timeout_s: float, what: str, poll_s: float = 0.2) -> T:
    """PREDICATE()'s first true value, polled every POLL_S; fails naming WHAT past TIMEOUT_S."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s}s")
        time.sleep(poll_s)
