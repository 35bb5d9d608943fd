"""Azure scale sets boot by identity (the fake ARM, tests/fakes/azure): nothing secret in
the scale set model's customData nor in any instance's, the payload in a Blob container,
a user-assigned identity on the scale set whose role assignments name exactly the secrets,
the container and the registry, and the fetcher that boots with that identity's tokens
(an IMDS stand-in) against the fake's data planes, which apply those assignments. The cold
boot (fleet.bake_image: false); a baked scale set's: test_azure_baked_secrets.py."""

import base64
import json
import lzma
import os
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from mlops_vm.bootstrap import fetch_script
from mlops_vm.environment.config import ConfigError, validate_config
from mlops_vm.environment.specs import fleet_spec
from mlops_vm.provision import ErrorCode, ProvisionError
from mlops_vm.provision.azure import boot_payload, instance_identity
from mlops_vm.provision.azure.drift import differences
from mlops_vm.provision.azure.names import Names
from mlops_vm.provision.azure.scaling_group import lowered_identity_ids
from tests.bootstrap.test_boot_source import UnsafeLoader
from tests.check_equals_run import assert_check_equals_run
from tests.fakes.azure import SUBSCRIPTION_ID, FakeArm
from tests.fakes.imds import AzureInstanceMetadata
from tests.providers import test_azure
from tests.providers.test_azure import LOCATION, SSH_KEY, make_provider

pytestmark = pytest.mark.usefixtures("plain_http", "fresh_hooks")

env = test_azure.env

PASSWORD = "registry-pw-{{ kept }}-8c1f"
API_KEYS = ("api-key-one-5d2e", "api-key-two-77ab")
SOURCE = Path("inventories/t/group_vars/all/mlops_vm.yml")
SHARED_GROUP = "shared-secrets"


@pytest.fixture
def secrets(arm: FakeArm, env: str) -> dict[str, list[str]]:
    """The registry password and the API keys in an RBAC Key Vault, as an operator keeps
    them (a vault of the test's own: names are global)."""
    vault = f"kv{env}"
    arm.create_vault(SUBSCRIPTION_ID, SHARED_GROUP, vault)
    base = f"https://{vault}.vault.azure.net/secrets"
    arm.add_secret(f"{base}/registry-password", PASSWORD)
    arm.add_secret(f"{base}/api-key-one", API_KEYS[0])
    version = arm.add_secret(f"{base}/api-key-two", API_KEYS[1])
    return {
        "registry_password": [f"{base}/registry-password"],
        "api_keys": [f"{base}/api-key-one", f"{base}/api-key-two/{version}"],
    }


def environment(
    arm: FakeArm, env: str, image: str, fleet_secrets: dict, model: dict | None = None, **more
) -> dict:
    return {
        "env": env,
        "provider": {
            "name": "azure",
            "region": LOCATION,
            "endpoint_url": arm.url,
            "options": {"subscription_id": SUBSCRIPTION_ID},
        },
        "fleet": {
            "mode": "scaling_group",
            "count": 2,
            "machine_type": "Standard_B2s",
            "ssh_public_key_file": "id.pub",
            "ssh_user": "azureuser",
            "autoscaling": {"min_size": 1, "max_size": 4},
            "bake_image": False,  # the cold boot: the payload from object storage
            "secrets": fleet_secrets,
        },
        "model": {"image": image, **(model or {}), **more},
        "auth": {"api_keys": ["{{ vault_api_key_one }}", "{{ vault_api_key_two }}"]},
    }


def spec_of(data: dict, base: Path):
    base.mkdir(parents=True, exist_ok=True)
    (base / "id.pub").write_text(SSH_KEY + "\n")
    return fleet_spec(validate_config(data, source=SOURCE), base)


def private_registry_spec(arm, env, secrets, tmp_path, model: dict | None = None):
    data = environment(
        arm,
        env,
        "registry.example.test/team/iris:1.4",
        {"registry_password": secrets["registry_password"][0], "api_keys": secrets["api_keys"]},
        model,
        registry={"username": "ci", "password": "{{ vault_registry_password }}"},
    )
    return spec_of(data, tmp_path)


def acr_spec(arm, env, secrets, tmp_path):
    """An image in an ACR of the subscription: pulled with the identity, no password."""
    registry = f"acr{env}"
    arm.create_registry(SUBSCRIPTION_ID, SHARED_GROUP, registry)
    data = environment(
        arm, env, f"{registry}.azurecr.io/team/iris:1.4", {"api_keys": secrets["api_keys"]}
    )
    return spec_of(data, tmp_path)


def scale_set_id(env: str) -> str:
    names = Names(env, "model")
    return (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{names.resource_group}"
        f"/providers/Microsoft.Compute/virtualMachineScaleSets/{names.scale_set}"
    )


def custom_data_texts(arm: FakeArm, env: str) -> list[str]:
    return [base64.b64decode(d).decode() for d in arm.scale_set_custom_data(scale_set_id(env))]


def source_of(text: str) -> dict:
    return json.loads(yaml.safe_load(text)["write_files"][1]["content"])


def test_no_secret_in_the_scale_set_model_nor_any_instance(arm, env, secrets, tmp_path):
    provider = make_provider(arm)
    provider.ensure_fleet(private_registry_spec(arm, env, secrets, tmp_path))
    # A second model: the model's settings changed (a new payload, the old blob stays).
    provider.ensure_fleet(private_registry_spec(arm, env, secrets, tmp_path, {"workers": 2}))
    texts = custom_data_texts(arm, env)
    assert len(texts) == 1 + 2  # the model and its two instances
    for text in texts:
        for value in (PASSWORD, *API_KEYS):
            assert value not in text
        source = source_of(text)
        assert source["cloud"] == "azure"
        assert source["secrets"] == {
            "model_service_registry_password": secrets["registry_password"][0],
            "nginx_proxy_api_keys": secrets["api_keys"],
        }
    account = boot_payload.account_name(SUBSCRIPTION_ID, env)
    blobs = arm.blobs(account, boot_payload.CONTAINER)
    assert len(blobs) == 2
    for data in blobs.values():
        content = lzma.decompress(data).decode()
        assert "model_service_registry_username" in content
        for value in (PASSWORD, *API_KEYS):
            assert value not in content


def test_the_identity_holds_exactly_its_roles_on_exactly_its_scopes(arm, env, secrets, tmp_path):
    provider = make_provider(arm)
    provider.ensure_fleet(acr_spec(arm, env, secrets, tmp_path))
    scale_set = arm.resource(scale_set_id(env))
    [identity_id] = scale_set["identity"]["userAssignedIdentities"]
    assert scale_set["identity"]["type"] == "UserAssigned"
    principal = arm.resource(identity_id)["properties"]["principalId"]
    held = {
        (a["properties"]["roleDefinitionId"].rsplit("/", 1)[1], a["properties"]["scope"])
        for a in arm.role_assignments()
        if a["properties"]["principalId"] == principal
    }
    shared = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{SHARED_GROUP}/providers"
    vault = f"{shared}/Microsoft.KeyVault/vaults/kv{env}"
    account = boot_payload.account_name(SUBSCRIPTION_ID, env)
    group = Names(env, "model").resource_group
    assert held == {
        (instance_identity.SECRETS_USER, f"{vault}/secrets/api-key-one"),
        (instance_identity.SECRETS_USER, f"{vault}/secrets/api-key-two"),
        (
            instance_identity.BLOB_READER,
            f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{group}/providers/"
            f"Microsoft.Storage/storageAccounts/{account}/blobServices/default/containers/boot",
        ),
        (instance_identity.ACR_PULL, f"{shared}/Microsoft.ContainerRegistry/registries/acr{env}"),
    }
    [text, *_] = custom_data_texts(arm, env)
    source = source_of(text)
    assert source["registry"] == {"host": f"acr{env}.azurecr.io"}
    assert "model_service_registry_password" not in source["secrets"]
    assert source["identity_client_id"] == arm.resource(identity_id)["properties"]["clientId"]


@pytest.fixture
def imds(arm: FakeArm):
    metadata = AzureInstanceMetadata(arm.identity_principals)
    port = metadata.start()
    yield metadata, f"http://127.0.0.1:{port}"
    metadata.stop()


def test_the_fetcher_boots_with_the_identity_and_only_what_it_was_granted(
    arm, env, secrets, tmp_path, imds, monkeypatch
):
    metadata, metadata_url = imds
    provider = make_provider(arm, boot_endpoint_url=arm.url, boot_metadata_url=metadata_url)
    provider.ensure_fleet(acr_spec(arm, env, secrets, tmp_path / "config"))
    [text, *_] = custom_data_texts(arm, env)
    source = source_of(text)
    boot_dir = tmp_path / "boot"
    boot_dir.mkdir()
    fetch_script.fetch(source, str(boot_dir))
    assert (boot_dir / "run.sh").exists()  # the payload, unpacked
    fetched = yaml.load((boot_dir / "secrets.yml").read_text(), UnsafeLoader)
    assert fetched["nginx_proxy_api_keys"] == list(API_KEYS)
    assert fetched["model_service_registry"] == f"acr{env}.azurecr.io"
    assert fetched["model_service_registry_username"] == "00000000-0000-0000-0000-000000000000"
    assert fetched["model_service_registry_password"].startswith("acr-refresh-")
    assert {resource for _, resource in metadata.served} == {
        "https://storage.azure.com/",
        "https://vault.azure.net",
        "https://management.azure.com/",
    }
    assert {client for client, _ in metadata.served} == {source["identity_client_id"]}

    # A secret the identity was not given: Key Vault refuses it, and the fetcher says which.
    base = f"https://kv{env}.vault.azure.net/secrets"
    arm.add_secret(f"{base}/not-granted", "never-read-7f1e")
    refused = {**source, "secrets": {"other": f"{base}/not-granted"}}
    waits: list[float] = []  # the back-off that waits for a role assignment to propagate
    monkeypatch.setattr(fetch_script.time, "sleep", waits.append)
    with pytest.raises(SystemExit) as stopped:
        fetch_script.fetch(refused, str(boot_dir))
    assert len(waits) == fetch_script.RBAC_ATTEMPTS - 1 and sum(waits) > 300
    assert "HTTP 403" in str(stopped.value) and "not-granted" in str(stopped.value)
    assert "never-read-7f1e" not in str(stopped.value)


def test_a_payload_three_times_todays_boots_from_the_container(arm, env, secrets, tmp_path, imds):
    today = private_registry_spec(arm, env, secrets, tmp_path).instance.boot
    assert today is not None
    filler = base64.b64encode(os.urandom(3 * len(today.payload))).decode()
    spec = private_registry_spec(arm, env, secrets, tmp_path, {"env": {"FILLER": filler}})
    payload = spec.instance.boot.payload
    assert len(payload) > max(3 * len(today.payload), 48 * 1024)
    _, metadata_url = imds
    provider = make_provider(arm, boot_endpoint_url=arm.url, boot_metadata_url=metadata_url)
    provider.ensure_fleet(spec)
    [text, *_] = custom_data_texts(arm, env)
    assert len(text.encode()) < 24 * 1024  # the fetcher and its source, whatever the roles
    source = source_of(text)
    account = boot_payload.account_name(SUBSCRIPTION_ID, env)
    assert source["payload"]["url"] == (
        f"https://{account}.blob.core.windows.net/boot/boot/{spec.instance.boot.payload_sha256}.xz"
    )
    assert arm.blobs(account, "boot")[spec.instance.boot.payload_key()] == payload
    boot_dir = tmp_path / "boot"
    boot_dir.mkdir()
    fetch_script.fetch(source, str(boot_dir))
    assert any(filler in p.read_text() for p in boot_dir.rglob("*.yml"))
    fetched = yaml.load((boot_dir / "secrets.yml").read_text(), UnsafeLoader)
    assert fetched["model_service_registry_password"] == PASSWORD


def test_check_lists_exactly_what_the_run_does_and_destroy_removes_the_identity(
    arm, env, secrets, tmp_path
):
    provider = make_provider(arm)
    spec = acr_spec(arm, env, secrets, tmp_path)
    changes = assert_check_equals_run(provider, spec)
    kinds = {(change.kind, change.action) for change in changes}
    assert {
        ("storage_account", "create"),
        ("blob_container", "create"),
        ("boot_payload", "create"),
        ("managed_identity", "create"),
        ("role_assignment", "create"),
    } <= kinds
    assert sum(1 for c in changes if c.kind == "role_assignment") == 4
    assert arm.role_assignments() == [] or all(
        env not in a["properties"]["scope"] and f"kv{env}" not in a["properties"]["scope"]
        for a in arm.role_assignments()
    )
    assert arm.identity_principals() == {} or all(
        env not in r["id"]
        for r in arm.resources("Microsoft.ManagedIdentity/userAssignedIdentities")
    )


def test_validate_refuses_a_missing_or_unreadable_secret_before_anything_exists(
    arm, env, secrets, tmp_path
):
    provider = make_provider(arm)
    missing = dict(secrets, api_keys=[secrets["api_keys"][0] + "-gone"])
    arm.clear_requests()
    with pytest.raises(ProvisionError) as raised:
        provider.validate(private_registry_spec(arm, env, missing, tmp_path), None)
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "fleet.secrets.api_keys.0" in str(raised.value)
    assert "does not exist" in str(raised.value)

    arm.deny_secrets(f"kv{env}")
    with pytest.raises(ProvisionError) as raised:
        provider.validate(private_registry_spec(arm, env, secrets, tmp_path), None)
    assert raised.value.code == ErrorCode.PERMISSION
    assert "not allowed to read" in str(raised.value)
    assert arm.writes() == []


def test_validate_refuses_a_vault_whose_secrets_cannot_be_granted_one_by_one(arm, env, tmp_path):
    vault = f"kp{env}"
    arm.create_vault(SUBSCRIPTION_ID, SHARED_GROUP, vault, rbac=False)
    uri = f"https://{vault}.vault.azure.net/secrets/api-key"
    arm.add_secret(uri, API_KEYS[0])
    data = environment(arm, env, "registry.example.test/team/iris:1.4", {"api_keys": [uri]})
    arm.clear_requests()
    with pytest.raises(ProvisionError) as raised:
        make_provider(arm).validate(spec_of(data, tmp_path), None)
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "fleet.secrets.api_keys.0" in str(raised.value) and "access policies" in str(
        raised.value
    )
    assert arm.writes() == []


def test_settings_refuse_a_reference_that_is_no_key_vault_secret(arm, env):
    data = environment(
        arm,
        env,
        "registry.example.test/team/iris:1.4",
        {"api_keys": ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:k"]},
        registry={"username": "ci", "password": "{{ vault_registry_password }}"},
    )
    with pytest.raises(ConfigError) as raised:
        validate_config(data, source=SOURCE)
    problems = {problem.field: problem.message for problem in raised.value.problems}
    assert "is not a Key Vault secret identifier" in problems["mlops_vm.fleet.secrets.api_keys.0"]
    assert "Key Vault" in problems["mlops_vm.fleet.secrets.registry_password"]


def test_unique_names_per_environment():
    assert boot_payload.account_name(SUBSCRIPTION_ID, "a") != boot_payload.account_name(
        SUBSCRIPTION_ID, "b"
    )
    assert len(boot_payload.account_name(SUBSCRIPTION_ID, "a" * 40)) <= 24
    assert uuid.UUID(
        instance_identity.Grant("/x", instance_identity.ACR_PULL)
        .assignment_id("/i")
        .rsplit("/", 1)[1]
    )


def test_identity_ids_in_arms_own_case_are_no_drift():
    sent = "/subscriptions/S/resourceGroups/mlops-vm-t/providers/Microsoft.ManagedIdentity/x"
    desired = {"identity": {"type": "UserAssigned", "userAssignedIdentities": {sent: {}}}}
    answered = {"identity": {"userAssignedIdentities": {sent.lower(): {"clientId": "c"}}}}
    answered["identity"]["type"] = "UserAssigned"
    assert differences(desired, answered) != []  # what the normalisation is for
    assert differences(lowered_identity_ids(desired), lowered_identity_ids(answered)) == []


def test_in_a_reused_resource_group_destroy_removes_identity_storage_and_assignments(
    arm, env, secrets, tmp_path
):
    shared = f"shared-{env}"
    arm.create_resource_group(SUBSCRIPTION_ID, shared, LOCATION)
    spec = acr_spec(arm, env, secrets, tmp_path)
    spec = replace(spec, network=replace(spec.network, existing={"resource_group": shared}))
    changes = assert_check_equals_run(make_provider(arm), spec)
    assert ("managed_identity", "create") in {(c.kind, c.action) for c in changes}
    left = arm.resources(resource_group=shared)
    assert left == [], [r["type"] for r in left]
    assert all(f"kv{env}" not in a["properties"]["scope"] for a in arm.role_assignments())
