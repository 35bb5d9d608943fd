"""Scaling groups on AWS boot by identity (moto in server mode): nothing secret in any
launch template version or instance's user-data, the payload in S3, and an instance role
whose policy names only the environment's secrets, payloads and repository. The cold boot
(fleet.bake_image: false); a baked group's: test_aws_baked_secrets.py."""

import base64
import gzip
import json
import lzma
import os
from pathlib import Path

import pytest
import yaml

from mlops_vm.bootstrap.boot_source import PAYLOAD_PREFIX
from mlops_vm.environment.config import ConfigError, validate_config
from mlops_vm.environment.specs import fleet_spec
from mlops_vm.provision import ErrorCode, ProvisionError
from mlops_vm.provision.aws import instance_identity
from tests.check_equals_run import assert_check_equals_run
from tests.providers.test_aws import (
    REGION,
    aws_environment,
    boto,
    env,
    make_provider,
    moto_endpoint,
)

__all__ = [  # fixtures shared with the provider tests, found by pytest by their names
    "aws_environment",
    "boto",
    "env",
    "moto_endpoint",
]

PASSWORD = "registry-pw-{{ kept }}-8c1f"
API_KEYS = ("api-key-one-5d2e", "api-key-two-77ab")
ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
SOURCE = Path("inventories/t/group_vars/all/mlops_vm.yml")


@pytest.fixture
def secret_arns(boto) -> dict[str, list[str]]:
    """The registry password and the API keys in Secrets Manager and SSM, as an operator
    would keep them."""
    secrets = boto("secretsmanager")
    password = secrets.create_secret(Name=f"pw-{os.urandom(3).hex()}", SecretString=PASSWORD)
    key = secrets.create_secret(Name=f"key-{os.urandom(3).hex()}", SecretString=API_KEYS[0])
    name = f"/mlops-vm/key-{os.urandom(3).hex()}"
    boto("ssm").put_parameter(Name=name, Value=API_KEYS[1], Type="SecureString")
    account = boto("sts").get_caller_identity()["Account"]
    parameter = f"arn:aws:ssm:{REGION}:{account}:parameter{name}"
    return {"registry_password": [password["ARN"]], "api_keys": [key["ARN"], parameter]}


def environment(name: str, moto_endpoint: str, image: str, secrets: dict, **model) -> dict:
    return {
        "env": name,
        "provider": {"name": "aws", "region": REGION, "endpoint_url": moto_endpoint},
        "fleet": {
            "mode": "scaling_group",
            "count": 2,
            "machine_type": "t3.small",
            "autoscaling": {"min_size": 1, "max_size": 4},
            "bake_image": False,  # the cold boot: the payload from S3
            "secrets": secrets,
        },
        "model": {"image": image, **model},
        "auth": {"api_keys": ["{{ vault_api_key_one }}", "{{ vault_api_key_two }}"]},
    }


def private_registry_spec(name, moto_endpoint, secret_arns, tmp_path, **model):
    data = environment(
        name,
        moto_endpoint,
        "registry.example.test/team/iris:1.4",
        {
            "registry_password": secret_arns["registry_password"][0],
            "api_keys": secret_arns["api_keys"],
        },
        registry={"username": "ci", "password": "{{ vault_registry_password }}"},
        **model,
    )
    return fleet_spec(validate_config(data, source=SOURCE), tmp_path)


def user_data_texts(boto, env: str) -> list[str]:
    """The decoded user-data of every launch template version and every instance of ENV."""
    ec2 = boto("ec2")
    texts = []
    for template in ec2.describe_launch_templates()["LaunchTemplates"]:
        if env not in template["LaunchTemplateName"]:
            continue
        versions = ec2.describe_launch_template_versions(
            LaunchTemplateId=template["LaunchTemplateId"]
        )
        for version in versions["LaunchTemplateVersions"]:
            data = version["LaunchTemplateData"]
            texts.append(gzip.decompress(base64.b64decode(data["UserData"])).decode())
    reservations = ec2.describe_instances()["Reservations"]
    for instance in (i for r in reservations for i in r["Instances"]):
        attribute = ec2.describe_instance_attribute(
            InstanceId=instance["InstanceId"], Attribute="userData"
        )
        value = attribute.get("UserData", {}).get("Value")
        if value:
            texts.append(gzip.decompress(base64.b64decode(value)).decode())
    return texts


def test_no_secret_in_any_template_version_nor_instance(
    moto_endpoint, boto, env, secret_arns, tmp_path
):
    provider = make_provider(moto_endpoint, instance_refresh=False)
    spec = private_registry_spec(env, moto_endpoint, secret_arns, tmp_path)
    provider.ensure_fleet(spec)
    # A second template version: the model's settings changed.
    provider.ensure_fleet(
        private_registry_spec(env, moto_endpoint, secret_arns, tmp_path, workers=2)
    )
    texts = user_data_texts(boto, env)
    assert len(texts) >= 2 + 2  # two versions, two instances at least
    for text in texts:
        for value in (PASSWORD, *API_KEYS):
            assert value not in text
        source = json.loads(yaml.safe_load(text)["write_files"][1]["content"])
        # What the instance reads with its identity: references only.
        assert source["secrets"] == {
            "model_service_registry_password": secret_arns["registry_password"][0],
            "nginx_proxy_api_keys": secret_arns["api_keys"],
        }
    # Nor in the payload objects.
    bucket = source["payload"]["url"].removeprefix("s3://").split("/", 1)[0]
    objects = boto("s3").list_objects_v2(Bucket=bucket)["Contents"]
    assert len(objects) == 2
    for item in objects:
        body = boto("s3").get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        content = lzma.decompress(body).decode()
        assert "ci" in content and "model_service_registry_username" in content
        for value in (PASSWORD, *API_KEYS):
            assert value not in content


def test_the_instance_role_may_read_only_its_secrets_and_payloads(
    moto_endpoint, boto, env, secret_arns, tmp_path
):
    provider = make_provider(moto_endpoint, instance_refresh=False)
    spec = private_registry_spec(env, moto_endpoint, secret_arns, tmp_path)
    provider.ensure_fleet(spec)
    name = instance_identity.role_name(env, "model")
    iam = boto("iam")
    policy = iam.get_role_policy(RoleName=name, PolicyName=instance_identity.POLICY)[
        "PolicyDocument"
    ]
    resources = {
        json.dumps(statement["Action"]): statement["Resource"] for statement in policy["Statement"]
    }
    bucket = f"mlops-vm-{env}-boot-{boto('sts').get_caller_identity()['Account']}"
    assert resources == {
        '"s3:GetObject"': f"arn:aws:s3:::{bucket}/{PAYLOAD_PREFIX}*",
        '"secretsmanager:GetSecretValue"': sorted(
            [secret_arns["registry_password"][0], secret_arns["api_keys"][0]]
        ),
        '"ssm:GetParameter"': [secret_arns["api_keys"][1]],
    }
    trust = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    assert [role["RoleName"] for role in profile["Roles"]] == [name]
    [template] = [
        t
        for t in boto("ec2").describe_launch_templates()["LaunchTemplates"]
        if env in t["LaunchTemplateName"]
    ]
    [version] = boto("ec2").describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Default"]
    )["LaunchTemplateVersions"]
    assert version["LaunchTemplateData"]["IamInstanceProfile"] == {"Arn": profile["Arn"]}


def test_ecr_pulls_by_identity_with_no_password(moto_endpoint, boto, env, secret_arns, tmp_path):
    data = environment(
        env,
        moto_endpoint,
        f"{ECR_HOST}/team/iris:1.4",
        {"api_keys": secret_arns["api_keys"]},
    )
    spec = fleet_spec(validate_config(data, source=SOURCE), tmp_path)
    assert spec.instance.boot is not None and spec.instance.boot.registry_host == ECR_HOST
    make_provider(moto_endpoint, instance_refresh=False).ensure_fleet(spec)
    policy = boto("iam").get_role_policy(
        RoleName=instance_identity.role_name(env, "model"), PolicyName=instance_identity.POLICY
    )["PolicyDocument"]
    by_sid = {statement.get("Sid"): statement for statement in policy["Statement"]}
    assert by_sid["PullModelImage"]["Resource"] == (
        "arn:aws:ecr:eu-west-1:123456789012:repository/team/iris"
    )
    assert by_sid["RegistryLogin"]["Action"] == "ecr:GetAuthorizationToken"
    [text, *_] = user_data_texts(boto, env)
    source = json.loads(yaml.safe_load(text)["write_files"][1]["content"])
    assert source["registry"] == {"host": ECR_HOST}
    assert "model_service_registry_password" not in source["secrets"]


def test_a_payload_three_times_todays_provisions(moto_endpoint, boto, env, secret_arns, tmp_path):
    today = private_registry_spec(env, moto_endpoint, secret_arns, tmp_path).instance.boot
    assert today is not None
    # Incompressible filler: the payload is over three times today's.
    filler = base64.b64encode(os.urandom(3 * len(today.payload))).decode()
    spec = private_registry_spec(
        env, moto_endpoint, secret_arns, tmp_path, **{"env": {"FILLER": filler}}
    )
    assert spec.instance.boot is not None and len(spec.instance.boot.payload) > 3 * len(
        today.payload
    )
    # An emulator's addresses for the instances (as the local boot test uses them).
    provider = make_provider(
        moto_endpoint,
        instance_refresh=False,
        boot_bucket=f"payloads-{env}",
        boot_endpoint_url="http://172.18.0.1:5000",
        boot_metadata_url="http://172.18.0.1:8169",
    )
    provider.ensure_fleet(spec)
    [text, *_] = user_data_texts(boto, env)
    assert len(gzip.compress(text.encode())) < 8 * 1024
    source = json.loads(yaml.safe_load(text)["write_files"][1]["content"])
    assert source["metadata_url"] == "http://172.18.0.1:8169"
    assert set(source["endpoints"].values()) == {"http://172.18.0.1:5000"}
    url = source["payload"]["url"]
    assert url.startswith(f"s3://payloads-{env}/boot/")
    bucket, key = url.removeprefix("s3://").split("/", 1)
    assert boto("s3").head_object(Bucket=bucket, Key=key)["ContentLength"] == len(
        spec.instance.boot.payload
    )


def test_check_lists_exactly_what_the_run_does_and_destroy_removes_the_identity(
    moto_endpoint, boto, env, secret_arns, tmp_path
):
    provider = make_provider(moto_endpoint, instance_refresh=False)
    spec = private_registry_spec(env, moto_endpoint, secret_arns, tmp_path)
    changes = assert_check_equals_run(provider, spec)
    kinds = {(change.kind, change.action) for change in changes}
    assert {
        ("iam_role", "create"),
        ("instance_profile", "create"),
        ("boot_payload", "create"),
    } <= kinds
    name = instance_identity.role_name(env, "model")
    assert not boto("iam").list_instance_profiles()["InstanceProfiles"] or all(
        profile["InstanceProfileName"] != name
        for profile in boto("iam").list_instance_profiles()["InstanceProfiles"]
    )
    assert all(role["RoleName"] != name for role in boto("iam").list_roles()["Roles"])
    assert all(env not in bucket["Name"] for bucket in boto("s3").list_buckets()["Buckets"])


def test_validate_refuses_a_secret_that_does_not_exist(
    moto_endpoint, boto, env, secret_arns, tmp_path
):
    missing = secret_arns["api_keys"][0] + "-gone"
    secret_arns["api_keys"][0] = missing
    spec = private_registry_spec(env, moto_endpoint, secret_arns, tmp_path)
    with pytest.raises(ProvisionError) as raised:
        make_provider(moto_endpoint, instance_refresh=False).validate(spec, None)
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "fleet.secrets.api_keys.0" in str(raised.value) and "does not exist" in str(raised.value)
    assert boto("iam").list_roles()["Roles"] == [] or all(
        env not in role["RoleName"] for role in boto("iam").list_roles()["Roles"]
    )


def test_settings_refuse_a_scaling_group_without_secret_references(moto_endpoint, env):
    data = environment(
        env,
        moto_endpoint,
        "registry.example.test/team/iris:1.4",
        {"api_keys": ["not-an-arn"]},
        registry={"username": "ci", "password": "{{ vault_registry_password }}"},
    )
    with pytest.raises(ConfigError) as raised:
        validate_config(data, source=SOURCE)
    problems = {problem.field: problem.message for problem in raised.value.problems}
    assert "is not a Secrets Manager secret" in problems["mlops_vm.fleet.secrets.api_keys.0"]
    assert "registry password" in problems["mlops_vm.fleet.secrets.registry_password"]
    assert all(problem.file == SOURCE for problem in raised.value.problems)
