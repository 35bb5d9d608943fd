"""`mlops-vm image build` and a baked scaling group's `provision` on AWS (moto server), in
check mode: the CLI, playbooks/image.yml and the modules run as against AWS and plan the
release image; nothing is created. (Baking for real needs SSH into the builder: the
providers' tests inject that step, tests/e2e/test_image_builder.py runs it on a local VM.)
"""

import boto3

from tests.e2e.test_aws_cli import aws_env
from tests.environments import cli_json
from tests.providers.test_aws import REGION, aws_environment, moto_endpoint

__all__ = ["aws_environment", "moto_endpoint"]  # fixtures shared with the provider tests

SCALING = {
    "mode": "scaling_group",  # baked: fleet.bake_image's default
    "keep_images": 2,
    "autoscaling": {"min_size": 1, "max_size": 3},
}


def env_images(endpoint: str, env: str) -> list:
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)
    filters = [{"Name": "tag:mlops-vm/env", "Values": [env]}]
    return ec2.describe_images(Owners=["self"], Filters=filters)["Images"]


def test_image_build_check_plans_the_image_and_creates_nothing(tmp_path, moto_endpoint):
    directory = aws_env(tmp_path, "bakeplan", moto_endpoint, fleet=SCALING)
    code, plan = cli_json("image", "build", str(directory), "--check")
    assert code == 0, plan
    planned = "\n".join(plan["planned"])
    assert "create image mlops-vm-bakeplan-" in planned, planned
    assert env_images(moto_endpoint, "bakeplan") == []


def test_provision_check_of_a_baked_group_plans_image_and_template(tmp_path, moto_endpoint):
    directory = aws_env(tmp_path, "bakeprov", moto_endpoint, fleet=SCALING)
    code, plan = cli_json("provision", str(directory), "--check")
    assert code == 0, plan
    planned = "\n".join(plan["planned"])
    assert "create image mlops-vm-bakeprov-" in planned, planned
    assert "create launch_template" in planned
    assert env_images(moto_endpoint, "bakeprov") == []
