"""`mlops-vm` with `target: ecs` on moto: the same commands as for VMs, through the CLI,
ansible-runner, playbooks/service.yml and the mlops_vm_service module, and the same
playbooks without the CLI. ECS's scheduler is
stood in for by tests/services/fargate.py (the real containers on the local engine)."""

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from mlops_vm.localcloud import registry
from tests.e2e.test_ansible_playbook import ansible_playbook, recap
from tests.environments import ECS_ENV, cli, cli_json, make_environment
from tests.providers.cloud_fixtures import self_signed_certificate
from tests.providers.test_aws import FAST, REGION, aws_environment, moto_endpoint
from tests.services.fargate import FargateStandIn

__all__ = ["aws_environment", "moto_endpoint"]  # fixtures shared with the provider tests

pytestmark = pytest.mark.slow
SOURCE = f"{registry.HOST_ADDRESS}/mlops-vm/model-service"


def ecs_env(root: Path, name: str, endpoint: str, creds, **service) -> Path:
    cert_file, key_file = self_signed_certificate(root, f"{name}.example.com")
    secret = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
    arn = secret.create_secret(Name=f"{name}/token", SecretString="tok-123456789")["ARN"]
    settings = {
        "provider": {"name": "aws", "region": REGION, "endpoint_url": endpoint, "options": FAST},
        "model": {
            "image": f"{SOURCE}:1.0",
            "registry": {"username": creds.username, "password": creds.password},
        },
        "service": {
            "certificate": None,
            "cert_file": cert_file,
            "key_file": key_file,
            "secrets": {"API_TOKEN": arn},
            "ecs": {"health_check_grace_s": 30, "registry_endpoint": registry.HOST_ADDRESS},
            **service,
        },
        "release": {"healthy_timeout_s": 150},
    }
    return make_environment(root, name, settings, like=ECS_ENV)


def clusters(endpoint: str, env: str) -> list:
    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=endpoint)
    found = ecs.describe_clusters(clusters=[f"mlops-vm-{env}"])["clusters"]
    return [c for c in found if c["status"] == "ACTIVE"]


@pytest.fixture
def scheduler(moto_endpoint: str, platform) -> Iterator[FargateStandIn]:
    auth = {"username": platform.username, "password": platform.password}
    with FargateStandIn(moto_endpoint, REGION, registry.HOST_ADDRESS, auth) as stand_in:
        yield stand_in


@pytest.mark.parametrize(
    ("case", "service", "expected"),
    [
        ("size", {"cpu": 1.0, "memory_mb": 1024}, "does not go with service.cpu 1"),
        (
            "secret",
            {"secrets": {"DB": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:gone"}},
            "does not exist",
        ),
    ],
)
def test_bad_input_exits_2_before_anything_exists(
    tmp_path, moto_endpoint, platform, case, service, expected
):
    directory = ecs_env(tmp_path, f"ecsbad{case}", moto_endpoint, platform, **service)
    # The Fargate size is seen offline too; a secret only through the API (--cloud).
    for command in (["validate", "--cloud"], ["provision"]):
        proc = cli(*command, str(directory))
        output = proc.stdout + proc.stderr
        assert proc.returncode == 2, output
        assert expected in output and "rejected by the ecs target" in output
        if case == "secret":  # the file and the field
            assert str(directory) in output and "service.secrets." in output, output
    offline = cli("validate", str(directory))
    assert offline.returncode == (2 if case == "size" else 0), offline.stdout + offline.stderr
    assert clusters(moto_endpoint, f"ecsbad{case}") == []


def test_the_commands_drive_an_ecs_service(tmp_path, moto_endpoint, platform, scheduler):
    env = "ecscli"
    directory = ecs_env(tmp_path, env, moto_endpoint, platform)

    code, plan = cli_json("provision", str(directory), "--check")
    assert code == 0, plan
    assert any(line.startswith("create ecs_service") for line in plan["planned"])
    assert clusters(moto_endpoint, env) == []

    code, made = cli_json("provision", str(directory))
    assert code == 0, made
    assert made["endpoint"].startswith("https://") and made["endpoint"].endswith(
        ".elb.amazonaws.com"
    )
    assert made["service"]["healthy"] is True
    run_log = "".join(
        p.read_text(errors="replace") for p in Path(made["run_dir"]).rglob("*") if p.is_file()
    )
    assert platform.password not in run_log  # the registry password is censored

    code, again = cli_json("provision", str(directory))
    assert code == 0 and again["changes"] == [], again

    code, released = cli_json("deploy", str(directory), "--image", f"{SOURCE}:1.1")
    assert code == 0, released
    assert released["release"]["image"] == f"{SOURCE}:1.1"
    code, status = cli_json("status", str(directory))
    assert code == 0, status
    assert status["release"] == f"{SOURCE}:1.1"  # kept: the inventory did not change
    assert status["service"]["active"]["source"] == "deploy"
    assert status["service"]["previous"]["image"] == f"{SOURCE}:1.0"

    code, rolled = cli_json("rollback", str(directory))
    assert code == 0, rolled
    code, status = cli_json("status", str(directory))
    assert status["service"]["active"]["image"] == f"{SOURCE}:1.0"

    logs = cli("logs", str(directory), "--tail", "20")
    assert logs.returncode == 0 and "Application startup complete" in logs.stdout

    code, deleted = cli_json("destroy", str(directory), "--yes")
    assert code == 0, deleted
    assert any(line.startswith("delete ecs_cluster") for line in deleted["changes"])
    assert clusters(moto_endpoint, env) == []
    code, twice = cli_json("destroy", str(directory), "--yes")
    assert code == 0 and twice["changes"] == [], twice
    code, status = cli_json("status", str(directory))
    assert code == 1 and "no service deployed" in json.dumps(status["problems"])


def test_the_playbooks_run_without_the_cli(tmp_path, moto_endpoint, platform, scheduler):
    """`ansible-playbook -i ENV playbooks/provision.yml` (and destroy.yml) on target ecs:
    the VM plays end at once, playbooks/service.yml converges the service."""
    env = "ecsplay"
    directory = ecs_env(tmp_path, env, moto_endpoint, platform)
    code, output = ansible_playbook(directory, "provision.yml")
    assert code == 0, output
    assert recap(output)["localhost"][0] > 0 and len(clusters(moto_endpoint, env)) == 1
    code, output = ansible_playbook(directory, "provision.yml")
    assert code == 0 and recap(output)["localhost"] == (0, 0, 0), output
    code, output = ansible_playbook(directory, "destroy.yml")
    assert code == 0 and recap(output)["localhost"][0] == 1, output
    assert clusters(moto_endpoint, env) == []
