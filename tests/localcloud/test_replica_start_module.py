"""The module mlops_vm_replica_start (a model replica's container recreated and started in one
call, instead of community.docker.docker_container), run through ansible-runner against this
machine's Docker engine with the platform's model image: the container's inspect shows every
setting, an existing container of the name is replaced, a refusal carries the engine's reason
and never an env value, and check mode changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mlops_vm.localcloud import images
from tests.localcloud.role_modules import artifacts_text, run_role_module

pytestmark = pytest.mark.slow

IMAGE = images.model_tag("1.0")
SECRET_VARIABLE = "replica_start_secret"


@pytest.fixture(autouse=True)
def venv_ansible_first(monkeypatch):
    """ansible-runner looks for `ansible` on the PATH: the one of this venv."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")


@pytest.fixture
def name():
    """A container name of this test's own, removed afterwards."""
    container = f"replica-start-test-{uuid.uuid4().hex[:8]}"
    yield container
    subprocess.run(["docker", "rm", "--force", container], check=False, capture_output=True)


@pytest.fixture
def secret() -> str:
    return f"s3cr3t-{uuid.uuid4().hex}"


def run_module(tmp_path: Path, args: dict, *, secret: str = "", check: bool = False) -> dict:
    """The module's result on localhost. ARGS go as JSON; the secret reaches the module as an
    extra variable (`{{ replica_start_secret }}` in ARGS): the runner's env/ folder is the
    caller's input, not an artifact of the run."""
    return run_role_module(
        tmp_path,
        "mlops_vm_replica_start",
        json.dumps(args),
        extravars={SECRET_VARIABLE: secret},
        check=check,
    )


def inspect(container: str) -> dict | None:
    """docker inspect of CONTAINER, None when there is none."""
    found = subprocess.run(
        ["docker", "container", "inspect", container], capture_output=True, text=True
    )
    return json.loads(found.stdout)[0] if found.returncode == 0 else None


def create_container(container: str, *labels: str) -> str:
    """A running container named CONTAINER (the image's own command), its Id."""
    label_args = [arg for label in labels for arg in ("--label", label)]
    return subprocess.run(
        ["docker", "run", "--detach", "--name", container, *label_args, IMAGE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def replica_args(container: str, secrets_dir: Path) -> dict:
    """What the role's successor task passes, with values that differ from every default."""
    return {
        "name": container,
        "image": IMAGE,
        "restart_policy": "unless-stopped",
        "published_ports": ["127.0.0.1:0:8080"],
        "env": {
            "PORT": "8080",
            "WEB_CONCURRENCY": "1",
            "MODEL_API_TOKEN": "{{ " + SECRET_VARIABLE + " }}",
        },
        "volumes": [f"{secrets_dir}:/run/secrets:ro"],
        "cpus": 0.5,
        "memory": "384m",
        "memory_swap": "1g",
        "healthcheck": {
            "test": ["CMD", "python3", "-c", "print('ok')"],
            "interval": "1m30s",
            "timeout": "5s",
            "retries": 4,
            "start_period": "500ms",
        },
        "log_driver": "json-file",
        "log_options": {"max-size": "5m", "max-file": "2"},
        "stop_timeout": 17,
        "labels": {"mlops-vm.model-service": "replica-start-test", "mlops-vm.replica": "0"},
    }


def test_the_container_runs_with_every_setting(platform, tmp_path, name, secret):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "token").write_text("from-a-file")
    result = run_module(tmp_path / "run", replica_args(name, secrets_dir), secret=secret)
    assert not result["failed"], result
    assert result["changed"] is True
    container = inspect(name)
    # The Id returned whole, though short env values ("1", "8080") could be inside it.
    assert result["container_id"] == container["Id"]
    assert container["State"]["Running"] is True
    assert container["Config"]["Image"] == IMAGE

    config, host = container["Config"], container["HostConfig"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert (env["PORT"], env["WEB_CONCURRENCY"], env["MODEL_API_TOKEN"]) == ("8080", "1", secret)
    assert "8080/tcp" in config["ExposedPorts"]
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "0"}]}
    assert host["Binds"] == [f"{secrets_dir}:/run/secrets:ro"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 384 * 1024**2
    assert host["MemorySwap"] == 1024**3
    assert config["Healthcheck"] == {
        "Test": ["CMD", "python3", "-c", "print('ok')"],
        "Interval": 90 * 10**9,
        "Timeout": 5 * 10**9,
        "Retries": 4,
        "StartPeriod": 500 * 10**6,
    }
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "5m", "max-file": "2"}}
    assert config["Labels"]["mlops-vm.model-service"] == "replica-start-test"
    assert config["Labels"]["mlops-vm.replica"] == "0"
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert config["StopTimeout"] == 17
    # The bind is read-only, and what the container sees is the host's file.
    read = subprocess.run(
        ["docker", "exec", name, "cat", "/run/secrets/token"], capture_output=True, text=True
    )
    assert read.stdout == "from-a-file"
    assert secret not in json.dumps(result)
    assert secret not in artifacts_text(tmp_path / "run")


def test_a_shell_string_test_runs_as_cmd_shell_and_omitted_options_are_not_sent(
    platform, tmp_path, name
):
    result = run_module(
        tmp_path,
        {"name": name, "image": IMAGE, "healthcheck": {"test": "exit 0", "interval": "2s"}},
    )
    assert not result["failed"], result
    container = inspect(name)
    assert container["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "exit 0"]
    assert container["Config"]["Healthcheck"]["Interval"] == 2 * 10**9
    host = container["HostConfig"]
    # no_defaults: the engine's own defaults, nothing the module made up.
    assert (host["NanoCpus"], host["Memory"], host["MemorySwap"]) == (0, 0, 0)
    assert host["RestartPolicy"]["Name"] in ("", "no")
    assert not host["PortBindings"] and not host["Binds"]
    assert "StopTimeout" not in container["Config"] or container["Config"]["StopTimeout"] is None


def test_an_existing_container_of_the_name_is_replaced(platform, tmp_path, name):
    old_id = create_container(name, "mlops-vm.release=old")
    result = run_module(
        tmp_path, {"name": name, "image": IMAGE, "labels": {"mlops-vm.release": "new"}}
    )
    assert not result["failed"], result
    assert result["changed"] is True
    container = inspect(name)
    assert container["Id"] == result["container_id"] != old_id
    assert container["Config"]["Labels"]["mlops-vm.release"] == "new"
    assert container["State"]["Running"] is True
    assert inspect(old_id) is None


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ({"memory": "4m"}, "Minimum memory limit allowed is 6MB"),
        # (An unknown driver is refused too, after the engine's plugin lookup gave up: 15 s.)
        (
            {"log_driver": "json-file", "log_options": {"max-sizes": "10m"}},
            "unknown log opt 'max-sizes' for json-file log driver",
        ),
        # No NVIDIA runtime here: the device request reaches the engine, which names its driver.
        (
            {"device_requests": [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}]},
            'could not select device driver "nvidia"',
        ),
    ],
    ids=["memory-below-minimum", "unknown-log-option", "gpus-without-runtime"],
)
def test_a_refusal_carries_the_engines_reason_and_no_env_value(
    platform, tmp_path, name, secret, setting, reason
):
    args = {
        "name": name,
        "image": IMAGE,
        "env": {"PORT": "8080", "MODEL_API_TOKEN": "{{ " + SECRET_VARIABLE + " }}"},
        **setting,
    }
    result = run_module(tmp_path, args, secret=secret)
    assert result["failed"], result
    assert result["msg"].startswith(f"Cannot start {name} from {IMAGE}: "), result["msg"]
    assert reason in result["msg"]
    assert secret not in json.dumps(result)
    assert secret not in artifacts_text(tmp_path)


def test_an_env_value_the_engine_repeats_in_its_refusal_is_masked(platform, tmp_path, name, secret):
    # The engine answers "invalid environment variable: =<value>" to a variable without a name.
    result = run_module(
        tmp_path,
        {"name": name, "image": IMAGE, "env": {"": "{{ " + SECRET_VARIABLE + " }}"}},
        secret=secret,
    )
    assert result["failed"], result
    assert "invalid environment variable: =********" in result["msg"], result["msg"]
    assert secret not in json.dumps(result)
    assert secret not in artifacts_text(tmp_path)
    assert inspect(name) is None


def test_check_mode_changes_nothing(platform, tmp_path, name):
    old_id = create_container(name, "mlops-vm.release=old")
    result = run_module(
        tmp_path / "existing",
        {"name": name, "image": IMAGE, "labels": {"mlops-vm.release": "new"}},
        check=True,
    )
    assert not result["failed"], result
    assert result["changed"] is True
    assert "container_id" not in result
    container = inspect(name)
    assert container["Id"] == old_id
    assert container["State"]["Running"] is True
    assert container["Config"]["Labels"]["mlops-vm.release"] == "old"

    absent = f"{name}-absent"
    result = run_module(tmp_path / "absent", {"name": absent, "image": IMAGE}, check=True)
    assert not result["failed"], result
    assert result["changed"] is True
    assert inspect(absent) is None


def test_the_ready_command_runs_after_the_start_and_what_is_in_the_way_goes_first(
    platform, tmp_path, name, secret
):
    leftover = f"{name}-old"
    create_container(leftover)
    try:
        # The command sees the container already running (one round trip: start, then wait),
        # and its output comes back with the secret env value masked.
        result = run_module(
            tmp_path,
            {
                "name": name,
                "image": IMAGE,
                "env": {"PORT": "8080", "MODEL_API_TOKEN": "{{ " + SECRET_VARIABLE + " }}"},
                "remove": [leftover],
                "ready_command": [
                    "sh",
                    "-c",
                    f"docker top {name} > /dev/null && echo true; "
                    f"docker exec {name} printenv MODEL_API_TOKEN; echo 127.0.0.1:8080; exit 3",
                ],
            },
            secret=secret,
        )
    finally:
        subprocess.run(["docker", "rm", "--force", leftover], check=False, capture_output=True)
    assert not result["failed"], result
    assert (result["changed"], result["ready_rc"]) == (True, 3)
    # The secret masked; a short setting (the port) is not, or the reason would be garbled.
    assert result["ready_output"].split() == ["true", "********", "127.0.0.1:8080"], result
    assert inspect(name)["Id"] == result["container_id"]
    assert inspect(leftover) is None
    assert secret not in json.dumps(result)


def test_without_start_only_the_ready_command_runs(platform, tmp_path, name):
    staged_id = create_container(name)
    result = run_module(
        tmp_path,
        {"name": name, "image": IMAGE, "start": False, "ready_command": ["echo", "ready"]},
    )
    assert not result["failed"], result
    assert (result["changed"], result["ready_rc"], result["ready_output"].strip()) == (
        False,
        0,
        "ready",
    )
    assert "container_id" not in result
    # The staged container was neither removed nor recreated.
    assert inspect(name)["Id"] == staged_id


def test_check_mode_runs_no_ready_command(platform, tmp_path, name):
    marker = tmp_path / "ran"
    result = run_module(
        tmp_path / "run",
        {"name": name, "image": IMAGE, "ready_command": ["touch", str(marker)]},
        check=True,
    )
    assert not result["failed"], result
    assert (result["changed"], result["ready_rc"]) == (True, 0)
    assert not marker.exists()
    assert inspect(name) is None
