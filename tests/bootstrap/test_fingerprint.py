"""The fingerprint of a baked image: roles, non-secret variables and model image in it,
secrets out of it; and the user-data of an instance booting from a baked image."""

import shutil
from pathlib import Path

import pytest

from mlops_vm import paths
from mlops_vm.bootstrap import BootConfig
from mlops_vm.bootstrap.baked import render_baked_user_data
from mlops_vm.bootstrap.fingerprint import fingerprint
from mlops_vm.bootstrap.user_data import render_user_data

IMAGE = "registry.example.test/team/model:1.0"


def boot(image: str = IMAGE, **changes) -> BootConfig:
    return BootConfig.for_model(
        image, registry_username="ci", registry_password="hunter2", **changes
    )


@pytest.fixture
def roles_copy(tmp_path: Path) -> Path:
    target = tmp_path / "roles"
    shutil.copytree(paths.PROJECT_DIR / "roles", target)
    return target


def test_same_inputs_same_fingerprint():
    assert fingerprint(boot()) == fingerprint(boot())
    assert len(fingerprint(boot())) == 64


def test_secrets_do_not_change_it():
    other = BootConfig.for_model(
        IMAGE,
        registry_username="ci",
        registry_password="another-password",
        secret_role_vars={"nginx_proxy_api_keys": ["k-123"]},
    )
    assert fingerprint(other) == fingerprint(boot())


def test_model_image_and_settings_change_it():
    assert fingerprint(boot("registry.example.test/team/model:2.0")) != fingerprint(boot())
    assert fingerprint(boot(replicas=3)) != fingerprint(boot())


def test_a_role_file_changes_it(roles_copy: Path):
    before = fingerprint(boot(roles_dir=roles_copy))
    tasks = roles_copy / "nginx_proxy" / "tasks" / "main.yml"
    tasks.write_text(tasks.read_text() + "\n# a comment\n")
    assert fingerprint(boot(roles_dir=roles_copy)) != before


def test_an_included_role_changes_it(roles_copy: Path):
    # nginx_proxy includes tls_certificate: a change there is baked in too.
    before = fingerprint(boot(roles_dir=roles_copy))
    defaults = roles_copy / "tls_certificate" / "defaults" / "main.yml"
    defaults.write_text(defaults.read_text() + "\ntls_certificate_extra: 1\n")
    assert fingerprint(boot(roles_dir=roles_copy)) != before


def test_baked_user_data_is_small_next_to_a_cold_boot():
    baked = render_baked_user_data("prod", IMAGE, fingerprint(boot()))
    cold = render_user_data(boot(), cloud="gcp")
    assert len(baked.encode()) < 1024 < len(cold.encode())
    assert "hunter2" not in baked and "roles/" not in baked
    assert "MLOPS_VM_RELEASE=" + IMAGE in baked
