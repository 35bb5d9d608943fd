"""The module mlops_vm_model_image (the model hosts' pull and listing in one round trip),
run through ansible-runner against this machine's Docker engine and the platform registry:
a refused login names the registry and never shows the password, a missing tag is not a
login failure, check mode pulls nothing, the listing has the Engine API's shape, and the
release record comes back in the same call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mlops_vm.localcloud import registry
from tests.localcloud.role_modules import artifacts_text, run_role_module

pytestmark = pytest.mark.slow

REPOSITORY = f"{registry.HOST_ADDRESS}/mlops-vm/model-service"
LABEL = "mlops-vm.model-service"


@pytest.fixture(autouse=True)
def venv_ansible_first(monkeypatch):
    """ansible-runner looks for `ansible` on the PATH: the one of this venv."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def run_module(tmp_path: Path, args: dict, *, password: str = "", check: bool = False) -> dict:
    """The module's result on localhost; the password reaches it as an extra variable
    (the runner's env/ folder is the caller's input, not an artifact of the run)."""
    module_args = " ".join(f"{key}={value}" for key, value in args.items())
    if password:
        module_args += " password={{ model_image_password }}"
    return run_role_module(
        tmp_path,
        "mlops_vm_model_image",
        module_args,
        extravars={"model_image_password": password},
        check=check,
    )


def local_image_id(reference: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", reference],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def login(creds: registry.Credentials) -> dict:
    return {"registry": registry.HOST_ADDRESS, "username": creds.username}


def test_a_refused_login_names_the_registry_and_never_shows_the_password(platform, tmp_path):
    wrong = f"wrong-{uuid.uuid4().hex}"
    result = run_module(
        tmp_path,
        {"image": REPOSITORY, "tag": "1.0", "containers_label": f"{LABEL}=x", **login(platform)},
        password=wrong,
    )
    assert result["failed"], result
    assert f"The registry {registry.HOST_ADDRESS} refused the login of" in result["msg"]
    assert platform.username in result["msg"]
    assert wrong not in json.dumps(result)
    assert wrong not in artifacts_text(tmp_path)


def test_the_right_login_pulls_and_returns_the_image_id(platform, tmp_path):
    result = run_module(
        tmp_path,
        {"image": REPOSITORY, "tag": "1.0", "containers_label": f"{LABEL}=x", **login(platform)},
        password=platform.password,
    )
    assert not result["failed"], result
    assert result["pulled"] is True
    # The tag was there already, with the registry's image: nothing changed.
    assert result["changed"] is False
    assert result["image_id"] == local_image_id(f"{REPOSITORY}:1.0")
    assert platform.password not in artifacts_text(tmp_path)


def test_a_missing_tag_is_a_failed_pull_not_a_refused_login(platform, tmp_path):
    result = run_module(
        tmp_path,
        {
            "image": REPOSITORY,
            "tag": "9.9-missing",
            "containers_label": f"{LABEL}=x",
            **login(platform),
        },
        password=platform.password,
    )
    assert result["failed"], result
    assert result["msg"].startswith(f"Cannot pull {REPOSITORY}:9.9-missing: "), result["msg"]
    assert "refused the login" not in result["msg"]


def test_check_mode_pulls_nothing_and_reads_the_image_on_the_host(platform, tmp_path):
    # A wrong password: a pull would fail, so the module must not have asked the registry.
    present = run_module(
        tmp_path / "present",
        {"image": REPOSITORY, "tag": "1.0", "containers_label": f"{LABEL}=x", **login(platform)},
        password="not-the-password",
        check=True,
    )
    assert not present["failed"], present
    assert (present["pulled"], present["changed"]) == (False, False)
    assert present["image_id"] == local_image_id(f"{REPOSITORY}:1.0")

    absent = run_module(
        tmp_path / "absent",
        {"image": REPOSITORY, "tag": "9.9-missing", "containers_label": f"{LABEL}=x"},
        check=True,
    )
    assert not absent["failed"], absent
    # Nothing there: the run would pull, so the plan says it would change.
    assert (absent["pulled"], absent["changed"], absent["image_id"]) == (False, True, "")


def test_the_listing_has_the_engine_api_shape_and_only_the_services_containers(platform, tmp_path):
    service = f"pull-test-{uuid.uuid4().hex[:8]}"
    name = f"{service}-0"
    image = f"{REPOSITORY}:1.0"
    other = f"{service}-other"
    for container, label in ((name, service), (other, f"{service}-not")):
        subprocess.run(
            [
                *("docker", "create", "--name", container, "--label", f"{LABEL}={label}"),
                *("--label", "mlops-vm.replica=0", image),
            ],
            check=True,
            capture_output=True,
        )
    try:
        result = run_module(
            tmp_path,
            {
                "image": REPOSITORY,
                "tag": "1.0",
                "pull": "not_present",
                "containers_label": f"{LABEL}={service}",
            },
        )
    finally:
        subprocess.run(["docker", "rm", "-f", name, other], check=True, capture_output=True)
    assert not result["failed"], result
    assert result["pulled"] is False  # not_present, and it is there
    [listed] = result["containers"]
    assert listed["Names"] == [f"/{name}"]
    assert listed["State"] == "created"
    assert (listed["Labels"][LABEL], listed["Labels"]["mlops-vm.replica"]) == (service, "0")
    assert listed["Image"] == image


def test_credentials_go_only_to_the_registry_they_are_for(platform, tmp_path):
    """The right password, but for another registry: the pull goes without it, and the
    registry's refusal is not reported as a refused login."""
    result = run_module(
        tmp_path,
        {
            "image": REPOSITORY,
            "tag": "1.0",
            "containers_label": f"{LABEL}=x",
            "registry": "registry.example.com:5443",
            "username": platform.username,
        },
        password=platform.password,
    )
    assert result["failed"], result
    assert result["msg"].startswith(f"Cannot pull {REPOSITORY}:1.0: "), result["msg"]
    assert "refused the login" not in result["msg"]


@pytest.mark.parametrize("check", [False, True], ids=["run", "check-mode"])
def test_the_release_record_is_read_in_the_same_call(platform, tmp_path, check):
    record = {"current": {"image": f"{REPOSITORY}:1.0", "fingerprint": "abc"}, "previous": None}
    record_file = tmp_path / "release.json"
    record_file.write_text(json.dumps(record))
    common = {
        "image": REPOSITORY,
        "tag": "1.0",
        "pull": "not_present",
        "containers_label": f"{LABEL}=x",
    }
    found = run_module(tmp_path / "found", {**common, "record_file": record_file}, check=check)
    assert not found["failed"], found
    assert found["record"] == record
    missing = run_module(
        tmp_path / "missing", {**common, "record_file": tmp_path / "none.json"}, check=check
    )
    assert not missing["failed"], missing
    assert missing["record"] is None


def test_a_release_record_that_is_not_json_fails_naming_the_file(platform, tmp_path):
    record_file = tmp_path / "release.json"
    record_file.write_text("{not json")
    result = run_module(
        tmp_path / "run",
        {"image": REPOSITORY, "tag": "1.0", "pull": "not_present", "containers_label": f"{LABEL}=x",
         "record_file": record_file},
    )  # fmt: skip
    assert result["failed"], result
    assert result["msg"].startswith(f"Cannot read the release record {record_file}: "), result
