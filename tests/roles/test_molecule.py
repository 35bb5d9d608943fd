"""The roles' Molecule scenarios, run whole (create, converge, idempotence, verify, destroy),
the actions that apply the roles under Mitogen's strategy (MLOPS_VM_MITOGEN=0: Ansible's).

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
import time
from pathlib import Path

import pytest
import yaml

from mlops_vm.ansible_strategy import OPT_IN, mitogen_environment

PROJECT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SHARED_CONFIG = PROJECT / ".config" / "molecule" / "config.yml"
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


# Molecule's own docker playbooks (create, destroy) wait on async tasks that Mitogen's
# strategy never sees finish; the actions that apply the roles run under it (a converge of
# nginx_proxy in 11 s instead of 21, the whole scenario in 196 s instead of 230).
MITOGEN_ACTIONS = {"converge", "idempotence", "side_effect", "verify"}


def molecule_test_sequence(scenario: str) -> list[str]:
    """The actions of `molecule test -s SCENARIO`: its test_sequence, else the shared one."""
    for config in (PROJECT / "molecule" / scenario / "molecule.yml", SHARED_CONFIG):
        sequence = (yaml.safe_load(config.read_text()).get("scenario") or {}).get("test_sequence")
        if sequence:
            return sequence
    raise AssertionError(f"no test_sequence in {SHARED_CONFIG}")


def skipped_by_molecule_test(scenario: str, action: str) -> bool:
    """`molecule test` skips a side effect the scenario has no playbook for (alone, it fails)."""
    config = yaml.safe_load((PROJECT / "molecule" / scenario / "molecule.yml").read_text())
    playbooks = (config.get("provisioner") or {}).get("playbooks") or {}
    return action == "side_effect" and not (
        "side_effect" in playbooks or (PROJECT / "molecule" / scenario / "side_effect.yml").exists()
    )


def run_molecule(scenario: str, log_file: Path) -> int:
    """`molecule test -s SCENARIO`, one action at a time: the first failing action ends it,
    and the VMs are destroyed whatever happened, as `molecule test` does."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # One line per output line, no colour codes: a secret cannot hide behind a wrap.
    env.update({"NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1", "COLUMNS": "100000", "PY_COLORS": "0"})
    mitogen = os.environ.get(OPT_IN) != "0" and not os.environ.get("ANSIBLE_STRATEGY")
    deadline = time.monotonic() + TIMEOUT_S
    returncode = 0
    with log_file.open("w") as log:
        for action in molecule_test_sequence(scenario):
            if (returncode and action != "destroy") or skipped_by_molecule_test(scenario, action):
                continue
            action_env = (
                {**env, **mitogen_environment()} if (mitogen and action in MITOGEN_ACTIONS) else env
            )
            completed = subprocess.run(
                # The sequence names actions as molecule.yml does (side_effect), the CLI
                # as commands (side-effect).
                [str(VENV_BIN / "molecule"), action.replace("_", "-"), "-s", scenario],
                cwd=PROJECT,
                env=action_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=max(deadline - time.monotonic(), 60),
                check=False,
            )
            returncode = returncode or completed.returncode
    return returncode


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
