"""The user-data renderer: content, size limits, determinism, secrets (no VM needed)."""

import ast
import base64
import gzip
import logging
import os
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml

from mlops_vm import paths
from mlops_vm.bootstrap import (
    USER_DATA_LIMITS,
    BootConfig,
    UserDataTooLarge,
    check_size,
    render_user_data,
)
from mlops_vm.bootstrap.config import split_image_ref
from mlops_vm.bootstrap.payload import (
    UNREAD_META_KEYS,
    build_payload,
    entries,
    read_payload,
)
from mlops_vm.bootstrap.user_data import GZIPPED_CLOUDS, PAYLOAD, unpack_code, user_data_bytes

ROLES_DIR = paths.PROJECT_DIR / "roles"
VENV_BIN = Path(sys.executable).parent
PASSWORD = "s3cret-{{ not a template }}-pässword"
CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBfzCCASWgAwIBAgIUbW9ja2NhY2VydGlmaWNhdGVmb3J0ZXN0czAKBggqhkjOPQQDAjAcMRowGAYDVQQDDBFt
bG9wcy12bSBsb2NhbCBDQTAeFw0yNjAxMDEwMDAwMDBaFw0zNjAxMDEwMDAwMDBaMBwxGjAYBgNVBAMMEW1sb3Bz
LXZtIGxvY2FsIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEq1Zb4zH1m0Y8WlYx2k3b5cYJ4nqfA1yQ3x3v
-----END CERTIFICATE-----"""


def model_boot(**options) -> BootConfig:
    return BootConfig.for_model(
        "registry.example.test:5443/team/iris:1.4",
        registry_username="ci",
        registry_password=PASSWORD,
        registry_ca_cert=CA_PEM,
        replicas=3,
        **options,
    )


def payload_files(user_data: str) -> dict[str, tuple[int, bytes]]:
    document = yaml.safe_load(user_data)
    [entry] = document["write_files"]
    encoded = "".join(entry["content"].split())
    return read_payload(base64.b85decode(encoded))


def test_user_data_is_cloud_config_that_unpacks_and_runs_the_payload():
    user_data = render_user_data(model_boot())
    assert user_data.startswith("#cloud-config\n")
    document = yaml.safe_load(user_data)
    [entry] = document["write_files"]
    assert (entry["path"], entry["permissions"]) == (PAYLOAD, "0600")
    assert document["runcmd"][-1] == ["sh", "/opt/mlops-vm/boot/run.sh"]
    files = payload_files(user_data)
    assert {"run.sh", "site.yml", "vars.yml", "secrets.yml"} <= set(files)
    assert files["run.sh"][0] == 0o700 and files["secrets.yml"][0] == 0o600


def test_the_instance_unpacker_writes_exactly_the_payload(tmp_path):
    boot = model_boot()
    user_data = render_user_data(boot)
    [entry] = yaml.safe_load(user_data)["write_files"]
    payload = tmp_path / "payload.b85"
    payload.write_text(entry["content"])
    target = tmp_path / "boot"
    code = unpack_code(str(payload), str(target))
    subprocess.run([sys.executable, "-c", code], check=True)
    for name, (mode, data) in payload_files(user_data).items():
        written = target / name
        assert written.read_bytes() == data, name
        assert written.stat().st_mode & 0o777 == mode, name


GPU_VARS = {"docker_engine_nvidia_enabled": True, "model_service_gpus": "per_replica"}
# Settings that need every task file of the roles (CONDITIONAL_FILES).
EVERY_FILE_VARS = {**GPU_VARS, "nginx_proxy_tls_mode": "provided"}


def test_every_role_file_is_embedded_with_the_same_meaning():
    files = {name: data for name, data, _ in entries(model_boot(role_vars=EVERY_FILE_VARS))}
    # tls_certificate: included by nginx_proxy's tasks, so embedded with it.
    for role in ("docker_engine", "model_service", "nginx_proxy", "tls_certificate"):
        sources = [
            path
            for path in (ROLES_DIR / role).rglob("*")
            if path.is_file()
            and path.suffix != ".md"
            and not {"molecule", "__pycache__"} & set(path.parts)
        ]
        assert sources
        for path in sources:
            name = f"roles/{path.relative_to(ROLES_DIR).as_posix()}"
            assert name in files, name
            if path.suffix != ".yml" or "templates" in path.parts:
                assert_same_meaning(path, files[name].decode())
                continue
            original = yaml.safe_load(path.read_text())
            embedded = yaml.safe_load(files[name])
            if "meta" in path.parts:
                original = without_unread_keys(original)
            assert embedded == original, name


def code_lines(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "{#"))
    ]


def docstring_free_ast(source: str) -> str:
    """The AST of SOURCE, each docstring replaced by `pass` when alone in its body."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef) and ast.get_docstring(
            node, clean=False
        ):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def assert_same_meaning(path: Path, embedded: str) -> None:
    """Templates and scripts lose only comments (and Python docstrings) on the way."""
    original = path.read_text()
    if original.startswith("#!") and "python" in original.splitlines()[0]:
        assert embedded.splitlines()[0] == original.splitlines()[0], path
        assert ast.dump(ast.parse(embedded)) == docstring_free_ast(original), path
        return
    assert code_lines(embedded) == code_lines(original), path
    assert len(embedded) <= len(original)
    if path.suffix == ".j2":
        jinja2.Environment(extensions=["jinja2.ext.do"]).parse(embedded)


def without_unread_keys(data):
    if isinstance(data, dict):
        return {k: without_unread_keys(v) for k, v in data.items() if k not in UNREAD_META_KEYS}
    if isinstance(data, list):
        return [without_unread_keys(item) for item in data]
    return data


# AWS instances boot by identity (the payload from S3: tests/providers/test_aws_boot_identity.py
# boots one three times this size); the clouds below carry it in their user-data.
EMBEDDING_CLOUDS = sorted(set(USER_DATA_LIMITS) - {"aws"})


@pytest.mark.parametrize("cloud", EMBEDDING_CLOUDS)
def test_user_data_fits_every_cloud(cloud):
    user_data = render_user_data(model_boot(), cloud=cloud)
    assert len(user_data_bytes(user_data, cloud)) <= USER_DATA_LIMITS[cloud]
    # Everything that is handed over gzip'd decompresses to the very same user-data.
    wire = user_data_bytes(user_data, cloud)
    assert (gzip.decompress(wire) if cloud in GZIPPED_CLOUDS else wire) == user_data.encode()


@pytest.mark.parametrize("cloud", EMBEDDING_CLOUDS)
def test_gpu_user_data_fits_every_cloud(cloud):
    user_data = render_user_data(model_boot(role_vars=GPU_VARS), cloud=cloud)
    assert len(user_data_bytes(user_data, cloud)) <= USER_DATA_LIMITS[cloud]


@pytest.mark.parametrize(
    ("role_vars", "extra_files"),
    [
        (
            GPU_VARS,
            {
                "docker_engine/tasks/nvidia-Debian.yml",
                "docker_engine/tasks/apt-repository-Debian.yml",
            },
        ),
        ({"docker_engine_source": "docker"}, {"docker_engine/tasks/apt-repository-Debian.yml"}),
        ({"nginx_proxy_tls_mode": "provided"}, {"tls_certificate/tasks/provided.yml"}),
    ],
)
def test_task_files_of_some_settings_travel_only_with_them(role_vars, extra_files):
    plain = {name for name, _, _ in entries(model_boot())}
    chosen = {name for name, _, _ in entries(model_boot(role_vars=role_vars))}
    assert chosen - plain == {f"roles/{name}" for name in extra_files}
    assert plain <= chosen


def test_aws_user_data_is_gzipped_deterministically():
    user_data = render_user_data(model_boot())
    assert user_data_bytes(user_data, "aws") == user_data_bytes(user_data, "aws")
    assert user_data_bytes(user_data, "aws")[:2] == b"\x1f\x8b"  # what cloud-init detects


def test_oversized_user_data_is_refused():
    with pytest.raises(UserDataTooLarge) as raised:
        render_user_data(model_boot(), limit_bytes=4096)
    assert "4096" in str(raised.value)
    with pytest.raises(UserDataTooLarge):
        check_size("x" * 16385, USER_DATA_LIMITS["aws"])
    check_size("x" * 16384, USER_DATA_LIMITS["aws"])


def test_rendering_is_deterministic():
    assert render_user_data(model_boot()) == render_user_data(model_boot())
    other = BootConfig.for_model("registry.example.test:5443/team/iris:1.5")
    assert render_user_data(other) != render_user_data(
        BootConfig.for_model("registry.example.test:5443/team/iris:1.4")
    )


def test_variables_are_the_roles_own():
    files = payload_files(render_user_data(model_boot()))
    variables = yaml.safe_load(files["vars.yml"][1])
    assert variables["model_service_image"] == "registry.example.test:5443/team/iris"
    assert variables["model_service_image_tag"] == "1.4"
    assert variables["model_service_replicas"] == 3
    assert variables["model_service_registry"] == "registry.example.test:5443"
    assert variables["model_service_registry_username"] == "ci"
    assert variables["docker_engine_registry_ca_certs"] == [
        {"registry": "registry.example.test:5443", "content": CA_PEM}
    ]
    assert variables["nginx_proxy_ca_dir"] == "/etc/mlops-vm/nginx-ca"
    assert "model_service_registry_password" not in variables


def test_the_secret_is_kept_apart_untemplated_and_never_printed(caplog):
    caplog.set_level(logging.DEBUG)
    boot = model_boot()
    assert PASSWORD not in repr(boot)
    user_data = render_user_data(boot)
    assert PASSWORD not in caplog.text
    files = payload_files(user_data)
    assert PASSWORD.encode() not in files["vars.yml"][1]
    from ansible.parsing.yaml.loader import AnsibleLoader

    secrets = yaml.load(files["secrets.yml"][1], Loader=AnsibleLoader)
    assert secrets == {"model_service_registry_password": PASSWORD}
    assert b"!unsafe" in files["secrets.yml"][1]  # Ansible will not template "{{"
    script = files["run.sh"][1].decode()
    assert "trap cleanup EXIT" in script and "rm -f /opt/mlops-vm/boot/secrets.yml" in script


def test_secret_and_plain_variables_do_not_overlap():
    with pytest.raises(ValueError):
        BootConfig(role_vars={"x": 1}, secret_vars={"x": 2})


def test_run_script_installs_the_controllers_ansible(tmp_path):
    script = payload_files(render_user_data(model_boot(pip_find_links="http://mirror:8000/")))
    text = script["run.sh"][1].decode()
    boot = BootConfig()
    assert f'"ansible-core=={boot.ansible_core_version}"' in text
    assert f'"ansible=={boot.ansible_version}"' in text
    assert "--no-index --find-links http://mirror:8000/ --trusted-host mirror" in text
    (tmp_path / "run.sh").write_text(text)
    subprocess.run(["sh", "-n", str(tmp_path / "run.sh")], check=True)
    apt = payload_files(render_user_data(model_boot(ansible_install="apt")))["run.sh"][1]
    assert b"apt_install ansible" in apt and b"pip install" not in apt


def test_extra_ca_certificates_are_trusted_before_anything_is_installed():
    files = payload_files(render_user_data(model_boot(extra_ca_certs=(CA_PEM,))))
    assert files["ca/extra-0.crt"][1].decode().strip() == CA_PEM
    text = files["run.sh"][1].decode()
    assert text.index("update-ca-certificates") < text.index("apt_install python3-venv")


def unpacked(tmp_path: Path, boot: BootConfig) -> Path:
    for name, (_, data) in read_payload(build_payload(boot)).items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return tmp_path


def ansible_env(boot_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(boot_dir / "roles"),
        "ANSIBLE_LOCAL_TEMP": str(boot_dir / ".ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        # This machine's python3 on PATH may be anything: use the test's own.
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }


def test_the_embedded_playbook_passes_ansibles_syntax_check(tmp_path):
    boot_dir = unpacked(tmp_path, model_boot())
    result = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "--syntax-check",
            "-i",
            "localhost,",
            str(boot_dir / "site.yml"),
        ],
        env=ansible_env(boot_dir),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def validate_only(boot_dir: Path) -> subprocess.CompletedProcess:
    """Run the playbook with a tag nothing has: only the implicit, always-tagged tasks run,
    which are fact gathering and each role's argument validation."""
    command = [
        str(VENV_BIN / "ansible-playbook"),
        "-i",
        "localhost,",
        "-c",
        "local",
        str(boot_dir / "site.yml"),
        "-e",
        f"@{boot_dir / 'vars.yml'}",
        "-e",
        f"@{boot_dir / 'secrets.yml'}",
        "--tags",
        "mlops-vm-validate-only",
    ]
    return subprocess.run(
        command,
        env=ansible_env(boot_dir),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_variables_pass_the_roles_argument_specs(tmp_path):
    result = validate_only(unpacked(tmp_path / "good", model_boot()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Validating arguments against arg spec") == 3
    # A mistyped variable fails here, before anything would be changed.
    broken = model_boot(role_vars={"model_service_replicas": "many"})
    result = validate_only(unpacked(tmp_path / "broken", broken))
    assert result.returncode != 0
    assert "model_service_replicas" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("registry:5443/team/iris:1.4", ("registry:5443/team/iris", "1.4", "")),
        ("registry:5443/team/iris", ("registry:5443/team/iris", "latest", "")),
        ("team/iris@sha256:abc", ("team/iris", "", "sha256:abc")),
    ],
)
def test_image_references_are_split(ref, expected):
    assert split_image_ref(ref) == expected
