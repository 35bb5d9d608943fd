"""Bad input stops before anything is created: exit code 2, file and field named."""

import socket

import pytest

from tests.environments import cli, make_environment, nothing_labelled


def provision(directory) -> tuple[int, str]:
    proc = cli("provision", str(directory))
    return proc.returncode, proc.stdout + proc.stderr


def settings_file(directory):
    return directory / "group_vars" / "all" / "mlops_vm.yml"


@pytest.mark.parametrize(
    ("case", "overrides", "field", "message"),
    [
        ("provider", {"provider": {"name": "vmware"}}, "mlops_vm.provider.name", "Input should be"),
        ("count", {"fleet": {"count": 0}}, "mlops_vm.fleet.count", "greater than or equal to 1"),
        (
            "image",
            {"model": {"image": "Registry/UPPER case:tag"}},
            "mlops_vm.model.image",
            "not an image reference",
        ),
        (
            "tls",
            {"tls": {"mode": "provided", "cert_file": "missing.crt", "key_file": "missing.key"}},
            "mlops_vm.tls.cert_file",
            "file not found",
        ),
        ("tlsmode", {"tls": {"mode": "letsencrypt"}}, "mlops_vm.tls.mode", "Input should be"),
    ],
)
def test_bad_settings_exit_2_naming_file_and_field(tmp_path, case, overrides, field, message):
    env = f"bad-{case}"
    directory = make_environment(tmp_path, env, overrides)
    code, output = provision(directory)
    assert code == 2, output
    assert str(settings_file(directory)) in output
    assert field in output
    assert message in output
    assert nothing_labelled(env)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    directory = make_environment(tmp_path, "bad-yaml")
    path = settings_file(directory)
    path.write_text(path.read_text().replace("count: 2", "count: [2"))
    code, output = provision(directory)
    assert code == 2, output
    assert f"{path}:" in output
    assert "YAML syntax error" in output
    assert nothing_labelled("bad-yaml")


def test_port_in_use_is_refused_before_anything_is_created(tmp_path, platform):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        directory = make_environment(
            tmp_path, "bad-port", {"load_balancer": {"publish_port": port}}
        )
        code, output = provision(directory)
    assert code == 2, output
    assert f"port {port} on 127.0.0.1 is already in use" in output
    assert str(settings_file(directory)) in output
    assert nothing_labelled("bad-port")


def test_validate_accepts_the_local_environment():
    proc = cli("validate", "local")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "environment local is valid" in proc.stdout.replace("\n", "")
