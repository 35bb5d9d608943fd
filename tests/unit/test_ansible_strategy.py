"""The CLI's playbook runs use Mitogen where the provider records every host key before the
first connection (local), Ansible's linear strategy elsewhere; MLOPS_VM_MITOGEN forces either,
and a strategy the caller chose is kept."""

from pathlib import Path

import pytest

from mlops_vm.runner import PlaybookRun


def run_environment(monkeypatch, tmp_path, provider: str, **environ: str) -> dict[str, str]:
    for key in ("ANSIBLE_STRATEGY", "MLOPS_VM_MITOGEN", "ANSIBLE_HOST_KEY_CHECKING"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    run = PlaybookRun(
        env="dev", inventory_dir=tmp_path, playbook="playbooks/provision.yml", provider=provider
    )
    return run.environment()


def test_local_environments_run_under_mitogen(monkeypatch, tmp_path):
    env = run_environment(monkeypatch, tmp_path, "local")
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_linear.py").is_file()


@pytest.mark.parametrize("provider", ["static", "aws", "gcp", "azure"])
def test_hosts_first_met_over_ssh_keep_the_linear_strategy(monkeypatch, tmp_path, provider):
    env = run_environment(monkeypatch, tmp_path, provider)
    assert "ANSIBLE_STRATEGY" not in env
    assert "ANSIBLE_STRATEGY_PLUGINS" not in env


def test_the_choice_can_be_forced_either_way(monkeypatch, tmp_path):
    forced_on = run_environment(monkeypatch, tmp_path, "aws", MLOPS_VM_MITOGEN="1")
    forced_off = run_environment(monkeypatch, tmp_path, "local", MLOPS_VM_MITOGEN="0")
    assert forced_on["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert "ANSIBLE_STRATEGY" not in forced_off


def test_a_strategy_chosen_by_the_caller_is_kept(monkeypatch, tmp_path):
    env = run_environment(monkeypatch, tmp_path, "local", ANSIBLE_STRATEGY="linear")
    assert env["ANSIBLE_STRATEGY"] == "linear"
    assert "ANSIBLE_STRATEGY_PLUGINS" not in env


def test_host_keys_are_checked_although_ansible_runner_turns_it_off(monkeypatch, tmp_path):
    assert run_environment(monkeypatch, tmp_path, "static")["ANSIBLE_HOST_KEY_CHECKING"] == "True"
