"""The edge settings: API keys only from secrets, the rate limit's default and where it is
counted, and which proxies the model hosts believe about the client's address."""

import pytest
import yaml

from mlops_vm.bootstrap.payload import read_payload
from mlops_vm.environment.boot_config import environment_boot_plan
from mlops_vm.environment.config import ConfigError
from mlops_vm.environment.edge import host_rate_limit, lb_rate_limit, trusted_proxies
from mlops_vm.environment.load import load_environment
from tests.environments import make_environment

KEY_REFERENCE = "{{ vault_mlops_vm_api_key }}"


def test_api_keys_are_taken_as_references_to_secrets(tmp_path):
    directory = make_environment(
        tmp_path, "keys", {"auth": {"api_keys": [KEY_REFERENCE, "{{ vault_next_key }}"]}}
    )
    assert load_environment(directory).config.auth.api_keys[0] == KEY_REFERENCE


def test_an_api_key_written_in_the_clear_is_refused_with_its_line(tmp_path):
    directory = make_environment(
        tmp_path, "clear", {"auth": {"api_keys": [KEY_REFERENCE, "s3cr3t-key-in-git-0123456789"]}}
    )
    with pytest.raises(ConfigError) as raised:
        load_environment(directory)
    (problem,) = raised.value.problems
    assert problem.field == "mlops_vm.auth.api_keys.1"
    assert "must come from a secret" in problem.message
    assert "s3cr3t" not in str(raised.value)
    source = directory / "group_vars" / "all" / "mlops_vm.yml"
    assert problem.file == source
    assert "s3cr3t-key-in-git" in source.read_text().splitlines()[problem.line - 1]


def test_the_default_rate_limit_lets_a_client_send_100_per_second_with_a_burst_of_200(tmp_path):
    config = load_environment(make_environment(tmp_path, "rate")).config
    assert config.load_balancer.rate_limit.requests_per_second == 100
    assert config.load_balancer.rate_limit.burst == 200
    off = make_environment(tmp_path, "off", {"load_balancer": {"rate_limit": None}})
    assert load_environment(off).config.load_balancer.rate_limit is None
    bad = make_environment(tmp_path, "bad", {"load_balancer": {"rate_limit": {"burst": -1}}})
    with pytest.raises(ConfigError, match=r"mlops_vm\.load_balancer\.rate_limit\.burst"):
        load_environment(bad)


def test_the_local_lb_counts_per_client_and_its_model_hosts_do_not():
    allowance = {"requests_per_second": 100, "burst": 200}
    assert lb_rate_limit(allowance) == {
        "haproxy_lb_rate_limit_requests": 1200,  # 10 s at 100/s, plus the burst
        "haproxy_lb_rate_limit_period": "10s",
    }
    assert host_rate_limit("local", allowance)["nginx_proxy_rate_limit_enabled"] is False
    assert lb_rate_limit(None)["haproxy_lb_rate_limit_requests"] == 0


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure", "static"])
def test_behind_a_cloud_lb_each_model_host_counts(provider):
    limit = host_rate_limit(provider, {"requests_per_second": 30, "burst": 60})
    assert limit == {
        "nginx_proxy_rate_limit_enabled": True,
        "nginx_proxy_rate_limit": "30r/s",
        "nginx_proxy_rate_limit_burst": 60,
    }
    assert host_rate_limit(provider, None)["nginx_proxy_rate_limit_enabled"] is False


def test_trusted_proxies_are_the_lb_networks_only():
    assert trusted_proxies("aws", "10.42.0.0/16", "203.0.113.5") == ["10.42.0.0/16"]
    assert trusted_proxies("azure", "10.1.0.0/16") == ["10.1.0.0/16"]
    # Google's front ends connect from their own ranges and add the forwarding rule's address.
    assert trusted_proxies("gcp", "10.42.0.0/16", "34.1.2.3") == [
        "10.42.0.0/16",
        "35.191.0.0/16",
        "130.211.0.0/22",
        "34.1.2.3/32",
    ]


def test_scaling_group_instances_get_the_same_edge_settings(tmp_path):
    key_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-key-Ab12Cd"
    password_arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/registry/password"
    directory = make_environment(
        tmp_path,
        "boot",
        {
            "provider": {"name": "aws", "region": "eu-west-1"},
            "fleet": {
                "mode": "scaling_group",
                "machine_type": "t3.small",
                "image": "ami-123",
                "bake_image": False,  # the payload a cold boot fetches
                "secrets": {"api_keys": [key_arn], "registry_password": password_arn},
            },
            "load_balancer": {"publish_port": None, "rate_limit": {"requests_per_second": 7}},
            "auth": {"api_keys": [KEY_REFERENCE]},
        },
    )
    loaded = load_environment(directory)
    plan = environment_boot_plan(loaded.config, loaded.inventory_dir)
    assert plan is not None
    files = read_payload(plan.payload)
    role_vars = yaml.safe_load(files["vars.yml"][1])
    assert role_vars["nginx_proxy_real_ip_from"] == ["10.42.0.0/16"]
    assert role_vars["nginx_proxy_rate_limit_enabled"] is True
    assert role_vars["nginx_proxy_rate_limit"] == "7r/s"
    # The keys are secrets: the instances read them at boot, the payload has none.
    assert "secrets.yml" not in files
    assert plan.secrets["nginx_proxy_api_keys"] == (key_arn,)
    assert plan.secrets["model_service_registry_password"] == password_arn
    assert "-e @/opt/mlops-vm/boot/secrets.yml" in files["run.sh"][1].decode()
