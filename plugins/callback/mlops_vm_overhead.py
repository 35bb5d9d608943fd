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
  - Loads the Jinja filter and test plugins in ansible-playbook's process before it forks
    a worker, instead of in the first worker that templates, which loses them on exit.
  - Once the playbook's stats are out, moves every object to the garbage collector's
    permanent generation (C(gc.freeze)), so that the collection at the process's exit
    does not walk all of them (0.20 s down to 0.065 s for a release on an idle machine).
requirements:
  - the mlops_vm Python package (without it, the plugin does nothing)
"""

import gc

from ansible.plugins.callback import CallbackBase

try:
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
        if install is not None:
            install(CACHE_DIR / "jinja")
            load_jinja_plugins()

    def v2_playbook_on_stats(self, stats):
        # The run is over: what is left is its cleanup and the interpreter's exit.
        gc.freeze()
