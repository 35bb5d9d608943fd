"""`mlops-vm` on AWS (moto server): the plan without changes, and input refused up front.

The CLI, the playbook and the provider modules run exactly as against AWS; only the
environment's endpoint_url points at moto.
"""

import boto3
import pytest

from tests.environments import cli, cli_json, make_environment
from tests.providers.cloud_fixtures import self_signed_certificate
from tests.providers.test_aws import FAST, REGION, aws_environment, moto_endpoint

__all__ = ["aws_environment", "moto_endpoint"]  # fixtures shared with the provider tests


def aws_env(root, name: str, endpoint: str, **overrides):
    cert_file, key_file = self_signed_certificate(root, f"{name}.example.com")
    settings = {
        "provider": {
            "name": "aws",
            "region": REGION,
            "endpoint_url": endpoint,
            "options": dict(FAST),
        },
        "fleet": {"count": 2, "machine_type": "t3.small", "network": {"ssh_cidr": None}},
        "tls": {"mode": "provided", "cert_file": cert_file, "key_file": key_file},
        "load_balancer": {"publish_port": None},
    }
    for section, values in overrides.items():
        settings[section] = {**settings.get(section, {}), **values}
    return make_environment(root, name, settings)


def env_vpcs(endpoint: str, region: str, env: str) -> list:
    ec2 = boto3.client("ec2", region_name=region, endpoint_url=endpoint)
    return ec2.describe_vpcs(Filters=[{"Name": "tag:mlops-vm/env", "Values": [env]}])["Vpcs"]


def test_check_lists_the_plan_and_creates_nothing(tmp_path, moto_endpoint):
    directory = aws_env(tmp_path, "awsplan", moto_endpoint)
    code, plan = cli_json("provision", str(directory), "--check")
    assert code == 0, plan
    planned = "\n".join(plan["planned"])
    assert "create vpc" in planned
    assert planned.count("create instance") == 2
    assert "load_balancer" in planned or "alb" in planned.lower()
    assert env_vpcs(moto_endpoint, REGION, "awsplan") == []


@pytest.mark.parametrize(
    ("case", "overrides", "expected"),
    [
        ("region", {"provider": {"region": "mars-north-1"}}, "mars-north-1"),
        ("type", {"fleet": {"machine_type": "t9.imaginary"}}, "t9.imaginary"),
        (
            "cert",
            {
                "load_balancer": {
                    "certificate_arn": (
                        f"arn:aws:acm:{REGION}:123456789012:certificate/"
                        "00000000-0000-0000-0000-000000000000"
                    )
                },
                "tls": {"mode": "selfsigned", "cert_file": None, "key_file": None},
            },
            "does not exist",
        ),
    ],
)
def test_input_the_cloud_would_refuse_exits_2_before_anything_exists(
    tmp_path, moto_endpoint, case, overrides, expected
):
    env = f"awsbad{case}"
    directory = aws_env(tmp_path, env, moto_endpoint, **overrides)
    proc = cli("provision", str(directory))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert expected in output
    assert "rejected by the aws provider" in output
    assert env_vpcs(moto_endpoint, REGION, env) == []
    # validate --cloud finds it as provision does; offline, only what needs no API call.
    proc = cli("validate", str(directory), "--cloud")
    assert proc.returncode == 2 and expected in proc.stdout + proc.stderr, proc.stdout
    assert cli("validate", str(directory)).returncode == 0
