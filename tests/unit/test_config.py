"""The environment model: what it accepts, and how it locates what it refuses."""

from pathlib import Path

import pytest

from mlops_vm.environment.config import ConfigError
from mlops_vm.environment.load import load_environment
from mlops_vm.environment.specs import fleet_spec, load_balancer_spec, provider_settings
from tests.environments import make_environment


@pytest.mark.parametrize("env", ["local", "dev", "prod"])
def test_shipped_environments_are_valid(env):
    loaded = load_environment(env)
    assert loaded.config.env == env
    spec = fleet_spec(loaded.config, loaded.inventory_dir)
    assert spec.count >= 1
    assert load_balancer_spec(loaded.config, loaded.inventory_dir).health_path == "/healthz"
    assert provider_settings(loaded.config).name == loaded.config.provider.name


def test_prod_is_a_scaling_group_with_both_policies():
    spec = fleet_spec(load_environment("prod").config, load_environment("prod").inventory_dir)
    assert spec.mode == "scaling_group"
    assert spec.autoscaling.target_cpu_percent == 60
    assert spec.autoscaling.target_requests_per_instance == 1000


def test_every_problem_is_reported_with_its_line(tmp_path):
    directory = make_environment(
        tmp_path,
        "many",
        {
            "fleet": {"count": 0, "autoscaling": {"min_size": 5, "max_size": 2}},
            "model": {"replicas": "two"},
        },
    )
    with pytest.raises(ConfigError) as raised:
        load_environment(directory)
    fields = {problem.field for problem in raised.value.problems}
    assert {
        "mlops_vm.fleet.count",
        "mlops_vm.model.replicas",
        "mlops_vm.fleet.autoscaling",
    } <= fields
    source = directory / "group_vars" / "all" / "mlops_vm.yml"
    lines = source.read_text().splitlines()
    for problem in raised.value.problems:
        assert problem.file == source
        assert problem.line is not None
        key = problem.field.rsplit(".", 1)[-1]
        assert key in lines[problem.line - 1], (problem, lines[problem.line - 1])


def test_templates_are_refused_outside_secret_fields(tmp_path):
    directory = make_environment(tmp_path, "jinja", {"fleet": {"machine_type": "{{ size }}"}})
    with pytest.raises(ConfigError, match=r"mlops_vm\.fleet\.machine_type: Jinja templates"):
        load_environment(directory)


def test_unknown_keys_are_refused(tmp_path):
    directory = make_environment(tmp_path, "typo", {"fleet": {"cuont": 3}})
    with pytest.raises(ConfigError, match=r"mlops_vm\.fleet\.cuont: Extra inputs"):
        load_environment(directory)


def test_static_needs_hosts_and_local_needs_a_port(tmp_path):
    static = make_environment(tmp_path, "nohosts", {"provider": {"name": "static"}})
    with pytest.raises(ConfigError, match=r"fleet\.hosts is required"):
        load_environment(static)
    local = make_environment(tmp_path, "noport", {"load_balancer": {"publish_port": None}})
    with pytest.raises(ConfigError, match="publish_port is required"):
        load_environment(local)


@pytest.mark.parametrize("batch", [1, "2", "25%", "100%"])
def test_release_batch_takes_a_count_or_a_share(tmp_path, batch):
    directory = make_environment(tmp_path, "batch", {"release": {"batch": batch}})
    assert load_environment(directory).config.release.batch == str(batch)


@pytest.mark.parametrize("batch", [0, "0%", "150%", "half", -1])
def test_release_batch_refuses_what_serial_cannot_take(tmp_path, batch):
    directory = make_environment(tmp_path, "batch", {"release": {"batch": batch}})
    with pytest.raises(ConfigError) as raised:
        load_environment(directory)
    [problem] = raised.value.problems
    assert problem.field == "mlops_vm.release.batch"
    assert problem.line is not None


def test_a_relative_inventory_path_is_made_absolute_for_the_runner(tmp_path, monkeypatch):
    # ansible-runner runs from its own folder: a relative inventory would not be found there
    # and the playbook would fail with "'mlops_vm' is undefined".
    from mlops_vm.runner import PlaybookRun

    make_environment(tmp_path, "relative", {"model": {"registry": {"ca_file": None}}})
    monkeypatch.chdir(tmp_path)
    loaded = load_environment("./relative")
    assert loaded.inventory_dir.is_absolute()
    assert loaded.inventory_dir == tmp_path / "relative"
    assert loaded.config.env == "relative"

    seen = {}

    class Finished:
        status, rc = "successful", 0

        def run(self) -> None:
            pass

    def init_runner(**kwargs):
        seen.update(kwargs)
        return Finished()

    monkeypatch.setattr("ansible_runner.interface.init_runner", init_runner)
    monkeypatch.setattr("mlops_vm.paths.STATE_DIR", tmp_path / "state")
    runner = PlaybookRun(
        env="relative", inventory_dir=loaded.inventory_dir, playbook="playbooks/provision.yml"
    )
    runner.run()
    assert seen["inventory"] == str(tmp_path / "relative")
    assert Path(seen["inventory"]).is_absolute()


def keyed_group(provider: dict, **fleet) -> dict:
    return {
        "provider": provider,
        "fleet": {"mode": "scaling_group", "machine_type": "m", **fleet},
        "auth": {"api_keys": ["{{ vault_api_key }}"]},
    }


@pytest.mark.parametrize(
    ("provider", "reference"),
    [
        (
            {"name": "aws", "region": "eu-west-1"},
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:key-AbCdEf",
        ),
        (
            {"name": "gcp", "region": "europe-west1", "options": {"project": "proj-1"}},
            "projects/proj-1/secrets/key/versions/2",
        ),
        (
            {"name": "azure", "region": "westeurope"},
            "https://kvkeyed.vault.azure.net/secrets/key",
        ),
    ],
    ids=["aws", "gcp", "azure"],
)
def test_a_baked_group_with_api_keys_needs_their_references(tmp_path, provider, reference):
    # Baking is the default: the instances read the keys at boot, so each is named.
    directory = make_environment(tmp_path, "keyed", keyed_group(provider))
    with pytest.raises(ConfigError) as raised:
        load_environment(directory)
    [problem] = raised.value.problems
    assert problem.field == "mlops_vm.fleet.secrets.api_keys"
    assert problem.file == directory / "group_vars" / "all" / "mlops_vm.yml"
    given = make_environment(
        tmp_path, "given", keyed_group(provider, secrets={"api_keys": [reference]})
    )
    config = load_environment(given).config
    assert config.fleet.bake_image is True
    plan = fleet_spec(config, given).instance.boot
    assert plan is not None and dict(plan.secrets) == {"nginx_proxy_api_keys": (reference,)}
    assert plan.payload == b"" and plan.baked  # the image holds the rest
