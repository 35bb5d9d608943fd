"""App Service's Key Vault references are checked before anything exists (issue 26), as
ECS, Lambda and Cloud Run check theirs: `validate` reads each secret with the operator's
credential through Key Vault's data plane (the fake's, tests/fakes/azure/key_vault.py) and
refuses one that does not exist, naming the field; a refusal to read is a permission error.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from mlops_vm.provision import ErrorCode, ProvisionError
from mlops_vm.services import RegistryAuth
from tests.fakes.azure import FakeArm
from tests.services.test_app_service import SECRET_VALUE, arm, make_spec, make_target, plain_http

__all__ = ["arm", "plain_http"]  # the fixtures, shared with test_app_service.py


def refusal(arm: FakeArm, secrets: dict[str, str], **changes: object) -> ProvisionError:
    spec = replace(make_spec("kv"), secrets=secrets, **changes)  # type: ignore[arg-type]
    with pytest.raises(ProvisionError) as raised:
        make_target(arm).validate(spec)
    assert SECRET_VALUE not in str(raised.value) + raised.value.hint
    return raised.value


def test_an_existing_secret_and_version_pass(arm: FakeArm) -> None:
    version = arm.add_secret("https://kv-ok.vault.azure.net/secrets/token", "value-1")
    secrets = {
        "TOKEN": "https://kv-ok.vault.azure.net/secrets/token",
        "PINNED": f"https://kv-ok.vault.azure.net/secrets/token/{version}",
    }
    make_target(arm).validate(replace(make_spec("kv"), secrets=secrets))
    reads = [r for r in arm.requests if r.path.startswith("/keyvault/kv-ok/secrets/token")]
    assert len(reads) == 2 and all(r.api_version for r in reads)


def test_a_missing_secret_is_refused_naming_the_field(arm: FakeArm) -> None:
    arm.add_secret("https://kv-some.vault.azure.net/secrets/other", "x")
    error = refusal(arm, {"API_TOKEN": "https://kv-some.vault.azure.net/secrets/api-token"})
    assert error.code is ErrorCode.INVALID_INPUT
    assert "service.secrets.API_TOKEN: secret api-token does not exist in Key Vault kv-some" in (
        str(error)
    )


def test_a_missing_version_is_refused(arm: FakeArm) -> None:
    arm.add_secret("https://kv-ver.vault.azure.net/secrets/token", "x")
    missing = "0123456789abcdef0123456789abcdef"
    error = refusal(arm, {"TOKEN": f"https://kv-ver.vault.azure.net/secrets/token/{missing}"})
    assert error.code is ErrorCode.INVALID_INPUT
    assert f"service.secrets.TOKEN: secret token/{missing} does not exist" in str(error)


def test_a_missing_vault_is_refused_naming_the_field(arm: FakeArm) -> None:
    error = refusal(arm, {"API_TOKEN": "https://kv-nowhere.vault.azure.net/secrets/api-token"})
    assert error.code is ErrorCode.INVALID_INPUT
    assert "service.secrets.API_TOKEN: Key Vault kv-nowhere does not exist" in str(error)


def test_a_secret_the_operator_may_not_read_is_a_permission_error(arm: FakeArm) -> None:
    arm.add_secret("https://kv-locked.vault.azure.net/secrets/api-token", SECRET_VALUE)
    arm.deny_secrets("kv-locked")
    error = refusal(arm, {"API_TOKEN": "https://kv-locked.vault.azure.net/secrets/api-token"})
    assert error.code is ErrorCode.PERMISSION
    assert "service.secrets.API_TOKEN: not allowed to read secret api-token" in str(error)
    assert "does not exist" not in str(error)
    assert "Key Vault Secrets User" in error.hint


def test_a_disabled_secret_is_refused(arm: FakeArm) -> None:
    arm.add_secret("https://kv-off.vault.azure.net/secrets/token", "x", enabled=False)
    error = refusal(arm, {"TOKEN": "https://kv-off.vault.azure.net/secrets/token"})
    assert error.code is ErrorCode.INVALID_INPUT
    assert "service.secrets.TOKEN: secret token of Key Vault kv-off is disabled" in str(error)


def test_the_registry_password_secret_is_checked_too(arm: FakeArm) -> None:
    error = refusal(
        arm,
        {},
        registry=RegistryAuth("puller", "unused"),
        options={
            "sku": "S1",
            "registry": "source",
            "registry_password_secret": "https://kv-reg.vault.azure.net/secrets/password",
        },
    )
    assert error.code is ErrorCode.INVALID_INPUT
    assert "service.app_service.registry_password_secret: Key Vault kv-reg" in str(error)


def test_a_bad_uri_is_refused_offline(arm: FakeArm) -> None:
    arm.clear_requests()
    error = refusal(arm, {"TOKEN": "https://kv-ok.vault.azure.net/keys/token"})
    assert "is not a Key Vault secret URI" in str(error)
    assert arm.requests == []
