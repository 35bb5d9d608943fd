"""`mlops-vm` on the cloud_run target: the CLI, the playbooks and the mlops_vm_service
module exactly as against Google Cloud, with provider.endpoint_url aimed at the Cloud Run
fake (a contract: run v2 / artifactregistry v1 / secretmanager v1 / logging v2 held to
their discovery documents) and Application Default Credentials from an authorized_user
file whose token endpoint is the fake's. The image copy is real (local TLS registry on
both ends)."""

import json
import urllib.request
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mlops_vm import paths
from mlops_vm.localcloud import registry as platform_registry
from tests.e2e.test_ansible_playbook import ansible_playbook, recap
from tests.environments import cli, cli_json, make_environment
from tests.fakes.gcp.run_server import FakeCloudRun
from tests.fakes.gcp.testing import FAST, local_only_environment
from tests.services.cloud_run_fixtures import REGION, SOURCE

EXAMPLE = paths.PROJECT_DIR / "inventories" / "cloud-run-example" / "group_vars" / "all"
PROJECT = "mlops-vm-cli"


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    adc = tmp_path_factory.mktemp("adc") / "adc.json"
    with local_only_environment(), FakeCloudRun() as server, pytest.MonkeyPatch.context() as mp:
        # A service-account key of its own: google-auth signs a JWT with it and trades it
        # for an access token at token_uri, the fake's (authorized_user files cannot move it).
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        adc.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": PROJECT,
                    "private_key_id": "test",
                    "private_key": pem,
                    "client_email": f"deployer@{PROJECT}.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": server.endpoint_url + "token",
                }
            )
        )
        mp.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
        server.add_secret(PROJECT, "iris-api-token", "1")
        yield server


def cloud_run_env(root, name: str, fake: FakeCloudRun, **service) -> str:
    credentials = platform_registry.ensure_credentials()
    overrides = {
        "provider": {
            "endpoint_url": fake.endpoint_url,
            "options": {"project": PROJECT, **FAST},
        },
        "model": {
            "image": f"{SOURCE}:1.0",
            "registry": {"username": credentials.username, "password": credentials.password},
        },
        "service": {
            "port": 9090,
            "cloud_run": {
                "registry_host": platform_registry.HOST_ADDRESS,
                "traffic_steps": [100],
            },
            **service,
        },
    }
    return str(make_environment(root, name, overrides, like=EXAMPLE / "mlops_vm.yml"))


@pytest.mark.parametrize(
    ("case", "service", "expected"),
    [
        ("gpu", {"gpu": 1, "cpu": 4, "memory_mb": 16384}, "no nvidia-l4 GPUs in europe-west9"),
        ("concurrency", {"concurrency": 4000}, "service.concurrency"),
        ("instances", {"min_instances": 5, "max_instances": 2}, "min_instances"),
        ("secret", {"secrets": {"API_TOKEN": "no-such-secret:1"}}, "no-such-secret"),
    ],
)
def test_bad_input_exits_2_before_anything_exists(tmp_path, fake, case, service, expected):
    """Contract: a GPU where the region has none, concurrency or instances out of range, a
    secret missing from Secret Manager: exit 2 naming the problem; nothing exists."""
    directory = cloud_run_env(tmp_path, f"crbad{case[:4]}", fake, **service)
    if case == "gpu":
        text = (tmp_path / f"crbad{case[:4]}" / "group_vars/all/mlops_vm.yml").read_text()
        (tmp_path / f"crbad{case[:4]}" / "group_vars/all/mlops_vm.yml").write_text(
            text.replace(REGION, "europe-west9")
        )
    proc = cli("provision", directory)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in " ".join((proc.stdout + proc.stderr).split())
    assert fake.everything()["services"] == []
    assert fake.everything()["repositories"] == []


@pytest.mark.slow
def test_provision_status_deploy_rollback_destroy(tmp_path, fake):
    """Contract (fake control plane) + real image copy: the commands through the CLI,
    a release that never gets ready among them."""
    env = f"cr{uuid.uuid4().hex[:6]}"
    directory = cloud_run_env(tmp_path, env, fake)

    code, plan = cli_json("provision", directory, "--check")
    assert code == 0, plan
    assert any("create cloud_run_service" in line for line in plan["planned"])
    assert fake.everything()["services"] == []

    code, done = cli_json("provision", directory)
    assert code == 0, done
    assert done["endpoint"].startswith(fake.endpoint_url + "apps/")
    with urllib.request.urlopen(done["endpoint"] + "/readyz") as answer:  # allUsers invoke
        assert answer.status == 200
    service = fake.service(PROJECT, REGION, f"mlops-vm-{env}")
    env_vars = {e["name"]: e for e in service["template"]["containers"][0]["env"]}
    assert "valueSource" in env_vars["API_TOKEN"] and "value" not in env_vars["API_TOKEN"]

    code, state = cli_json("status", directory)
    assert code == 0 and state["ok"], state
    first = state["service"]["active"]["id"]

    code, deployed = cli_json("deploy", directory, "--image", f"{SOURCE}:1.1")
    assert code == 0, deployed
    code, state = cli_json("status", directory)
    assert state["service"]["active"]["image"] == f"{SOURCE}:1.1"
    assert state["service"]["previous"]["id"] == first

    # A revision that never becomes ready: exit 1 with Cloud Run's reason, traffic stays.
    serving = state["service"]["traffic"]
    copy = f"{platform_registry.HOST_ADDRESS}/{PROJECT}/mlops-vm-{env}/model-service:1.1-broken"
    fake.fail_image(copy, "The user-provided container failed the configured startup probe.")
    code, failed = cli_json("deploy", directory, "--image", f"{SOURCE}:1.1-broken")
    assert code == 1, failed
    assert "failed the configured startup probe" in json.dumps(failed)
    code, state = cli_json("status", directory)
    assert code == 0 and state["service"]["traffic"] == serving
    assert state["service"]["resources"]["tags"] == {}

    code, rolled = cli_json("rollback", directory)
    assert code == 0, rolled
    code, state = cli_json("status", directory)
    assert state["service"]["active"]["id"] == first

    fake.add_log(f"mlops-vm-{env}", "model loaded", "2026-01-01T00:00:01Z")
    logs = cli("logs", directory, "--tail", "5")
    assert logs.returncode == 0 and "model loaded" in logs.stdout

    # The same playbooks without the CLI: a provision that keeps the rollback (no change),
    # then destroy; the CLI's destroy after it has nothing left to do.
    code, output = ansible_playbook(Path(directory), "provision.yml")
    assert code == 0 and recap(output)["localhost"] == (0, 0, 0), output
    code, output = ansible_playbook(Path(directory), "destroy.yml")
    assert code == 0 and recap(output)["localhost"][0] == 1, output
    assert fake.everything()["services"] == []
    assert cli("destroy", directory, "--yes").returncode == 0
