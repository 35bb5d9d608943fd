"""A baked scaling group on GCP with API keys (the Compute Engine fake with IAM, Cloud Storage
and Secret Manager beside it): the instances read the keys at boot with their service
account through the image's boot hook. No key value in any instance template's or
instance's metadata (only the references, a few hundred bytes around them), the account
reads exactly the named secrets (no payload object, no read on the bucket: the image holds
everything else), `--check` lists exactly what the run does, and the hook reads the keys
with the token of the metadata-server stand-in.

The image's configure step is injected (test_gcp_image.Builders): nothing can SSH into the
fake.
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
from mlops_vm.provision.gcp import boot_payload
from tests.bootstrap.test_baked_hook import Commands
from tests.check_equals_run import assert_check_equals_run
from tests.fakes.gcp import FakeCompute
from tests.fakes.gcp.testing import make_provider
from tests.fakes.gcp_metadata import GcpMetadata
from tests.providers.test_gcp_boot_identity import (
    API_KEYS,
    AR_HOST,
    ENV,
    PASSWORD,
    REGION,
    SOURCE,
    email,
    environment,
    metadata_texts,
    secrets,
    templates,
)
from tests.providers.test_gcp_image import Builders, image_spec, images

__all__ = ["secrets"]  # the fixture shared with the cold boot's tests

pytestmark = pytest.mark.usefixtures("clean_faults")

MODEL_V1 = "registry.example.test/team/iris:1.4"
MODEL_V2 = "registry.example.test/team/iris:1.5"


def baked_spec(
    fake: FakeCompute, project: str, keys: list[str], base: Path, model: str = MODEL_V1
) -> FleetSpec:
    """What the fleet step hands the provider for a baked group (bake_image by default)."""
    data = environment(project, model, {"api_keys": keys})
    del data["fleet"]["bake_image"]  # the default: baked
    config = validate_config(data, source=SOURCE)
    image = image_spec(model, Builders(fake, project))
    spec = fleet_spec(config, base, baked_user_data(image), image)
    assert spec.instance.boot is not None and spec.instance.boot.payload == b""
    return spec


def source_in(text: str) -> dict[str, Any]:
    files = {entry["path"]: entry for entry in yaml.safe_load(text)["write_files"]}
    return json.loads(files[BOOT_SOURCE]["content"])


def user_data_of(template: dict[str, Any]) -> str:
    items = {i["key"]: i["value"] for i in template["properties"]["metadata"]["items"]}
    return items["user-data"]


def roles_of(fake: FakeCompute, project: str, kind: str, name: str) -> list[str]:
    member = f"serviceAccount:{email(project)}"
    policy = fake.identity.policy(kind, name) or {}
    return [b["role"] for b in policy.get("bindings", []) if member in b["members"]]


def test_no_key_in_any_template_and_the_account_reads_only_the_keys(
    fake, project, secrets, tmp_path
):
    provider = make_provider(fake, project)
    provider.ensure_fleet(baked_spec(fake, project, secrets["api_keys"], tmp_path))
    # The next release: a new image, a second instance template.
    provider.ensure_fleet(baked_spec(fake, project, secrets["api_keys"], tmp_path, MODEL_V2))
    assert len(templates(fake, project)) == 2
    texts = [text for text in metadata_texts(fake, project) if text.startswith("#cloud-config")]
    assert len(texts) >= 2 + 2  # the user-data of both templates and of the instances
    for text in texts:
        for value in (PASSWORD, *API_KEYS):
            assert value not in text
        source = source_in(text)
        # References only, read by the image's hook; nothing to fetch but them.
        assert source["cloud"] == "gcp"
        assert source["secrets"] == {"nginx_proxy_api_keys": secrets["api_keys"]}
        assert source["payload"] is None and source["baked"]["model_image"] in (MODEL_V1, MODEL_V2)
        assert f"{BOOT_HOOK} {BOOT_SOURCE} --baked" in text
        assert len(text.encode()) - len(json.dumps(source, indent=1).encode()) < 800
    # Each template boots the release's image, as the account.
    family = {image["selfLink"] for image in images(fake, project)}
    for template in templates(fake, project):
        properties = template["properties"]
        assert properties["disks"][0]["initializeParams"]["sourceImage"] in family
        assert properties["serviceAccounts"][0]["email"] == email(project)
    # Read on exactly the named secrets; no payload, so no read on the bucket either.
    for reference in secrets["api_keys"]:
        secret = reference.split("/versions/")[0]
        assert roles_of(fake, project, "secret", secret) == ["roles/secretmanager.secretAccessor"]
    password_secret = secrets["registry_password"].split("/versions/")[0]
    assert roles_of(fake, project, "secret", password_secret) == []
    bucket = boot_payload.bucket_name(project, ENV)
    assert roles_of(fake, project, "bucket", bucket) == []
    # The bucket keeps the grant record (what destroy takes back), no payload object.
    assert list(fake.identity.state.buckets[bucket]["objects"]) == [boot_payload.GRANTS_OBJECT]
    # Destroy takes the grants back, then the account and the bucket.
    provider.destroy(ENV)
    assert email(project) not in fake.identity.state.accounts
    assert bucket not in fake.identity.state.buckets
    for reference in secrets["api_keys"]:
        assert roles_of(fake, project, "secret", reference.split("/versions/")[0]) == []


def test_check_lists_exactly_what_the_baked_run_does(fake, project, secrets, tmp_path):
    provider = make_provider(fake, project)
    spec = baked_spec(fake, project, secrets["api_keys"], tmp_path)
    changes = assert_check_equals_run(provider, spec)
    kinds = {(change.kind, change.action) for change in changes}
    assert {("image", "create"), ("service_account", "create"), ("iam_binding", "create")} <= kinds
    assert ("boot_payload", "create") not in kinds
    assert sum(1 for change in changes if change.kind == "iam_binding") == len(secrets["api_keys"])


def test_an_artifact_registry_model_may_be_pulled_again_by_identity(
    fake, project, secrets, tmp_path
):
    repository = f"projects/{project}/locations/{REGION}/repositories/models"
    fake.identity.add_repository(repository)
    model = f"{AR_HOST}/{project}/models/iris:1.4"
    spec = baked_spec(fake, project, secrets["api_keys"], tmp_path, model)
    make_provider(fake, project).ensure_fleet(spec)
    assert roles_of(fake, project, "repository", repository) == ["roles/artifactregistry.reader"]
    [template] = templates(fake, project)
    assert source_in(user_data_of(template))["registry"] == {"host": AR_HOST}


def test_the_hook_reads_the_keys_with_the_accounts_token(fake, project, secrets, tmp_path):
    provider = make_provider(fake, project, boot_endpoint_url=fake.endpoint_url)
    provider.ensure_fleet(baked_spec(fake, project, secrets["api_keys"], tmp_path / "config"))
    [template] = templates(fake, project)
    source = source_in(user_data_of(template))
    source["baked"]["api_keys_file"] = str(tmp_path / "api-keys.conf")
    metadata = GcpMetadata(email="instance", token=fake.identity.issue_token(email(project)))
    port = metadata.start()
    commands = Commands()
    try:
        source["metadata_url"] = f"http://127.0.0.1:{port}"
        fetch_script.apply_baked(fetch_script.Gcp(source), source, run=commands)
    finally:
        metadata.stop()
    assert metadata.served == ["/computeMetadata/v1/instance/service-accounts/default/token"]
    text = (tmp_path / "api-keys.conf").read_text()
    assert all(re.escape(key) in text for key in API_KEYS)
    assert ["systemctl", "reload-or-restart", "nginx"] in [c for c, _ in commands.calls]

    # Another account's token reads nothing, and no keys file is written.
    (tmp_path / "api-keys.conf").unlink()
    stranger = GcpMetadata(email="stranger", token=fake.identity.issue_token("x@p.test"))
    port = stranger.start()
    try:
        source["metadata_url"] = f"http://127.0.0.1:{port}"
        with pytest.raises(SystemExit, match="HTTP 403"):
            fetch_script.apply_baked(fetch_script.Gcp(source), source, run=Commands())
    finally:
        stranger.stop()
    assert not (tmp_path / "api-keys.conf").exists()


def test_validate_refuses_a_key_reference_that_does_not_exist(fake, project, secrets, tmp_path):
    keys = [f"projects/{project}/secrets/gone", *secrets["api_keys"][1:]]
    spec = baked_spec(fake, project, keys, tmp_path)
    with pytest.raises(ProvisionError) as raised:
        make_provider(fake, project).validate(spec, None)
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "fleet.secrets.api_keys.0" in str(raised.value) and "does not exist" in str(raised.value)
    assert email(project) not in fake.identity.state.accounts
    assert fake.resources(project) == []  # nothing baked either
