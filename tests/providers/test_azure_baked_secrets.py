"""A baked scale set on Azure with API keys (the ARM fake, tests/fakes/azure): the instances
read the keys at boot with their managed identity through the image's boot hook. No key
value in the scale set model's customData nor any instance's (only the references, a few
hundred bytes around them), the identity holds Key Vault Secrets User on exactly the named
secrets (no payload: no storage account, no Blob reader), `--check` lists exactly what the
run does, and the hook reads the keys with the IMDS stand-in's tokens of that identity.

The image's configure step is injected (test_azure_image.Builders): nothing can SSH into
the fake.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_vm.bootstrap import fetch_script
from mlops_vm.bootstrap.baked import BOOT_HOOK, BOOT_SOURCE
from mlops_vm.environment.config import validate_config
from mlops_vm.environment.release_image import baked_user_data
from mlops_vm.environment.specs import fleet_spec
from mlops_vm.provision import ErrorCode, FleetSpec, ProvisionError
from mlops_vm.provision.azure import boot_payload, instance_identity
from tests.bootstrap.test_baked_hook import Commands
from tests.check_equals_run import assert_check_equals_run
from tests.fakes.azure import SUBSCRIPTION_ID, FakeArm
from tests.providers.test_azure import SSH_KEY, make_provider
from tests.providers.test_azure_boot_identity import (
    API_KEYS,
    PASSWORD,
    SHARED_GROUP,
    SOURCE,
    custom_data_texts,
    env,
    environment,
    imds,
    scale_set_id,
    secrets,
)
from tests.providers.test_azure_image import Builders, image_spec, images

__all__ = ["env", "imds", "secrets"]  # fixtures shared with the cold boot's tests

pytestmark = pytest.mark.usefixtures("plain_http", "fresh_hooks")

MODEL_V1 = "registry.example.test/team/iris:1.4"
MODEL_V2 = "registry.example.test/team/iris:1.5"


def baked_spec(
    arm: FakeArm, env: str, keys: list[str], base: Path, model: str = MODEL_V1
) -> FleetSpec:
    """What the fleet step hands the provider for a baked scale set (bake_image by default)."""
    data = environment(arm, env, model, {"api_keys": keys})
    del data["fleet"]["bake_image"]  # the default: baked
    base.mkdir(parents=True, exist_ok=True)
    (base / "id.pub").write_text(SSH_KEY + "\n")
    image = image_spec(env, model, Builders(arm))
    spec = fleet_spec(validate_config(data, source=SOURCE), base, baked_user_data(image), image)
    assert spec.instance.boot is not None and spec.instance.boot.payload == b""
    return spec


def source_in(text: str) -> dict[str, Any]:
    files = {entry["path"]: entry for entry in yaml.safe_load(text)["write_files"]}
    return json.loads(files[BOOT_SOURCE]["content"])


def test_no_key_in_the_scale_set_model_and_the_identity_reads_only_the_keys(
    arm, env, secrets, tmp_path
):
    provider = make_provider(arm)
    provider.ensure_fleet(baked_spec(arm, env, secrets["api_keys"], tmp_path))
    # The next release: a new image, the scale set model updated.
    provider.ensure_fleet(baked_spec(arm, env, secrets["api_keys"], tmp_path, MODEL_V2))
    texts = custom_data_texts(arm, env)
    assert len(texts) == 1 + 2  # the model and its two instances
    for text in texts:
        for value in (PASSWORD, *API_KEYS):
            assert value not in text
        source = source_in(text)
        # References only, read by the image's hook; nothing to fetch but them.
        assert source["cloud"] == "azure"
        assert source["secrets"] == {"nginx_proxy_api_keys": secrets["api_keys"]}
        assert source["payload"] is None and source["baked"]["model_image"] in (MODEL_V1, MODEL_V2)
        assert f"{BOOT_HOOK} {BOOT_SOURCE} --baked" in text
        assert len(text.encode()) - len(json.dumps(source, indent=1).encode()) < 800
    scale_set = arm.resource(scale_set_id(env))
    image_ids = {image["id"] for image in images(arm, env)}
    reference = scale_set["properties"]["virtualMachineProfile"]["storageProfile"]
    assert reference["imageReference"]["id"] in image_ids
    assert source_in(texts[0])["baked"]["model_image"] == MODEL_V2
    # Key Vault Secrets User on exactly the named secrets, nothing else.
    [identity_id] = scale_set["identity"]["userAssignedIdentities"]
    principal = arm.resource(identity_id)["properties"]["principalId"]
    held = {
        (a["properties"]["roleDefinitionId"].rsplit("/", 1)[1], a["properties"]["scope"])
        for a in arm.role_assignments()
        if a["properties"]["principalId"] == principal
    }
    vault = (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{SHARED_GROUP}/providers"
        f"/Microsoft.KeyVault/vaults/kv{env}"
    )
    assert held == {
        (instance_identity.SECRETS_USER, f"{vault}/secrets/api-key-one"),
        (instance_identity.SECRETS_USER, f"{vault}/secrets/api-key-two"),
    }
    # No payload: no storage account was made for one.
    account = boot_payload.account_name(SUBSCRIPTION_ID, env)
    assert all(r["name"] != account for r in arm.resources(boot_payload.STORAGE_TYPE))
    # Destroy takes the assignments back with the identity.
    provider.destroy(env)
    assert all(a["properties"]["principalId"] != principal for a in arm.role_assignments())


def test_check_lists_exactly_what_the_baked_run_does(arm, env, secrets, tmp_path):
    spec = baked_spec(arm, env, secrets["api_keys"], tmp_path)
    changes = assert_check_equals_run(make_provider(arm), spec)
    kinds = {(change.kind, change.action) for change in changes}
    assert {("image", "create"), ("managed_identity", "create")} <= kinds
    assert not kinds & {
        ("storage_account", "create"),
        ("blob_container", "create"),
        ("boot_payload", "create"),
    }
    assert sum(1 for c in changes if c.kind == "role_assignment") == len(secrets["api_keys"])


def test_an_acr_model_may_be_pulled_again_by_identity(arm, env, secrets, tmp_path):
    registry = f"acr{env}"
    arm.create_registry(SUBSCRIPTION_ID, SHARED_GROUP, registry)
    model = f"{registry}.azurecr.io/team/iris:1.4"
    make_provider(arm).ensure_fleet(baked_spec(arm, env, secrets["api_keys"], tmp_path, model))
    registry_id = (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{SHARED_GROUP}/providers"
        f"/Microsoft.ContainerRegistry/registries/{registry}"
    )
    assert (instance_identity.ACR_PULL, registry_id) in {
        (a["properties"]["roleDefinitionId"].rsplit("/", 1)[1], a["properties"]["scope"])
        for a in arm.role_assignments()
    }
    [text, *_] = custom_data_texts(arm, env)
    assert source_in(text)["registry"] == {"host": f"{registry}.azurecr.io"}


def test_the_hook_reads_the_keys_with_the_identitys_tokens(arm, env, secrets, tmp_path, imds):
    metadata, metadata_url = imds
    provider = make_provider(arm, boot_endpoint_url=arm.url, boot_metadata_url=metadata_url)
    provider.ensure_fleet(baked_spec(arm, env, secrets["api_keys"], tmp_path / "config"))
    [text, *_] = custom_data_texts(arm, env)
    source = source_in(text)
    source["baked"]["api_keys_file"] = str(tmp_path / "api-keys.conf")
    commands = Commands()
    fetch_script.apply_baked(fetch_script.Azure(source), source, run=commands)
    written = (tmp_path / "api-keys.conf").read_text()
    assert all(re.escape(key) in written for key in API_KEYS)
    assert ["systemctl", "reload-or-restart", "nginx"] in [c for c, _ in commands.calls]
    # Key Vault tokens of the scale set's identity, and nothing else asked for.
    assert {resource for _, resource in metadata.served} == {"https://vault.azure.net"}
    assert {client for client, _ in metadata.served} == {source["identity_client_id"]}


def test_validate_refuses_a_key_reference_that_does_not_exist(arm, env, secrets, tmp_path):
    keys = [secrets["api_keys"][0] + "-gone", *secrets["api_keys"][1:]]
    spec = baked_spec(arm, env, keys, tmp_path)
    arm.clear_requests()
    with pytest.raises(ProvisionError) as raised:
        make_provider(arm).validate(spec, None)
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "fleet.secrets.api_keys.0" in str(raised.value) and "does not exist" in str(raised.value)
    assert arm.writes() == []  # nothing made, nothing baked
