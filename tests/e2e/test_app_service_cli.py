"""The App Service target through the CLI (and so through Ansible and the mlops_vm_service
module, in processes the test does not own).

- validate: contract only. The SKU table, instance range and Key Vault URIs are checked
  offline; then (--cloud) each secret is read with the process's own credential through the fake's
  Key Vault data plane (over TLS): a missing one exits 2 naming the field and the file, one
  it may not read is a permission error.
- the whole life cycle: contract + real. The control plane is the fake ARM served over TLS
  (the project CA), the credential azure-identity's own App Service managed identity path
  (IDENTITY_ENDPOINT, served by the fake); every health check the module makes goes through
  HTTPS_PROXY to a stand-in that terminates TLS for *.azurewebsites.net and asks the slot's
  real container on the local Docker engine.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlops_vm import paths
from mlops_vm.localcloud import pki
from mlops_vm.localcloud.images import BROKEN_MODEL_VERSION, model_tag
from tests.e2e.test_ansible_playbook import ansible_playbook, recap
from tests.environments import cli, cli_json, make_environment
from tests.fakes.azure import SUBSCRIPTION_ID, FakeArm
from tests.fakes.azure.server import MANAGED_IDENTITY_HEADER, MANAGED_IDENTITY_PATH
from tests.services.app_service_host import AppServiceHost, HostsProxy

APP_SERVICE_ENV = (
    paths.PROJECT_DIR
    / "inventories"
    / "app-service-example"
    / "group_vars"
    / "all"
    / "mlops_vm.yml"
)


SECRET_URI = "https://iris-vault.vault.azure.net/secrets/api-token"


@pytest.fixture
def tls_arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArm]:
    """The fake ARM over TLS (the project CA), holding SECRET_URI, and the environment
    variables a CLI process needs to reach it with its own credential chain (azure-identity's
    App Service managed identity path, IDENTITY_ENDPOINT, served by the fake)."""
    tls = pki.ensure_server_cert(tmp_path, "azure", ["127.0.0.1", "*.azurewebsites.net"])
    ca_file = str(pki.ca_pair().cert)
    with FakeArm(tls=(str(tls.cert), str(tls.key))) as arm:
        arm.add_secret(SECRET_URI, "s3cret")
        for name, value in {
            "IDENTITY_ENDPOINT": arm.url + MANAGED_IDENTITY_PATH,
            "IDENTITY_HEADER": MANAGED_IDENTITY_HEADER,
            "SSL_CERT_FILE": ca_file,
            "REQUESTS_CA_BUNDLE": ca_file,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }.items():
            monkeypatch.setenv(name, value)
        for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
            monkeypatch.delenv(name, raising=False)
        yield arm


def validate(
    tmp_path: Path, name: str, overrides: dict, arm: FakeArm | None = None
) -> tuple[int, str, Path]:
    """`mlops-vm validate` of the example with OVERRIDES, aimed at ARM (the fake) if given
    (then `--cloud`: the secrets are read through Key Vault)."""
    if arm is not None:
        provider = {"endpoint_url": arm.url, "options": {"subscription_id": SUBSCRIPTION_ID}}
        overrides = {**overrides, "provider": provider}
    directory = make_environment(tmp_path, name, overrides, like=APP_SERVICE_ENV)
    proc = cli("validate", str(directory), *(["--cloud"] if arm is not None else []))
    return proc.returncode, proc.stdout + proc.stderr, directory


def test_the_example_is_valid(tmp_path: Path, tls_arm: FakeArm) -> None:
    code, output, _ = validate(tmp_path, "appsvc-ok", {}, tls_arm)
    assert code == 0, output
    assert "is valid" in output


def test_a_secret_that_does_not_exist_exits_2_naming_field_and_file(
    tmp_path: Path, tls_arm: FakeArm
) -> None:
    missing = "https://iris-vault.vault.azure.net/secrets/no-such-token"
    code, output, directory = validate(
        tmp_path, "appsvc-nosecret", {"service": {"secrets": {"API_TOKEN": missing}}}, tls_arm
    )
    assert code == 2, output
    flat = " ".join(output.split())
    assert "service.secrets.API_TOKEN: secret no-such-token does not exist" in flat
    assert str(directory / "group_vars" / "all" / "mlops_vm.yml") in flat


def test_a_secret_it_may_not_read_is_a_permission_error(tmp_path: Path, tls_arm: FakeArm) -> None:
    tls_arm.deny_secrets("iris-vault")
    code, output, _ = validate(tmp_path, "appsvc-denied", {}, tls_arm)
    assert code == 1, output
    flat = " ".join(output.split())
    assert "service.secrets.API_TOKEN: not allowed to read secret api-token" in flat
    assert "does not exist" not in flat


@pytest.mark.parametrize(
    ("case", "overrides", "message"),
    [
        ("basic", {"service": {"app_service": {"sku": "B1"}}}, "has no deployment slots"),
        (
            "secret",
            {"service": {"secrets": {"API_TOKEN": "plain-value"}}},
            "is not a Key Vault secret URI",
        ),
    ],
)
def test_what_app_service_refuses_exits_2(tmp_path: Path, case, overrides, message) -> None:
    code, output, _ = validate(tmp_path, f"appsvc-{case}", overrides)
    assert code == 2, output
    assert message in " ".join(output.split())


def test_a_bad_setting_names_field_and_file(tmp_path: Path) -> None:
    code, output, directory = validate(
        tmp_path, "appsvc-field", {"service": {"app_service": {"registry": "dockerhub"}}}
    )
    assert code == 2, output
    assert "mlops_vm.service.app_service.registry" in output
    assert str(directory / "group_vars" / "all" / "mlops_vm.yml") in output


@pytest.fixture
def azure_world(
    tmp_path: Path, tls_arm: FakeArm, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeArm, AppServiceHost]]:
    """tls_arm, the App Service stand-in and its proxy (every *.azurewebsites.net request of
    a CLI process goes through it)."""
    arm = tls_arm
    tls = pki.ensure_server_cert(tmp_path, "azure", ["127.0.0.1", "*.azurewebsites.net"])
    host = AppServiceHost(arm, secrets={SECRET_URI: "s3cret"})
    proxy = HostsProxy(host, str(tls.cert), str(tls.key))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("https_proxy", proxy.url)
    try:
        yield arm, host
    finally:
        proxy.close()
        host.close()


def fake_environment(tmp_path: Path, name: str, arm: FakeArm) -> Path:
    directory = make_environment(tmp_path, name, like=APP_SERVICE_ENV)
    source = directory / "group_vars" / "all" / "mlops_vm.yml"
    settings = yaml.safe_load(source.read_text())
    config = settings["mlops_vm"]
    config["provider"]["endpoint_url"] = arm.url
    config["provider"]["options"] = {"subscription_id": SUBSCRIPTION_ID, "poll_interval_s": 0.05}
    config["model"] = {"image": model_tag("1.0")}
    config["service"]["app_service"] = {"sku": "S1", "registry": "source"}
    config["service"]["secrets"] = {"API_TOKEN": SECRET_URI}
    config["release"] = {"healthy_timeout_s": 20}
    source.write_text(yaml.safe_dump(settings, sort_keys=False))
    return directory


def production_image(arm: FakeArm, env: str) -> str:
    (site,) = arm.resources("Microsoft.Web/sites", f"mlops-vm-{env}")
    settings = arm.site_slots(site["id"])["production"]["appsettings"]
    return settings["MLOPS_VM_RELEASE_IMAGE"]


@pytest.mark.slow
def test_the_cli_runs_the_whole_life_cycle(tmp_path: Path, azure_world) -> None:
    """Contract + real: provision --check, provision, a second run through ansible-playbook
    alone with no change, deploy (swapped), a deploy that never becomes healthy (exit 1, not
    swapped, staging keeps the previous release), rollback, status, destroy by
    ansible-playbook, then by the CLI (nothing left)."""
    arm, _ = azure_world
    env = "appsvc-cli"
    directory = fake_environment(tmp_path, env, arm)

    code, plan = cli_json("provision", str(directory), "--check")
    assert code == 0, plan
    assert any(line.startswith("create web_app") for line in plan["planned"]), plan
    assert arm.resources() == []

    code, run = cli_json("provision", str(directory))
    assert code == 0, run
    assert run["endpoint"] == f"https://mlops-vm-{env}.azurewebsites.net"
    # The same playbook without the CLI: a second run changes nothing.
    code, output = ansible_playbook(directory, "provision.yml")
    assert code == 0, output
    assert recap(output)["localhost"] == (0, 0, 0), output

    code, run = cli_json("deploy", str(directory), "--image", model_tag("1.1"))
    assert code == 0, run
    assert production_image(arm, env) == model_tag("1.1")
    (site,) = arm.resources("Microsoft.Web/sites", f"mlops-vm-{env}")
    assert arm.swaps(site["id"]) == ["staging"]

    broken = model_tag(BROKEN_MODEL_VERSION)
    code, run = cli_json("deploy", str(directory), "--image", broken)
    assert code == 1, run
    assert "never became healthy" in json.dumps(run["failures"])
    assert production_image(arm, env) == model_tag("1.1")
    assert arm.swaps(site["id"]) == ["staging"]

    code, run = cli_json("rollback", str(directory))
    assert code == 0, run
    assert production_image(arm, env) == model_tag("1.0")

    code, status = cli_json("status", str(directory))
    assert code == 0, status
    assert status["service"]["active"]["image"] == model_tag("1.0")
    assert status["service"]["previous"]["image"] == model_tag("1.1")

    code, output = ansible_playbook(directory, "destroy.yml")
    assert code == 0, output
    assert arm.resources() == []
    code, run = cli_json("destroy", str(directory), "--yes")
    assert code == 0 and run["changes"] == [], run
