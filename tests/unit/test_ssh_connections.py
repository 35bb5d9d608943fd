"""The command's shared SSH masters: the options every ssh gets inside `shared()` and none
outside, Ansible's share of them, the folder's life, and the masters opened early (the
real sharing over SSH is asserted end to end: tests/e2e/test_release.py counts the
logins a deploy makes, and finds none of its masters left once it has returned)."""

import stat
import time

from mlops_vm import ssh_connections
from mlops_vm.release.hosts import ssh_login

HOST = {
    "ansible_host": "10.0.0.5",
    "ansible_port": 22,
    "ansible_user": "root",
    "ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new",
}


def test_outside_a_command_nothing_is_shared():
    assert ssh_connections.ssh_options() == []
    assert ssh_connections.ansible_environment({}) == {}
    assert not any("ControlPath" in arg for arg in ssh_login(HOST))
    assert ssh_connections.open_early([["sh", "-c", "exit 0"]]) == 0


def test_inside_a_command_every_ssh_shares_a_private_folder_removed_after():
    with ssh_connections.shared() as folder:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        argv = ssh_login(HOST)
        assert f"ControlPath={folder}/%C" in argv
        assert "ControlMaster=auto" in argv
        # Options before the destination (ssh reads the rest as the remote command).
        assert argv[-1] == "root@10.0.0.5"
        # A socket's path must stay under the kernel's limit (108 bytes, with the hash).
        assert len(f"{folder}/{'0' * 40}") < 100
    assert not folder.exists()
    assert ssh_connections.ssh_options() == []


def test_ansible_gets_the_masters_after_the_users_own_extra_arguments():
    with ssh_connections.shared() as folder:
        mine = ssh_connections.ansible_environment({})["ANSIBLE_SSH_EXTRA_ARGS"]
        theirs = ssh_connections.ansible_environment({"ANSIBLE_SSH_EXTRA_ARGS": "-o Foo=bar"})
    assert f"-o ControlPath={folder}/%C" in mine
    assert theirs["ANSIBLE_SSH_EXTRA_ARGS"] == f"-o Foo=bar {mine}"


def test_a_nested_block_keeps_the_outer_masters():
    with ssh_connections.shared() as outer:
        with ssh_connections.shared() as inner:
            assert inner == outer
        assert outer.exists()
        assert ssh_connections.ssh_options()
    assert not outer.exists()


def test_masters_still_opening_when_the_command_ends_are_stopped_not_waited_for(tmp_path):
    done = tmp_path / "done"
    started = time.monotonic()
    with ssh_connections.shared():
        # The argv up to the destination; open_early adds the remote command ("true").
        count = ssh_connections.open_early(
            [["sh", "-c", f"touch {done}"], ["sh", "-c", "sleep 30"]]
        )
        assert count == 2
        deadline = time.monotonic() + 10
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert done.exists()  # it ran in the background
    assert time.monotonic() - started < 10  # the slow one was killed
