"""Names the AWS provider derives from the environment, against ELB's naming rules; and
`mlops-vm validate` refusing an environment whose ALB name AWS would refuse (no API call)."""

import re

import pytest
from typer.testing import CliRunner

from mlops_vm.cli import app
from mlops_vm.commands.exits import EXIT_BAD_INPUT
from mlops_vm.provision.aws import names
from tests.environments import make_environment

ENV_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,30}$")  # config.EnvironmentConfig.env
SUFFIXES = ("alb", "http8000", "https8443")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a" * 33, "longer than 32"),
        ("-dev-alb", "not at the start"),
        ("dev-alb-", "not at the start or the end"),
        ("dev_alb", "only letters"),
        ("internal-alb", "internal-"),
        ("Internal-api-alb", "internal-"),
    ],
)
def test_elb_refuses_these_names(name, why):
    assert why in (names.elb_name_refusal(name) or "")


@pytest.mark.parametrize(
    "env", ["a", "dev", "prod-eu-west", "x" * 31, "a-" * 15 + "b", "dev-", "internals"]
)
def test_every_allowed_env_name_makes_names_elb_takes(env):
    # Long names are shortened with a hash (elb_name), so only the reserved prefix is left
    # for validate to refuse.
    assert ENV_PATTERN.match(env)
    for suffix in SUFFIXES:
        name = names.elb_name(env, suffix)
        assert names.elb_name_refusal(name) is None, (env, name)


@pytest.mark.parametrize("env", ["internal", "internal-api", "internal-" + "x" * 22])
def test_an_env_starting_internal_makes_a_name_elb_refuses(env):
    assert names.elb_name_refusal(names.elb_name(env, "alb")) == "begins with 'internal-'"


def test_validate_refuses_it_naming_env_with_exit_2(tmp_path):
    directory = make_environment(
        tmp_path,
        "internal-api",
        {
            "provider": {
                "name": "aws",
                "region": "eu-west-1",
                # Nothing listens here: the name check comes before any call.
                "endpoint_url": "http://127.0.0.1:9",
            },
            "fleet": {"machine_type": "t3.small"},
            "model": {"registry": {"ca_file": None}},
            "load_balancer": {"publish_port": None, "certificate_arn": None},
        },
    )
    result = CliRunner().invoke(app, ["validate", str(directory), "--json"])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "env 'internal-api'" in result.output
    assert "internal-" in result.output


def test_filters_take_one_value_or_several_and_select_the_environment_by_tag():
    assert names.filters({"state": "available", "location": ["a", "b"]}) == [
        {"Name": "state", "Values": ["available"]},
        {"Name": "location", "Values": ["a", "b"]},
    ]
    assert names.env_filters("prod", "web") == [
        {"Name": f"tag:{names.TAG_ENV}", "Values": ["prod"]},
        {"Name": f"tag:{names.TAG_ROLE}", "Values": ["web"]},
    ]
    assert names.env_filters("prod") == [{"Name": f"tag:{names.TAG_ENV}", "Values": ["prod"]}]
