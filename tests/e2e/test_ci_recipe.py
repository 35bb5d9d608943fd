"""The CI/CD recipe (examples/ci/github-actions.yml): actionlint accepts it, it logs in to
each cloud through OIDC with no stored key, and the pull-request job's mlops-vm steps
(validate every environment, provision --check) pass as written with no cloud credentials,
against a local environment."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_vm import paths
from tests.environments import fresh_environment
from tests.offline import CLOUD_VARIABLES

WORKFLOW = paths.PROJECT_DIR / "examples" / "ci" / "github-actions.yml"


def actionlint() -> str:
    """The actionlint of the test extra (pyproject.toml), next to this Python or on PATH."""
    found = shutil.which("actionlint", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    assert found, "actionlint is not installed: pip install -e '.[test]'"
    return found


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_actionlint_accepts_the_workflow_and_bites(tmp_path):
    done = subprocess.run([actionlint(), str(WORKFLOW)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs-on: [", 1))
    assert subprocess.run([actionlint(), str(broken)], capture_output=True).returncode != 0


def test_the_triggers_and_the_keyless_logins():
    flow = workflow()
    triggers = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"pull_request", "push", "workflow_dispatch"}
    assert triggers["push"]["tags"] == ["v*"]
    assert flow["permissions"]["id-token"] == "write"
    jobs = flow["jobs"]
    assert "provision" in str(jobs["check"]) and "--check" in str(jobs["check"])
    assert "mlops-vm deploy" in str(jobs["deploy"]) and "mlops-vm rollback" in str(jobs["rollback"])
    for job in jobs.values():
        uses = {step["uses"].split("@")[0]: step for step in job["steps"] if "uses" in step}
        assert "role-to-assume" in uses["aws-actions/configure-aws-credentials"]["with"]
        assert "workload_identity_provider" in uses["google-github-actions/auth"]["with"]
        assert set(uses["azure/login"]["with"]) == {"client-id", "tenant-id", "subscription-id"}
    text = WORKFLOW.read_text()
    for stored_key in ("aws-secret-access-key", "credentials_json", "client-secret", "creds:"):
        assert stored_key not in text
    # The only secret: the vault's password.
    assert {part.split("}")[0].strip() for part in text.split("secrets.")[1:]} == {
        "ANSIBLE_VAULT_PASSWORD"
    }


def pull_request_commands() -> list[str]:
    """The check job's run scripts that call mlops-vm validate or provision --check."""
    return [
        step["run"]
        for step in workflow()["jobs"]["check"]["steps"]
        if "mlops-vm validate" in step.get("run", "") or "--check" in step.get("run", "")
    ]


@pytest.mark.slow
def test_the_pull_request_steps_pass_with_no_credentials(platform, tmp_path):
    scripts = pull_request_commands()
    assert len(scripts) == 2
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLOUD_VARIABLES)}
    env.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)  # no secret, as for a fork's pull request
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    # A checkout of its own: the steps' files (plan.json, ...) land there.
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "inventories").symlink_to(paths.PROJECT_DIR / "inventories")
    overrides = {"load_balancer": {"publish_port": 18493}}
    with fresh_environment(tmp_path, "ci-recipe", overrides) as directory:
        env["ENVIRONMENT"] = str(directory)
        for script in scripts:
            done = subprocess.run(
                ["bash", "-eo", "pipefail", "-c", script],
                cwd=checkout,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
        assert "create instance mlops-vm-ci-recipe-model-1" in done.stdout
