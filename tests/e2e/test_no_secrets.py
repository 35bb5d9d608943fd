"""Destroy, status and --check never need the secrets: an environment whose registry
password comes from a vault that is not there can still be planned, inspected and torn down
(only the tasks that use a secret evaluate it). `validate` names the variable defined
nowhere, before a run would fail on it."""

import pytest

from tests.environments import cli_json, make_environment, nothing_labelled

ENV = "nosecret"


@pytest.fixture
def environment(tmp_path):
    return make_environment(
        tmp_path,
        ENV,
        {
            "load_balancer": {"publish_port": 18483},
            "model": {
                "registry": {"username": "mlops", "password": "{{ vault_registry_password }}"}
            },
        },
    )


def test_check_status_and_destroy_work_without_the_vault(platform, environment):
    code, answer = cli_json("validate", str(environment))
    assert code == 2, answer
    [problem] = answer["problems"]
    assert "mlops_vm.model.registry.password: refers to 'vault_registry_password'" in problem
    code, plan = cli_json("provision", str(environment), "--check")
    assert code == 0, plan
    assert "create instance mlops-vm-nosecret-model-1" in "\n".join(plan["planned"])
    code, status = cli_json("status", str(environment))
    assert code == 0, status
    assert status["instances"] == []
    code, destroyed = cli_json("destroy", str(environment), "--yes")
    assert code == 0, destroyed
    assert nothing_labelled(ENV)


def test_a_run_that_needs_the_secret_names_it(platform, environment):
    # Not the registry password's value: the variable that is missing.
    code, summary = cli_json("provision", str(environment))
    try:
        assert code == 1, summary
        assert "vault_registry_password" in " ".join(f["message"] for f in summary["failures"])
    finally:
        cli_json("destroy", str(environment), "--yes")
