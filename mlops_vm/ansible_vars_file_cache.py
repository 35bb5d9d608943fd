"""A play's vars_files parsed once per content, not at every task.

ansible-core's VariableManager.get_vars reads each of a play's vars_files again, YAML
parse included, every time it builds a host's variables: for every host of every task
(DataLoader.load_from_file with cache='vaulted', which keeps only encrypted files, so that
a file a task rewrites is read again). The release's plays each load vars/environment.yml
and vars/model_hosts.yml: a 2-host deploy parsed them 145 times in ansible-playbook's
process, on the path every task waits on (docs/benchmark.md).

install() keeps that call's result per file and per what the file is on disk (its inode,
size and modification time in nanoseconds): a file a task rewrites is parsed again, as
before. Only that call is kept (the caller asks for the parsed data itself, unsafe=True,
and ansible-core's own cache hands out the same object on such calls); every other read
goes through unchanged. The callback plugin plugins/callback/mlops_vm_overhead.py installs
it in ansible-playbook's process, before it forks any worker.
"""

import functools
import os
from typing import Any

_parsed: dict[tuple, Any] = {}


def install() -> None:
    from ansible.parsing.dataloader import DataLoader

    original = DataLoader.load_from_file
    if getattr(original, "vars_file_cache", False):
        return

    @functools.wraps(original)
    def load_from_file(self, file_name, cache="all", unsafe=False, json_only=False, **kwargs):
        if cache != "vaulted" or not unsafe:
            return original(self, file_name, cache, unsafe, json_only, **kwargs)
        path = self.path_dwim(file_name)
        try:
            stat = os.stat(path)
        except OSError:
            return original(self, file_name, cache, unsafe, json_only, **kwargs)
        key = (
            path,
            stat.st_ino,
            stat.st_size,
            stat.st_mtime_ns,
            json_only,
            tuple(sorted(kwargs.items())),
        )
        if key not in _parsed:
            _parsed[key] = original(self, file_name, cache, unsafe, json_only, **kwargs)
        return _parsed[key]

    load_from_file.vars_file_cache = True  # type: ignore[attr-defined]
    DataLoader.load_from_file = load_from_file
