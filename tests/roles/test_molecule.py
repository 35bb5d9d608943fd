"""The roles' Molecule scenarios, run whole (create, converge, idempotence, verify, destroy).

Each scenario's Testinfra tests also apply its role with bad variables against the running VM
(wrong type, missing required value, unknown choice, a TCP docker socket, an invalid Nginx or
HAProxy directive) and check that the run fails naming the variable while the service keeps
running; here we check those tests ran and passed, and that the registry password, which the
model_service and stack scenarios hand to the role, appears nowhere in Molecule's output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TIMEOUT_S = 20 * 60

# Bad-variable tests of each scenario that must have run and passed.
REFUSAL_TESTS = {
    "docker_engine": [
        "test_tcp_socket_is_refused_before_any_change",
        "test_wrong_type_is_refused_before_any_change",
        "test_unknown_source_is_refused_before_any_change",
        "test_missing_registry_ca_key_is_refused",
    ],
    "model_service": [
        "test_replica_that_never_becomes_ready_fails_the_role_with_its_logs",
        "test_missing_image_is_refused_before_any_change",
        "test_wrong_type_is_refused_before_any_change",
        "test_unknown_restart_policy_is_refused_before_any_change",
    ],
    "nginx_proxy": [
        "test_bad_configuration_never_replaces_the_working_one",
        "test_unknown_tls_mode_is_refused_before_any_change",
        "test_wrong_type_is_refused_before_any_change",
        "test_provided_mode_without_certificate_is_refused_before_any_change",
        "test_provided_certificate_with_the_wrong_key_is_refused",
        "test_a_malformed_key_is_refused_by_position_without_showing_it",
        "test_rotation_under_load_drops_no_request",
    ],
    "haproxy_lb": [
        "test_bad_configuration_never_replaces_the_working_one",
        "test_unknown_tls_mode_is_refused_before_any_change",
        "test_wrong_type_is_refused_before_any_change",
        "test_server_without_address_is_refused_before_any_change",
        "test_no_servers_is_refused_before_any_change",
        "test_a_servers_ca_that_is_not_a_certificate_is_refused_before_any_change",
        "test_servers_are_verified_against_the_given_ca_only",
        "test_a_client_over_the_rate_limit_gets_429_and_other_clients_do_not",
    ],
    "stack": [],
}


def run_molecule(scenario: str, log_file: Path) -> int:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # One line per output line, no colour codes: a secret cannot hide behind a wrap.
    env.update({"NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1", "COLUMNS": "100000", "PY_COLORS": "0"})
    with log_file.open("w") as log:
        completed = subprocess.run(
            [str(VENV_BIN / "molecule"), "test", "-s", scenario],
            cwd=PROJECT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=TIMEOUT_S,
            check=False,
        )
    return completed.returncode


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(REFUSAL_TESTS))
def test_molecule_scenario(scenario, platform, tmp_path):
    log_file = tmp_path / f"molecule-{scenario}.log"
    returncode = run_molecule(scenario, log_file)
    output = log_file.read_text(errors="replace")
    # A bare boolean: pytest must not print the password if it fails.
    leaked = platform.password in output
    assert not leaked, f"the registry password leaked into {log_file}"
    assert returncode == 0, (
        f"molecule test -s {scenario} failed; output in {log_file}:\n{output[-6000:]}"
    )

    for test_name in REFUSAL_TESTS[scenario]:
        assert re.search(rf"{test_name}\[[^\]]*\] PASSED", output), (
            f"{test_name} did not pass ({log_file})"
        )
    assert re.search(r"=+ \d+ passed", output), f"no Testinfra results in {log_file}"
