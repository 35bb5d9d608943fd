"""An environment's release image: the ImageSpec the modules hand the provider (fingerprint
without secrets, keep_images, check mode), the baked scaling group's spec, and the real
configure step (ansible-playbook against the builder; its files; a failure's error)."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

import mlops_vm.provision
from mlops_vm.environment.boot_config import environment_boot_config
from mlops_vm.environment.config import validate_config
from mlops_vm.environment.release_image import ansible_configure, release_image
from mlops_vm.plan import Change
from mlops_vm.provision import FleetResult, ProvisionError
from mlops_vm.provision.model import ImageResult, ImageSpec, Instance, InstanceStatus
from tests.unit.test_provider_modules import load_module

CONFIG = {
    "env": "prod",
    "provider": {"name": "aws", "region": "eu-west-1"},
    "model": {"image": "registry.example.test/team/model:1.0"},
    "fleet": {"mode": "scaling_group", "machine_type": "t3.small", "keep_images": 4},
}
BUILDER = Instance(
    id="i-0b1", name="prod-image-builder", status=InstanceStatus.RUNNING, public_ip="203.0.113.9"
)


class RecordingProvider:
    """Records what the modules hand it."""

    name = "aws"

    def __init__(self) -> None:
        self.images: list[tuple[Any, ImageSpec, bool]] = []
        self.fleets: list[Any] = []

    def ensure_release_image(self, fleet, image, *, dry_run=False):
        self.images.append((fleet, image, dry_run))
        return ImageResult("ami-0new", "mlops-vm-prod-abc", False), [
            Change("create", "image", "mlops-vm-prod-abc")
        ]

    def validate(self, fleet, lb) -> None:
        return None

    def plan_resizes(self, spec) -> dict:
        return {}

    def converge_fleet(self, spec, lb, *, dry_run=False) -> FleetResult:
        self.fleets.append(spec)
        return FleetResult(instances=[], changes=[], network={})


def run_module(name: str, args: dict, provider, monkeypatch, capsys) -> dict:
    monkeypatch.setattr(mlops_vm.provision, "get_provider", lambda settings: provider)
    module = load_module(name)
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        module.main()
    assert exited.value.code == 0, capsys.readouterr().out
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("check_mode", [False, True])
def test_image_module_hands_the_release_image_to_the_provider(
    tmp_path: Path, monkeypatch, capsys, check_mode
):
    provider = RecordingProvider()
    args = {
        "config": CONFIG,
        "inventory_dir": str(tmp_path),
        "registry_username": "ci",
        "registry_password": "s3cret-pw",
        "_ansible_check_mode": check_mode,
    }
    result = run_module("mlops_vm_image", args, provider, monkeypatch, capsys)
    [(fleet, image, dry_run)] = provider.images
    assert dry_run is check_mode
    assert (image.env, image.release, image.keep_images) == ("prod", CONFIG["model"]["image"], 4)
    assert fleet.mode == "scaling_group"
    assert result["changes"] == ["create image mlops-vm-prod-abc"]
    assert result["image"]["fingerprint"] == image.fingerprint
    assert "s3cret-pw" not in json.dumps(result)


def test_the_fingerprint_ignores_the_password_but_not_the_model(tmp_path: Path):
    config = validate_config(CONFIG, source=tmp_path)
    one = release_image(config, tmp_path, registry_username="ci", registry_password="a")
    two = release_image(config, tmp_path, registry_username="ci", registry_password="b")
    assert one.fingerprint == two.fingerprint
    newer = validate_config(
        {**CONFIG, "model": {"image": "registry.example.test/team/model:2.0"}}, source=tmp_path
    )
    assert release_image(newer, tmp_path).fingerprint != one.fingerprint


def test_fleet_module_bakes_by_default(tmp_path: Path, monkeypatch, capsys):
    provider = RecordingProvider()
    args = {"config": CONFIG, "inventory_dir": str(tmp_path), "registry_password": "s3cret-pw"}
    run_module("mlops_vm_fleet", args, provider, monkeypatch, capsys)
    [spec] = provider.fleets
    assert spec.release_image is not None
    assert spec.release_image.release == CONFIG["model"]["image"]
    user_data = spec.instance.user_data
    assert len(user_data) < 1024 and "roles/" not in user_data
    assert "s3cret-pw" not in user_data
    # Nothing to read at boot (no key, not ECR): no identity, no hook source.
    assert spec.instance.boot is None


KEY_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod-key-AbCdEf"
# Each cloud's secret store and a key reference in it.
KEY_REFERENCES = {
    "aws": ({"name": "aws", "region": "eu-west-1"}, KEY_ARN),
    "gcp": (
        {"name": "gcp", "region": "europe-west1", "options": {"project": "proj-1"}},
        "projects/proj-1/secrets/prod-key/versions/1",
    ),
    "azure": (
        {"name": "azure", "region": "westeurope"},
        "https://kvprod.vault.azure.net/secrets/prod-key",
    ),
}


@pytest.mark.parametrize("cloud", sorted(KEY_REFERENCES))
def test_a_baked_group_with_api_keys_reads_them_by_identity(
    tmp_path: Path, monkeypatch, capsys, cloud
):
    provider = RecordingProvider()
    settings, reference = KEY_REFERENCES[cloud]
    config = {
        **CONFIG,
        "provider": settings,
        "auth": {"api_keys": ["{{ vault_key }}"]},
        "fleet": {**CONFIG["fleet"], "secrets": {"api_keys": [reference]}},
    }
    args = {"config": config, "inventory_dir": str(tmp_path), "api_keys": ["k-live-1234567890"]}
    run_module("mlops_vm_fleet", args, provider, monkeypatch, capsys)
    [spec] = provider.fleets
    assert spec.release_image is not None
    plan = spec.instance.boot
    # The references only, and where the boot hook applies them; no payload to fetch.
    assert dict(plan.secrets) == {"nginx_proxy_api_keys": (reference,)}
    assert plan.payload == b"" and plan.baked["api_keys_file"] == "/etc/nginx/api-keys.conf"
    assert "k-live-1234567890" not in spec.instance.user_data + repr(plan)


def test_the_baked_nginx_requires_a_key_it_gets_at_boot(tmp_path: Path):
    keyed = validate_config(
        {
            **CONFIG,
            "auth": {"api_keys": ["{{ k }}"]},
            "fleet": {**CONFIG["fleet"], "secrets": {"api_keys": [KEY_ARN]}},
        },
        source=tmp_path,
    )
    fake = FakeAnsible()
    release_image(keyed, tmp_path, api_keys=True, run=fake).configure(BUILDER)
    variables = yaml.safe_load(fake.files["vars.yml"])
    assert variables["nginx_proxy_api_keys_at_boot"] is True
    assert variables["mlops_vm_boot_hook_src"].endswith("bootstrap/fetch_script.py")
    assert "nginx_proxy_api_keys" not in yaml.safe_load(fake.files["secrets.yml"])
    # The keys change what the image is: another fingerprint than without them.
    plain = validate_config(CONFIG, source=tmp_path)
    assert release_image(plain, tmp_path).fingerprint != release_image(keyed, tmp_path).fingerprint


def test_the_modules_public_settings_still_bake_a_nginx_that_requires_a_key(tmp_path: Path):
    # The playbooks hand the modules the settings without auth: the api_keys flag says.
    public = validate_config(
        {**CONFIG, "fleet": {**CONFIG["fleet"], "secrets": {"api_keys": [KEY_ARN]}}},
        source=tmp_path,
    )
    fake = FakeAnsible()
    release_image(public, tmp_path, api_keys=True, run=fake).configure(BUILDER)
    assert yaml.safe_load(fake.files["vars.yml"])["nginx_proxy_api_keys_at_boot"] is True


def test_fleet_module_without_bake_image_keeps_the_cold_boot(tmp_path: Path, monkeypatch, capsys):
    provider = RecordingProvider()
    config = {**CONFIG, "fleet": {**CONFIG["fleet"], "bake_image": False}}
    args = {"config": config, "inventory_dir": str(tmp_path)}
    run_module("mlops_vm_fleet", args, provider, monkeypatch, capsys)
    [spec] = provider.fleets
    assert spec.release_image is None
    # A cold boot on AWS boots by identity: the provider renders the fetcher from the plan.
    assert spec.instance.user_data is None and spec.instance.boot is not None


class FakeAnsible:
    """subprocess.run for ansible-playbook: keeps the command and the files it was given."""

    def __init__(self, returncode: int = 0) -> None:
        self.returncode = returncode
        self.command: list[str] = []
        self.files: dict[str, str] = {}
        self.modes: dict[str, int] = {}

    def __call__(self, command: list[str], **_: Any) -> subprocess.CompletedProcess:
        self.command = command
        for path in [command[2]] + [arg[1:] for arg in command if arg.startswith("@")]:
            self.files[Path(path).name] = Path(path).read_text()
            self.modes[Path(path).name] = Path(path).stat().st_mode & 0o777
        return subprocess.CompletedProcess(command, self.returncode, "TASK [x]\nfatal: boom\n", "")


def test_configure_runs_the_builder_playbook_over_ssh(tmp_path: Path):
    config = validate_config(CONFIG, source=tmp_path)
    boot = environment_boot_config(
        config, tmp_path, registry_username="ci", registry_password="pw-1"
    )
    fake = FakeAnsible()
    ansible_configure(config, tmp_path, boot, run=fake)(BUILDER)
    assert fake.command[0] == "ansible-playbook"
    assert fake.command[3].endswith("playbooks/image-builder.yml")
    host = yaml.safe_load(fake.files["inventory.yml"])["all"]["hosts"]["builder"]
    assert host["ansible_host"] == "203.0.113.9"
    variables = yaml.safe_load(fake.files["vars.yml"])
    assert variables["model_service_image"] == "registry.example.test/team/model"
    assert "pw-1" not in fake.files["vars.yml"]
    # The host certificate is signed on the controller, with the environment's CA.
    assert variables["nginx_proxy_ca_dir"].endswith("/envs/prod/pki")
    assert yaml.safe_load(fake.files["secrets.yml"]) == {"model_service_registry_password": "pw-1"}
    assert set(fake.modes.values()) == {0o600}
    # The run's files are gone once it ended.
    assert not Path(fake.command[2]).exists()


def test_a_failed_configure_is_a_provision_error_with_the_output(tmp_path: Path):
    config = validate_config(CONFIG, source=tmp_path)
    boot = environment_boot_config(config, tmp_path)
    with pytest.raises(ProvisionError, match="fatal: boom") as failed:
        ansible_configure(config, tmp_path, boot, run=FakeAnsible(returncode=2))(BUILDER)
    assert "exit 2" in str(failed.value)


def test_keep_images_below_two_is_refused(tmp_path: Path):
    from mlops_vm.environment.config import ConfigError

    with pytest.raises(ConfigError, match="keep_images"):
        validate_config({**CONFIG, "fleet": {**CONFIG["fleet"], "keep_images": 1}}, source=tmp_path)


def test_image_build_refuses_an_environment_without_a_scaling_group(tmp_path: Path):
    from typer.testing import CliRunner

    from mlops_vm.cli import app
    from tests.environments import make_environment

    directory = make_environment(tmp_path, "fixed", {"fleet": {"mode": "fleet"}})
    result = CliRunner().invoke(app, ["image", "build", str(directory), "--json", "--check"])
    assert result.exit_code == 2, result.output
    answer = json.loads(result.output)
    assert "scaling_group" in answer["error"] + " ".join(answer["problems"])


def test_image_module_documentation_is_yaml():
    module = load_module("mlops_vm_image")
    options = yaml.safe_load(module.DOCUMENTATION)["options"]
    assert options["registry_password"]["type"] == "str"
    assert "image" in yaml.safe_load(module.RETURN)
