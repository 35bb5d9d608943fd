"""Scaling groups on GCP boot by identity (the Compute Engine fake with IAM, Cloud Storage,
Secret Manager and Artifact Registry beside it): nothing secret in any instance template's
metadata, the payload in a bucket, and a service account granted exactly the
environment's secrets, bucket and repository; the fetcher reads them with that account's
token from a metadata-server stand-in, and nothing else may. The cold boot
(fleet.bake_image: false); a baked group's: test_gcp_baked_secrets.py."""

import base64
import json
import lzma
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_vm.bootstrap import fetch_script
from mlops_vm.environment.config import ConfigError, validate_config
from mlops_vm.environment.specs import fleet_spec
from mlops_vm.provision import ErrorCode, FleetSpec, ProvisionError
from mlops_vm.provision.gcp import boot_payload, instance_identity
from tests.check_equals_run import assert_check_equals_run
from tests.fakes.gcp import FakeCompute
from tests.fakes.gcp.testing import make_provider
from tests.fakes.gcp_metadata import GcpMetadata

pytestmark = pytest.mark.usefixtures("clean_faults")

ENV = "t1"
REGION = "us-central1"
PASSWORD = "registry-pw-{{ kept }}-8c1f"
API_KEYS = ("api-key-one-5d2e", "api-key-two-77ab")
AR_HOST = "us-central1-docker.pkg.dev"
SOURCE = Path("inventories/t/group_vars/all/mlops_vm.yml")


@pytest.fixture
def secrets(fake: FakeCompute, project: str) -> dict[str, Any]:
    """The registry password and the API keys in Secret Manager, as an operator keeps them
    (one referenced by version, one by the latest, one pinned to its first version)."""
    identity = fake.identity
    password = identity.add_secret(project, f"pw-{os.urandom(3).hex()}", PASSWORD)
    one = identity.add_secret(project, f"key-{os.urandom(3).hex()}", API_KEYS[0])
    two = identity.add_secret(project, f"key-{os.urandom(3).hex()}", "an older value")
    identity.add_secret(project, two.rsplit("/", 1)[-1], API_KEYS[1])  # its version 2
    return {"registry_password": f"{password}/versions/1", "api_keys": [one, f"{two}/versions/2"]}


def environment(project: str, image: str, secrets: dict, **model: Any) -> dict:
    return {
        "env": ENV,
        "provider": {"name": "gcp", "region": REGION, "options": {"project": project}},
        "fleet": {
            "mode": "scaling_group",
            "count": 2,
            "machine_type": "e2-small",
            "autoscaling": {"min_size": 1, "max_size": 4},
            "bake_image": False,  # the cold boot: the payload from object storage
            "secrets": secrets,
        },
        "model": {"image": image, **model},
        "auth": {"api_keys": ["{{ vault_api_key_one }}", "{{ vault_api_key_two }}"]},
    }


def private_registry_spec(project, secrets, tmp_path, **model) -> FleetSpec:
    data = environment(
        project,
        "registry.example.test/team/iris:1.4",
        secrets,
        registry={"username": "ci", "password": "{{ vault_registry_password }}"},
        **model,
    )
    return fleet_spec(validate_config(data, source=SOURCE), tmp_path)


def artifact_registry_spec(project, secrets, tmp_path) -> FleetSpec:
    data = environment(project, f"{AR_HOST}/{project}/models/iris:1.4", secrets)
    return fleet_spec(validate_config(data, source=SOURCE), tmp_path)


def templates(fake: FakeCompute, project: str) -> list[dict[str, Any]]:
    return fake.resources(project, "instanceTemplates")


def metadata_texts(fake: FakeCompute, project: str) -> list[str]:
    """Every metadata value of every instance template and instance of PROJECT."""
    found = [t["properties"]["metadata"] for t in templates(fake, project)]
    found += [i["metadata"] for i in fake.resources(project, "instances")]
    return [item["value"] for metadata in found for item in metadata.get("items", [])]


def source_of(template: dict[str, Any]) -> dict[str, Any]:
    """The fetcher's source in TEMPLATE's user-data."""
    items = {i["key"]: i["value"] for i in template["properties"]["metadata"]["items"]}
    return json.loads(yaml.safe_load(items["user-data"])["write_files"][1]["content"])


def email(project: str) -> str:
    return instance_identity.account_email(project, ENV, "model")


def test_no_secret_in_any_template_nor_instance_metadata(fake, project, secrets, tmp_path):
    provider = make_provider(fake, project)
    provider.ensure_fleet(private_registry_spec(project, secrets, tmp_path))
    # A second template: the model's settings changed.
    provider.ensure_fleet(private_registry_spec(project, secrets, tmp_path, workers=2))
    assert len(templates(fake, project)) == 2
    texts = metadata_texts(fake, project)
    assert len(texts) >= 2 + 2  # user-data of both templates and of the instances
    for text in texts:
        for value in (PASSWORD, *API_KEYS):
            assert value not in text
    for template in templates(fake, project):
        source = source_of(template)
        # What the instance reads with its identity: references only.
        assert source["secrets"] == {
            "model_service_registry_password": secrets["registry_password"],
            "nginx_proxy_api_keys": secrets["api_keys"],
        }
        assert source["cloud"] == "gcp" and source["payload"]["url"].startswith("gs://")
    # Nor in the payload objects.
    bucket = boot_payload.bucket_name(project, ENV)
    payloads = [
        name for name in fake.identity.state.buckets[bucket]["objects"] if name.startswith("boot/")
    ]
    assert len(payloads) == 2
    for name in payloads:
        content = lzma.decompress(fake.identity.object_data(bucket, name)).decode()
        assert "model_service_registry_username" in content
        for value in (PASSWORD, *API_KEYS):
            assert value not in content
    # Destroy empties the bucket (listed a page at a time) and deletes it.
    provider.destroy(ENV)
    assert bucket not in fake.identity.state.buckets


def test_the_service_account_may_read_only_its_secrets_bucket_and_repository(
    fake, project, secrets, tmp_path
):
    provider = make_provider(fake, project)
    unrelated = fake.identity.add_secret(project, "unrelated", "not for the instances")
    repository = f"projects/{project}/locations/{REGION}/repositories/models"
    fake.identity.add_repository(repository)
    other_repository = f"projects/{project}/locations/{REGION}/repositories/others"
    fake.identity.add_repository(other_repository)
    provider.ensure_fleet(
        artifact_registry_spec(project, {"api_keys": secrets["api_keys"]}, tmp_path)
    )
    member = f"serviceAccount:{email(project)}"
    [template] = templates(fake, project)
    assert template["properties"]["serviceAccounts"][0]["email"] == email(project)
    account = fake.identity.state.accounts[email(project)]
    assert "env=t1" in account["description"]

    def roles_of(kind: str, name: str) -> list[str]:
        policy = fake.identity.policy(kind, name)
        return [b["role"] for b in policy.get("bindings", []) if member in b["members"]]

    for reference in secrets["api_keys"]:
        secret = reference.split("/versions/")[0]
        assert roles_of("secret", secret) == ["roles/secretmanager.secretAccessor"]
    password_secret = secrets["registry_password"].split("/versions/")[0]
    assert roles_of("secret", password_secret) == []  # not named: Artifact Registry pulls
    assert roles_of("secret", unrelated) == []
    bucket = boot_payload.bucket_name(project, ENV)
    assert roles_of("bucket", bucket) == ["roles/storage.objectViewer"]
    assert roles_of("repository", repository) == ["roles/artifactregistry.reader"]
    assert roles_of("repository", other_repository) == []
    source = source_of(template)
    assert source["registry"] == {"host": AR_HOST}
    assert "model_service_registry_password" not in source["secrets"]

    # A key no longer named loses its grant; the run after changes nothing.
    fewer = artifact_registry_spec(project, {"api_keys": secrets["api_keys"][:1]}, tmp_path)
    changes = provider.ensure_fleet(fewer).changes
    dropped = secrets["api_keys"][1].split("/versions/")[0]
    assert ("delete", "iam_binding") in [(c.action, c.kind) for c in changes]
    assert roles_of("secret", dropped) == []
    assert provider.ensure_fleet(fewer).changes == []


def boot(fake: FakeCompute, source: dict, token: str, boot_dir: Path) -> GcpMetadata:
    """The fetcher's steps 1-3, as an instance runs them, with TOKEN from the metadata
    stand-in; the stand-in (what it served)."""
    metadata = GcpMetadata(email="instance", token=token)
    port = metadata.start()
    try:
        fetch_script.fetch({**source, "metadata_url": f"http://127.0.0.1:{port}"}, str(boot_dir))
    finally:
        metadata.stop()
    return metadata


def test_a_payload_three_times_todays_boots_with_the_accounts_token(
    fake, project, secrets, tmp_path
):
    today = private_registry_spec(project, secrets, tmp_path).instance.boot
    assert today is not None
    # Incompressible filler: the payload is over three times today's (and over 48 KB).
    filler = base64.b64encode(os.urandom(3 * len(today.payload))).decode()
    spec = private_registry_spec(project, secrets, tmp_path, env={"FILLER": filler})
    assert spec.instance.boot is not None
    assert len(spec.instance.boot.payload) > max(3 * len(today.payload), 48 * 1024)
    provider = make_provider(fake, project, boot_endpoint_url=fake.endpoint_url)
    provider.ensure_fleet(spec)
    [template] = templates(fake, project)
    items = {i["key"]: i["value"] for i in template["properties"]["metadata"]["items"]}
    # The fetcher and its source only: a few KB whatever the payload weighs.
    assert filler[:64] not in items["user-data"]
    assert len(items["user-data"].encode()) < 24 * 1024 < len(spec.instance.boot.payload)
    source = source_of(template)
    boot_dir = tmp_path / "boot"
    boot_dir.mkdir()
    metadata = boot(fake, source, fake.identity.issue_token(email(project)), boot_dir)
    assert metadata.served == ["/computeMetadata/v1/instance/service-accounts/default/token"]
    assert filler in (boot_dir / "vars.yml").read_text()
    fetched = yaml.safe_load((boot_dir / "secrets.yml").read_text().replace("!unsafe ", ""))
    assert fetched == {
        "model_service_registry_password": PASSWORD,
        "nginx_proxy_api_keys": list(API_KEYS),
    }
    assert oct((boot_dir / "secrets.yml").stat().st_mode & 0o777) == "0o600"


def test_another_identity_reads_neither_the_payload_nor_the_secrets(
    fake, project, secrets, tmp_path
):
    provider = make_provider(fake, project, boot_endpoint_url=fake.endpoint_url)
    provider.ensure_fleet(private_registry_spec(project, secrets, tmp_path))
    [template] = templates(fake, project)
    source = source_of(template)
    stranger = fake.identity.issue_token(f"stranger@{project}.iam.gserviceaccount.com")
    with pytest.raises(SystemExit, match="HTTP 403"):
        boot(fake, source, stranger, tmp_path)
    # The account's own token, without the payload: the secrets are refused to the stranger.
    without_payload = {**source, "payload": None}
    with pytest.raises(SystemExit, match="HTTP 403"):
        boot(fake, without_payload, stranger, tmp_path)
    assert not (tmp_path / "secrets.yml").exists()


def test_artifact_registry_login_is_the_accounts_token(fake, project, secrets, tmp_path):
    fake.identity.add_repository(f"projects/{project}/locations/{REGION}/repositories/models")
    provider = make_provider(fake, project, boot_endpoint_url=fake.endpoint_url)
    provider.ensure_fleet(
        artifact_registry_spec(project, {"api_keys": secrets["api_keys"]}, tmp_path)
    )
    [template] = templates(fake, project)
    token = fake.identity.issue_token(email(project))
    boot(fake, source_of(template), token, tmp_path)
    fetched = yaml.safe_load((tmp_path / "secrets.yml").read_text().replace("!unsafe ", ""))
    assert fetched["model_service_registry"] == AR_HOST
    assert fetched["model_service_registry_username"] == "oauth2accesstoken"
    assert fetched["model_service_registry_password"] == token


def test_check_lists_exactly_what_the_run_does_and_destroy_removes_the_identity(
    fake, project, secrets, tmp_path
):
    provider = make_provider(fake, project)
    spec = private_registry_spec(project, secrets, tmp_path)
    changes = assert_check_equals_run(provider, spec)
    kinds = {(change.kind, change.action) for change in changes}
    assert {
        ("gcs_bucket", "create"),
        ("boot_payload", "create"),
        ("service_account", "create"),
        ("iam_binding", "create"),
    } <= kinds
    assert email(project) not in fake.identity.state.accounts
    assert boot_payload.bucket_name(project, ENV) not in fake.identity.state.buckets
    member = f"serviceAccount:{email(project)}"
    for reference in [secrets["registry_password"], *secrets["api_keys"]]:
        policy = fake.identity.policy("secret", reference.split("/versions/")[0])
        assert all(member not in b["members"] for b in policy.get("bindings", []))


def test_validate_refuses_a_secret_that_does_not_exist_before_anything_is_made(
    fake, project, secrets, tmp_path
):
    secrets["api_keys"][0] = f"projects/{project}/secrets/gone"
    spec = private_registry_spec(project, secrets, tmp_path)
    with pytest.raises(ProvisionError) as raised:
        make_provider(fake, project).validate(spec, None)
    assert raised.value.code == ErrorCode.INVALID_INPUT
    message = str(raised.value)
    assert "fleet.secrets.api_keys.0" in message and "does not exist" in message
    assert fake.identity.state.accounts == {} or email(project) not in fake.identity.state.accounts
    assert fake.resources(project) == []


def test_validate_reports_a_secret_the_operator_may_not_read(fake, project, secrets, tmp_path):
    fake.identity.deny_operator(secrets["registry_password"].split("/versions/")[0])
    spec = private_registry_spec(project, secrets, tmp_path)
    with pytest.raises(ProvisionError) as raised:
        make_provider(fake, project).validate(spec, None)
    assert raised.value.code == ErrorCode.PERMISSION
    assert "fleet.secrets.registry_password" in str(raised.value)
    assert "permission denied" in str(raised.value)


def test_settings_refuse_references_that_are_not_secret_manager_versions(project):
    data = environment(
        project,
        "registry.example.test/team/iris:1.4",
        {"api_keys": ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:k"]},
        registry={"username": "ci", "password": "{{ vault_registry_password }}"},
    )
    with pytest.raises(ConfigError) as raised:
        validate_config(data, source=SOURCE)
    problems = {problem.field: problem.message for problem in raised.value.problems}
    assert "is not a Secret Manager version" in problems["mlops_vm.fleet.secrets.api_keys.0"]
    assert "Secret Manager" in problems["mlops_vm.fleet.secrets.registry_password"]
    assert all(problem.file == SOURCE for problem in raised.value.problems)


def test_grants_wait_for_a_new_service_account_to_be_known(fake, project, secrets, tmp_path):
    fake.identity.delay_propagation(2)
    try:
        make_provider(fake, project).ensure_fleet(private_registry_spec(project, secrets, tmp_path))
    finally:
        fake.identity.delay_propagation(0)
    bucket = boot_payload.bucket_name(project, ENV)
    bindings = fake.identity.policy("bucket", bucket)["bindings"]
    assert {
        "role": "roles/storage.objectViewer",
        "members": [f"serviceAccount:{email(project)}"],
    } in bindings


def test_validate_refuses_an_artifact_registry_repository_that_does_not_exist(
    fake, project, secrets, tmp_path
):
    spec = artifact_registry_spec(project, {"api_keys": secrets["api_keys"]}, tmp_path)
    with pytest.raises(ProvisionError) as raised:
        make_provider(fake, project).validate(spec, None)
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "model.image" in str(raised.value) and "repositories/models" in str(raised.value)
    assert fake.resources(project) == []


def test_destroy_of_a_fleet_without_boot_identity_calls_no_iam(fake, project):
    provider = make_provider(fake, project)
    before = len(fake.identity.calls)
    provider.destroy(ENV)
    assert [call for call, _ in fake.identity.calls[before:]] == ["storage.buckets.get"]


def test_artifact_registry_needs_no_password_reference(project, secrets, tmp_path):
    data = environment(
        project,
        f"{AR_HOST}/{project}/models/iris:1.4",
        {"api_keys": secrets["api_keys"]},
        registry={"username": "ci", "password": "{{ vault_registry_password }}"},
    )
    spec = fleet_spec(validate_config(data, source=SOURCE), tmp_path)
    assert spec.instance.boot is not None
    assert spec.instance.boot.registry_host == AR_HOST
    assert "model_service_registry_password" not in spec.instance.boot.secrets


def test_fleet_secrets_on_a_fixed_fleet_are_refused(project, secrets):
    data = environment(project, "registry.example.test/team/iris:1.4", secrets)
    data["fleet"] = {"mode": "fleet", "count": 2, "secrets": secrets}
    with pytest.raises(ConfigError) as raised:
        validate_config(data, source=SOURCE)
    problems = {problem.field: problem.message for problem in raised.value.problems}
    message = problems["mlops_vm.fleet.secrets"]
    assert message.startswith("applies to scaling groups on ") and "gcp" in message
