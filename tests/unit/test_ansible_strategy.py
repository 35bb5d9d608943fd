"""The CLI's playbook runs use Ansible's linear strategy, and Mitogen's when asked for
(MLOPS_VM_MITOGEN=1) unless the caller chose a strategy."""

from pathlib import Path

from mlops_vm.runner import PlaybookRun


def run_environment(monkeypatch, tmp_path, **environ: str) -> dict[str, str]:
    monkeypatch.delenv("ANSIBLE_STRATEGY", raising=False)
    monkeypatch.delenv("MLOPS_VM_MITOGEN", raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    run = PlaybookRun(env="dev", inventory_dir=tmp_path, playbook="playbooks/provision.yml")
    return run.environment()


def test_runs_keep_ansibles_own_strategy_by_default(monkeypatch, tmp_path):
    env = run_environment(monkeypatch, tmp_path)
    assert "ANSIBLE_STRATEGY" not in env
    assert "ANSIBLE_STRATEGY_PLUGINS" not in env


def test_mitogen_linear_on_request_from_the_installed_mitogen(monkeypatch, tmp_path):
    env = run_environment(monkeypatch, tmp_path, MLOPS_VM_MITOGEN="1")
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_linear.py").is_file()


def test_a_strategy_chosen_by_the_caller_is_kept(monkeypatch, tmp_path):
    env = run_environment(monkeypatch, tmp_path, ANSIBLE_STRATEGY="linear", MLOPS_VM_MITOGEN="1")
    assert env["ANSIBLE_STRATEGY"] == "linear"
    assert "ANSIBLE_STRATEGY_PLUGINS" not in env
