"""`exec`'s output and exit code: each host's lines prefixed with its name as they come, the
exit code the worst host's; managed targets say they have no hosts (exit 2)."""

import io

from typer.testing import CliRunner

from mlops_vm.cli import app
from mlops_vm.commands.exits import EXIT_BAD_INPUT
from mlops_vm.release.hosts import container_session, run_prefixed, ssh_command, worst_exit

HV = {"ansible_host": "192.0.2.7", "ansible_port": 2222, "ansible_user": "admin"}


def test_each_line_is_prefixed_with_its_host_and_each_code_kept():
    out = io.StringIO()
    codes = run_prefixed(
        {
            "host-a": ["sh", "-c", "echo one; echo two"],
            "host-b": ["sh", "-c", "echo err >&2; printf 'no newline'; exit 3"],
            "host-c": ["sh", "-c", "exit 0"],
        },
        out,
    )
    assert codes == {"host-a": 0, "host-b": 3, "host-c": 0}
    lines = out.getvalue().splitlines()
    assert [line for line in lines if line.startswith("host-a | ")] == [
        "host-a | one",
        "host-a | two",
    ]
    assert sorted(line for line in lines if line.startswith("host-b | ")) == [
        "host-b | err",
        "host-b | no newline",
    ]
    assert len(lines) == 4


def test_the_worst_host_decides_the_exit_code():
    assert worst_exit({"a": 0, "b": 0}) == 0
    assert worst_exit({"a": 0, "b": 2, "c": 1}) == 2
    assert worst_exit({"a": 255, "b": 1}) == 255  # ssh could not reach one
    assert worst_exit({}) == 0


def test_the_commands_go_through_sudo_unless_root():
    assert ssh_command(HV, "hostname")[-2:] == ["admin@192.0.2.7", "sudo -n hostname"]
    assert ssh_command({**HV, "ansible_user": "root"}, "hostname")[-1] == "hostname"
    session = container_session(HV)
    assert "-t" in session and "docker exec -it" in session[-1]


def test_managed_targets_have_no_hosts_to_reach():
    for args in (["exec", "ecs-example", "--", "hostname"], ["ssh", "cloud-run-example"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == EXIT_BAD_INPUT, result.output
        assert "no hosts to reach" in result.output


def test_exec_needs_a_command_and_one_host_choice():
    assert CliRunner().invoke(app, ["exec", "local"]).exit_code == EXIT_BAD_INPUT
    both = CliRunner().invoke(app, ["exec", "local", "--host", "x", "--all", "--", "true"])
    assert both.exit_code == EXIT_BAD_INPUT
