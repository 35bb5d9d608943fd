"""A baked scaling group on AWS with API keys (moto in server mode): the instances read the
keys at boot with their identity through the image's boot hook. No key value in any launch
template version's or instance's user-data (only the references, a few hundred bytes
around them), the instance role reads exactly the named secrets (no payload bucket: the
image holds everything else), and `--check` lists exactly what the run does.

The image's configure step is injected (test_aws_image.Builders): nothing can SSH into moto.
"""

import json

import pytest
import yaml

from mlops_vm.bootstrap.baked import BOOT_HOOK, BOOT_SOURCE
from mlops_vm.environment.config import validate_config
from mlops_vm.environment.release_image import baked_user_data
from mlops_vm.environment.specs import fleet_spec
from mlops_vm.provision import ErrorCode, ProvisionError
from mlops_vm.provision.aws import instance_identity
from tests.check_equals_run import assert_check_equals_run
from tests.providers.test_aws import (
    aws_environment,
    boto,
    env,
    make_provider,
    moto_endpoint,
)
from tests.providers.test_aws_boot_identity import (
    API_KEYS,
    PASSWORD,
    SOURCE,
    environment,
    secret_arns,
    user_data_texts,
)
from tests.providers.test_aws_image import Builders, env_images, image_spec

__all__ = [  # fixtures shared with the provider tests, found by pytest by their names
    "aws_environment",
    "boto",
    "env",
    "moto_endpoint",
    "secret_arns",
]

MODEL_V1 = "registry.example.test/team/iris:1.4"
MODEL_V2 = "registry.example.test/team/iris:1.5"


def baked_spec(env, moto_endpoint, secret_arns, tmp_path, boto, model=MODEL_V1):
    """What the fleet step hands the provider for a baked group (bake_image by default)."""
    data = environment(env, moto_endpoint, model, {"api_keys": secret_arns["api_keys"]})
    del data["fleet"]["bake_image"]  # the default: baked
    config = validate_config(data, source=SOURCE)
    image = image_spec(env, model, Builders(boto))
    spec = fleet_spec(config, tmp_path, baked_user_data(image), image)
    assert spec.instance.boot is not None and spec.instance.boot.payload == b""
    return spec


def source_of(text: str) -> dict:
    files = {entry["path"]: entry for entry in yaml.safe_load(text)["write_files"]}
    return json.loads(files[BOOT_SOURCE]["content"])


def test_no_key_in_any_template_version_and_the_role_reads_only_the_keys(
    moto_endpoint, boto, env, secret_arns, tmp_path
):
    provider = make_provider(moto_endpoint, instance_refresh=False)
    provider.ensure_fleet(baked_spec(env, moto_endpoint, secret_arns, tmp_path, boto))
    # The next release: a new image, a second launch template version.
    provider.ensure_fleet(baked_spec(env, moto_endpoint, secret_arns, tmp_path, boto, MODEL_V2))
    texts = user_data_texts(boto, env)
    assert len(texts) >= 2 + 2  # two versions, two instances at least
    for text in texts:
        for value in (PASSWORD, *API_KEYS):
            assert value not in text
        source = source_of(text)
        # References only, read by the image's hook; nothing to fetch but them.
        assert source["secrets"] == {"nginx_proxy_api_keys": secret_arns["api_keys"]}
        assert source["payload"] is None and source["baked"]["model_image"] in (MODEL_V1, MODEL_V2)
        assert f"{BOOT_HOOK} {BOOT_SOURCE} --baked" in text
        # A few hundred bytes around the references.
        assert len(text.encode()) - len(json.dumps(source, indent=1).encode()) < 800
    name = instance_identity.role_name(env, "model")
    policy = boto("iam").get_role_policy(RoleName=name, PolicyName=instance_identity.POLICY)
    statements = policy["PolicyDocument"]["Statement"]
    assert {json.dumps(s["Action"]): s["Resource"] for s in statements} == {
        '"secretsmanager:GetSecretValue"': [secret_arns["api_keys"][0]],
        '"ssm:GetParameter"': [secret_arns["api_keys"][1]],
    }
    # No payload: no bucket was made for one.
    assert all(env not in bucket["Name"] for bucket in boto("s3").list_buckets()["Buckets"])
    [template] = [
        t
        for t in boto("ec2").describe_launch_templates()["LaunchTemplates"]
        if env in t["LaunchTemplateName"]
    ]
    [version] = boto("ec2").describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Default"]
    )["LaunchTemplateVersions"]
    profile = boto("iam").get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    assert version["LaunchTemplateData"]["IamInstanceProfile"] == {"Arn": profile["Arn"]}
    images = {i["ImageId"] for i in boto("ec2").describe_images(Owners=["self"])["Images"]}
    assert version["LaunchTemplateData"]["ImageId"] in images


def test_check_lists_exactly_what_the_baked_run_does(
    moto_endpoint, boto, env, secret_arns, tmp_path
):
    provider = make_provider(moto_endpoint, instance_refresh=False)
    spec = baked_spec(env, moto_endpoint, secret_arns, tmp_path, boto)
    changes = assert_check_equals_run(provider, spec)
    kinds = {(change.kind, change.action) for change in changes}
    assert {("image", "create"), ("iam_role", "create"), ("instance_profile", "create")} <= kinds
    assert ("boot_payload", "create") not in kinds


def test_an_ecr_model_may_be_pulled_again_by_identity(
    moto_endpoint, boto, env, secret_arns, tmp_path
):
    model = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/iris:1.4"
    spec = baked_spec(env, moto_endpoint, secret_arns, tmp_path, boto, model)
    make_provider(moto_endpoint, instance_refresh=False).ensure_fleet(spec)
    policy = boto("iam").get_role_policy(
        RoleName=instance_identity.role_name(env, "model"), PolicyName=instance_identity.POLICY
    )["PolicyDocument"]
    by_sid = {statement.get("Sid"): statement for statement in policy["Statement"]}
    assert by_sid["PullModelImage"]["Resource"].endswith(":repository/team/iris")
    [text, *_] = user_data_texts(boto, env)
    assert source_of(text)["registry"] == {"host": model.split("/")[0]}


def test_validate_refuses_a_key_reference_that_does_not_exist(
    moto_endpoint, boto, env, secret_arns, tmp_path
):
    secret_arns["api_keys"][0] += "-gone"
    spec = baked_spec(env, moto_endpoint, secret_arns, tmp_path, boto)
    with pytest.raises(ProvisionError) as raised:
        make_provider(moto_endpoint, instance_refresh=False).validate(spec, None)
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert "fleet.secrets.api_keys.0" in str(raised.value) and "does not exist" in str(raised.value)
    assert all(env not in role["RoleName"] for role in boto("iam").list_roles()["Roles"])
    assert env_images(boto, env) == []  # nothing baked either
