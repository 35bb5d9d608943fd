"""A play's vars_files parsed once per content (mlops_vm/ansible_vars_file_cache.py): the
call VariableManager.get_vars makes is served from memory while the file is what it was,
parsed again once it changed, and every other read goes through as before; a real
ansible-playbook with the repository's ansible.cfg sees a vars file a task rewrote."""

import sys
from pathlib import Path

import pytest
from ansible.parsing.dataloader import DataLoader

from mlops_vm import ansible_vars_file_cache
from tests.ansible_cli import ansible_playbook

ORIGINAL = DataLoader.load_from_file


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    """The installed cache; the file names each real parse was for."""
    seen: list[str] = []
    load = DataLoader.load

    def spy(self, data, file_name="<string>", *args, **kwargs):
        seen.append(file_name)
        return load(self, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DataLoader, "load", spy)
    monkeypatch.setattr(DataLoader, "load_from_file", ORIGINAL)
    monkeypatch.setattr(ansible_vars_file_cache, "_parsed", {})
    ansible_vars_file_cache.install()
    return seen


def as_get_vars_reads(path: Path) -> object:
    """The call VariableManager.get_vars makes for a play's vars_files."""
    return DataLoader().load_from_file(
        str(path), unsafe=True, cache="vaulted", trusted_as_template=True
    )


def test_a_vars_file_is_parsed_once_while_it_is_unchanged(parses, tmp_path):
    path = tmp_path / "vars.yml"
    path.write_text("release: '1.0'\nhosts: [a, b]\n")
    first = as_get_vars_reads(path)
    for _ in range(5):
        assert as_get_vars_reads(path) == {"release": "1.0", "hosts": ["a", "b"]}
    assert as_get_vars_reads(path) is first
    assert parses == [str(path)]


def test_a_rewritten_vars_file_is_parsed_again(parses, tmp_path):
    path = tmp_path / "vars.yml"
    path.write_text("release: '1.0'\n")
    assert as_get_vars_reads(path) == {"release": "1.0"}
    path.write_text("release: '1.1'\n")  # same size: the modification time tells
    assert as_get_vars_reads(path) == {"release": "1.1"}
    assert len(parses) == 2


def test_other_reads_go_through_as_before(parses, tmp_path):
    path = tmp_path / "vars.yml"
    path.write_text("settings: {a: 1}\n")
    copied = DataLoader().load_from_file(str(path), cache="none")
    copied["settings"]["a"] = 2  # a copy of its own: the next read does not see it
    assert DataLoader().load_from_file(str(path), cache="none") == {"settings": {"a": 1}}
    assert len(parses) == 2


def test_install_twice_wraps_once(parses):
    wrapped = DataLoader.load_from_file
    ansible_vars_file_cache.install()
    assert DataLoader.load_from_file is wrapped


PLAYBOOK = """
- name: Read a vars file, rewrite it, read it again
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {vars_file}
  tasks:
    - name: Before
      ansible.builtin.debug:
        msg: "release before: {{{{ release }}}}"
    - name: Rewrite the vars file
      ansible.builtin.copy:
        dest: {vars_file}
        content: "release: '2.0-rewritten'\\n"
        mode: "0600"
    - name: After
      ansible.builtin.debug:
        msg: "release after: {{{{ release }}}}"
"""


def test_ansible_playbook_reads_a_vars_file_a_task_rewrote(tmp_path):
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text("release: '1.0'\n")
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK.format(vars_file=vars_file))
    run = ansible_playbook(
        "-i",
        "localhost,",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        str(playbook),
        env={"MLOPS_VM_HOME": str(tmp_path)},
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "release before: 1.0" in run.stdout, run.stdout
    assert "release after: 2.0-rewritten" in run.stdout, run.stdout
