"""The CLI's playbook runs use Mitogen's linear strategy unless the caller chose another."""

from pathlib import Path

from mlops_vm.runner import PlaybookRun


def run_environment(monkeypatch, tmp_path, **environ: str) -> dict[str, str]:
    monkeypatch.delenv("ANSIBLE_STRATEGY", raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    run = PlaybookRun(env="dev", inventory_dir=tmp_path, playbook="playbooks/provision.yml")
    return run.environment()


def test_runs_use_mitogen_linear_from_the_installed_mitogen(monkeypatch, tmp_path):
    env = run_environment(monkeypatch, tmp_path)
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_linear.py").is_file()


def test_a_strategy_chosen_by_the_caller_is_kept(monkeypatch, tmp_path):
    env = run_environment(monkeypatch, tmp_path, ANSIBLE_STRATEGY="linear")
    assert env["ANSIBLE_STRATEGY"] == "linear"
    assert "ANSIBLE_STRATEGY_PLUGINS" not in env
