"""One SSH connection per host for the whole of one CLI command.

A command that changes an environment reaches its hosts several times: the deploy lock on
the ledger host at its start and end (commands/lock.py), then Ansible (and Mitogen) on every
host. Each new SSH connection costs a key exchange and a login (0.27 s to a local VM, more
under load); through an open master connection, 0.008 s. Inside `shared()`, every ssh the
command starts, its own and Ansible's, shares one master per host, kept in a folder of the
command's own that is closed when the command ends. None is shared between commands: a
master that outlived its host would make a later command wait on a dead connection.

`open_early()` starts the masters of hosts the command will reach later, in the background,
so that the connections exist by the time Ansible gets there (its start and the lock take
about 1.5 s, a connection 0.3 to 0.6 s).
"""

import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

# The folder of the open command's masters (None outside `shared()`).
_folder: Path | None = None
# The masters being opened in the background; the command's end reaps them (killing any
# still connecting).
_opening: list[subprocess.Popen[bytes]] = []

# A master stays up this long after its last session: any later ssh of the command reuses it
# (a playbook's pause between two hosts' tasks can be long), and a master left behind by a
# command that was killed goes away by itself.
PERSIST = "60s"


def control_options(folder: Path) -> list[str]:
    """ssh options that make every ssh to one host share the master in FOLDER (%C: a hash
    of the local host, the remote host, its port and the user)."""
    return [
        "-o",
        "ControlMaster=auto",
        "-o",
        f"ControlPath={folder}/%C",
        "-o",
        f"ControlPersist={PERSIST}",
    ]


def ssh_options() -> list[str]:
    """The options an ssh of this command adds (none outside `shared()`)."""
    return control_options(_folder) if _folder is not None else []


def ansible_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The ANSIBLE_* variables that put Ansible's ssh (its own plugin's and Mitogen's) on the
    command's masters: the extra arguments come after ansible.cfg's ssh_args and the
    inventory's common ones, and both read them. The user's own extra arguments are kept."""
    if _folder is None:
        return {}
    mine = " ".join(control_options(_folder))
    theirs = environ.get("ANSIBLE_SSH_EXTRA_ARGS", "").strip()
    return {"ANSIBLE_SSH_EXTRA_ARGS": f"{theirs} {mine}".strip()}


@contextmanager
def shared() -> Iterator[Path]:
    """Share one master per host among the ssh of the block; closes them after. Nested, the
    outer block's masters are kept."""
    global _folder
    if _folder is not None:
        yield _folder
        return
    # Short and private (0700): a socket's path is limited to about 100 characters, and a
    # master lets whoever can reach its socket run commands on the host.
    folder = Path(tempfile.mkdtemp(prefix="mlops-vm-ssh-", dir="/tmp"))
    _folder = folder
    try:
        yield folder
    finally:
        _folder = None
        close(folder)


def open_early(logins: Iterable[Sequence[str]]) -> int:
    """Start, in the background, the master of each host, given as the ssh argv up to its
    destination (release/hosts.py ssh_login, which adds this command's options); how many
    were started. A host that cannot be reached is left to the command's own connection,
    which reports why."""
    if _folder is None:
        return 0
    # No waiting and no output kept: the master runs on by itself (ControlPersist).
    started = [
        subprocess.Popen(
            [*login, "true"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for login in logins
    ]
    _opening.extend(started)
    return len(started)


def close(folder: Path) -> None:
    """Ask every master in FOLDER to exit, then remove the folder."""
    while _opening:
        # One still connecting (a host slow or gone) is of no use any more.
        opener = _opening.pop()
        if opener.poll() is None:
            opener.kill()
            opener.wait()
    for socket in folder.iterdir():
        # The socket's path names the master: the destination is not read.
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "mlops-vm-master"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=15,
            check=False,
        )
    shutil.rmtree(folder, ignore_errors=True)
