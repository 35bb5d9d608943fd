"""Callback plugin: less of ansible-playbook's own overhead per run (see DOCUMENTATION)."""

DOCUMENTATION = r"""
name: mlops_vm_overhead
type: aggregate
short_description: Cut ansible-playbook's own overhead (templates, plugin loading, exit)
description:
  - Enabled in the repository's C(ansible.cfg). On a 2-core controller that also serves
    traffic, a release spends as long in ansible-playbook's own work as in the model's.
  - Compiles each Jinja template once. ansible-core 2.19 compiles a template's source to
    Python at every evaluation, so a role variable read by others is compiled again at
    each reading, in each worker forked for a task. The compiled code is kept by source
    and the settings that shape it, in memory and on disk for the next processes
    (C(~/.mlops-vm/cache/jinja), or under C(MLOPS_VM_HOME)), as Python keeps bytecode in
    C(__pycache__). mlops_vm/ansible_template_cache.py says what the key holds.
  - Parses each of a play's vars_files once per content. ansible-core reads them again,
    YAML parse included, each time it builds a host's variables for a task
    (mlops_vm/ansible_vars_file_cache.py); a file a task rewrites is parsed again.
  - Wakes ansible-playbook's process when a task's result comes, instead of its looking
    for one every millisecond while a task runs (mlops_vm/ansible_result_wait.py).
  - Loads the Jinja filter and test plugins in ansible-playbook's process before it forks
    a worker, instead of in the first worker that templates, which loses them on exit.
  - At the process's exit, moves every object to the garbage collector's permanent
    generation (C(gc.freeze)) before the interpreter's final collection, which then does
    not walk all of them (0.20 s down to 0.065 s for a release on an idle machine).
  - With an ansible-core whose templating differs (the cache reads its internals), the
    plugin only says so in verbose output (-vvv) and leaves the templating as it is.
requirements:
  - the mlops_vm Python package (without it, the plugin does nothing)
"""

import atexit
import gc

from ansible.plugins.callback import CallbackBase

try:
    from mlops_vm import ansible_result_wait, ansible_vars_file_cache
    from mlops_vm.ansible_template_cache import install, load_jinja_plugins
    from mlops_vm.paths import CACHE_DIR
except ImportError:  # the collection without the mlops_vm package: nothing to speed up
    install = None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "mlops_vm_overhead"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Run by ansible-playbook's own exit only: a forked worker ends with os._exit.
        atexit.register(gc.freeze)
        if install is None:
            return
        try:
            load_jinja_plugins()
            install(CACHE_DIR / "jinja")
        except Exception as error:  # another ansible-core's internals: nothing to speed up
            self._display.vvv(f"mlops_vm_overhead: no template cache ({error!r})")
        try:
            ansible_vars_file_cache.install()
        except Exception as error:
            self._display.vvv(f"mlops_vm_overhead: no vars_files cache ({error!r})")
        try:
            ansible_result_wait.install()
        except Exception as error:
            self._display.vvv(f"mlops_vm_overhead: results still polled ({error!r})")
