"""`mlops-vm` with target lambda: the CLI, the playbook and the mlops_vm_service module run
exactly as against AWS; the control plane is moto (a contract check: provider.endpoint_url),
the image really built and pushed to the local TLS registry standing in for ECR, and each
release's readiness invoke really answered by the derived image under the Lambda Runtime
Interface Emulator (service.lambda.invoke_endpoint_url).
"""

import boto3
import pytest
import yaml

from mlops_vm.localcloud import registry
from tests.environments import LAMBDA_ENV, LOCAL_ENV, cli, cli_json, make_environment
from tests.providers.test_aws import FAST, REGION, aws_environment, moto_endpoint
from tests.services.lambda_fixtures import SOURCE, emulated, emulators
from tests.services.test_lambda import lambda_spec

__all__ = ["aws_environment", "emulators", "moto_endpoint"]  # shared fixtures

pytestmark = pytest.mark.slow
LOCAL_CREDENTIALS = "(lookup('ansible.builtin.file', mlops_vm_registry_credentials) | from_json)"


def lambda_env(root, name: str, endpoint: str, secret_arn: str, **service):
    settings = {
        "provider": {"name": "aws", "region": REGION, "endpoint_url": endpoint, "options": FAST},
        "model": {
            "image": f"{SOURCE}:1.0",
            "registry": {
                "username": "{{ " + LOCAL_CREDENTIALS + ".username }}",
                "password": "{{ " + LOCAL_CREDENTIALS + ".password }}",
            },
        },
        "service": {
            "min_instances": 0,  # moto has no provisioned concurrency
            "secrets": {"API_TOKEN": secret_arn},
            **service,
            "lambda": {
                "registry_endpoint": registry.HOST_ADDRESS,
                **service.pop("lambda", {}),
            },
        },
        "release": {"healthy_timeout_s": 60},
    }
    directory = make_environment(root, name, settings, like=LAMBDA_ENV)
    # Where the local registry's credentials are, as inventories/local says.
    local = yaml.safe_load(LOCAL_ENV.read_text())
    extra = {"mlops_vm_registry_credentials": local["mlops_vm_registry_credentials"]}
    (directory / "group_vars" / "all" / "registry.yml").write_text("---\n" + yaml.safe_dump(extra))
    return directory


def functions(endpoint: str) -> list[dict]:
    client = boto3.client("lambda", region_name=REGION, endpoint_url=endpoint)
    return client.list_functions()["Functions"]


def make_secret(endpoint: str, name: str) -> str:
    client = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
    return client.create_secret(Name=name, SecretString="tok-cli-never-logged")["ARN"]


@pytest.mark.parametrize(
    ("case", "service", "expected"),
    [
        ("memory", {"memory_mb": 20480}, "outside Lambda's 128..10240 MB"),
        ("timeout", {"lambda": {"timeout_s": 901}}, "mlops_vm.service.lambda.timeout_s"),
        ("secret", {"secrets": {"API_TOKEN": "missing"}}, "does not exist"),
    ],
)
def test_input_lambda_would_refuse_exits_2_before_anything_exists(
    tmp_path, moto_endpoint, case, service, expected
):
    secret = make_secret(moto_endpoint, f"cli-{case}")
    if case == "secret":
        service = {"secrets": {"API_TOKEN": secret.replace("cli-secret", "cli-gone")}}
    directory = lambda_env(tmp_path, f"lambad{case}", moto_endpoint, secret, **service)
    proc = cli("provision", str(directory))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert expected in output
    assert functions(moto_endpoint) == []


def test_provision_status_logs_destroy(tmp_path, moto_endpoint, emulators):
    first = emulated(emulators, "1.0", lambda_spec("lamcli", "1.0"))
    secret = make_secret(moto_endpoint, "lamcli-token")
    directory = lambda_env(
        tmp_path, "lamcli", moto_endpoint, secret, **{"lambda": {"invoke_endpoint_url": first.url}}
    )
    assert cli("validate", str(directory)).returncode == 0

    code, plan = cli_json("provision", str(directory), "--check")
    assert code == 0, plan
    planned = "\n".join(plan["planned"])
    assert "create lambda_function mlops-vm-lamcli" in planned
    assert "create function_url mlops-vm-lamcli:live (NONE)" in planned
    assert functions(moto_endpoint) == []

    code, made = cli_json("provision", str(directory))
    assert code == 0, made.get("failures")
    assert any("lambda_alias" in change for change in made["changes"])
    assert made["service"]["url"].startswith("https://")
    code, again = cli_json("provision", str(directory))
    assert code == 0 and again["changes"] == [], again

    code, status = cli_json("status", str(directory))
    assert code == 0, status
    assert status["service"]["active"]["image"] == f"{SOURCE}:1.0"
    assert status["service"]["traffic"] == {"1": 100}
    assert "tok-cli-never-logged" not in str(made) + str(status)
    assert cli("logs", str(directory), "--tail", "5").returncode == 0

    for expected in (["delete lambda_function"], []):
        proc = cli("destroy", str(directory), "--yes", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert all(word in proc.stdout for word in expected)
    assert functions(moto_endpoint) == []
