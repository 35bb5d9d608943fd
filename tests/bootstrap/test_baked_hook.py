"""A baked instance's boot hook (the fetcher run with --baked): the secrets read with the
instance's credentials from the metadata stand-in (moto in server mode; no VM needed) and
applied without Ansible: Nginx's API keys file (the role's own rendering of it:
tests/roles/test_api_keys_render.py), then a reload; a registry login and a pull only
when the image lacks the model."""

import json
import re
import stat
from pathlib import Path

import pytest
import yaml

from mlops_vm.bootstrap import fetch_script
from mlops_vm.bootstrap.baked import BOOT_HOOK, BOOT_SOURCE, baked_facts, render_baked_user_data
from mlops_vm.bootstrap.boot_source import BootPlan
from mlops_vm.bootstrap.user_data import user_data_bytes
from tests.bootstrap.test_boot_source import REGION, aws, imds, moto_url

__all__ = ["aws", "imds", "moto_url"]  # fixtures shared with the fetcher's tests

API_KEYS = ["baked-key-one-0123456789", "baked.key~two+/=-9876543210"]
MODEL = "registry.example.test/team/iris:1.4"


class Commands:
    """run_command's stand-in: records each command; `docker image inspect` answers
    whether the image holds the model."""

    def __init__(self, model_present: bool = True) -> None:
        self.model_present = model_present
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, command: list[str], stdin: str | None = None) -> int:
        self.calls.append((command, stdin))
        if command[:3] == ["docker", "image", "inspect"]:
            return 0 if self.model_present else 1
        return 0


def baked_source(tmp_path: Path, secrets: dict, **facts) -> dict:
    plan = BootPlan(payload=b"", secrets=secrets, baked={**baked_facts(MODEL), **facts})
    source = json.loads(plan.source("aws", None, region=REGION).as_json())
    source["baked"]["api_keys_file"] = str(tmp_path / "api-keys.conf")
    return source


def test_the_hook_reads_the_keys_by_identity_and_reloads_nginx(aws, moto_url, imds, tmp_path):
    arns = [
        aws("secretsmanager").create_secret(Name=f"baked-key-{i}", SecretString=key)["ARN"]
        for i, key in enumerate(API_KEYS)
    ]
    source = baked_source(tmp_path, {"nginx_proxy_api_keys": tuple(arns)})
    source |= {"metadata_url": f"http://127.0.0.1:{imds.server.server_address[1]}"}
    source["endpoints"] = {"secretsmanager": moto_url}
    commands = Commands()
    fetch_script.apply_baked(fetch_script.Aws(source), source, run=commands)
    written = tmp_path / "api-keys.conf"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    text = written.read_text()
    assert all(re.escape(key) in text for key in API_KEYS)
    # The credentials came from the metadata stand-in, not from the source.
    assert any(path.endswith(imds.role) for path in imds.served)
    assert ["systemctl", "reload-or-restart", "nginx"] in [c for c, _ in commands.calls]
    # The image holds the model: no login, no pull.
    assert not any(c[:2] in (["docker", "login"], ["docker", "pull"]) for c, _ in commands.calls)


def test_a_malformed_key_is_refused_without_showing_it(tmp_path):
    class Cloud:
        def secret(self, reference: str) -> str:
            return "bad key with spaces {}"

    source = baked_source(tmp_path, {"nginx_proxy_api_keys": ("arn:one",)})
    with pytest.raises(SystemExit) as refused:
        fetch_script.apply_baked(Cloud(), source, run=Commands())
    assert "nginx_proxy_api_keys[0]" in str(refused.value)
    assert "spaces" not in str(refused.value)
    assert not (tmp_path / "api-keys.conf").exists()


def test_a_missing_model_is_pulled_after_a_login_with_the_password_read_then(tmp_path):
    class Cloud:
        def __init__(self) -> None:
            self.read: list[str] = []

        def secret(self, reference: str) -> str:
            self.read.append(reference)
            return "registry-pw-at-boot"

    cloud = Cloud()
    source = baked_source(
        tmp_path,
        {"model_service_registry_password": "arn:pw"},
        registry_host="registry.example.test",
        registry_username="ci",
    )
    present = Commands(model_present=True)
    fetch_script.apply_baked(cloud, source, run=present)
    assert cloud.read == []  # the image holds the model: the password is not even read
    missing = Commands(model_present=False)
    fetch_script.apply_baked(cloud, source, run=missing)
    [login] = [(c, stdin) for c, stdin in missing.calls if c[:2] == ["docker", "login"]]
    assert login[0][2:] == ["registry.example.test", "--username", "ci", "--password-stdin"]
    assert login[1] == "registry-pw-at-boot"  # on stdin, never on the command line
    assert missing.calls[-1][0] == ["docker", "pull", MODEL]


def test_baked_user_data_is_a_few_hundred_bytes_plus_the_references():
    arns = tuple(
        f"arn:aws:secretsmanager:{REGION}:123456789012:secret:key-{i}-AbCdEf" for i in range(2)
    )
    plan = BootPlan(payload=b"", secrets={"nginx_proxy_api_keys": arns}, baked=baked_facts(MODEL))
    source = plan.source("aws", None, region=REGION)
    text = render_baked_user_data("prod", MODEL, "f" * 64, source)
    # The facts, the hook's command and the YAML around the source (indented): < 800 bytes.
    assert len(text.encode()) - len(source.as_json().encode()) < 800
    assert len(user_data_bytes(text, "aws")) < 1024  # as EC2 gets it
    document = yaml.safe_load(text)
    files = {entry["path"]: entry for entry in document["write_files"]}
    assert files[BOOT_SOURCE]["permissions"] == "0600"
    assert json.loads(files[BOOT_SOURCE]["content"])["secrets"]["nginx_proxy_api_keys"] == list(
        arns
    )
    [[_, _, command]] = document["runcmd"]
    assert command.startswith(f"{BOOT_HOOK} {BOOT_SOURCE} --baked && ")
    # Without references nothing is read at boot: the hook does not run.
    bare = render_baked_user_data("prod", MODEL, "f" * 64)
    assert BOOT_HOOK not in bare and BOOT_SOURCE not in bare and len(bare.encode()) < 700
