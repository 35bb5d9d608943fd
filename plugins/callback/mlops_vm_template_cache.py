"""Callback plugin: templating prepared once per process and run (see DOCUMENTATION)."""

DOCUMENTATION = r"""
name: mlops_vm_template_cache
type: aggregate
short_description: Compile Jinja templates once, load the Jinja plugins before workers fork
description:
  - ansible-core 2.19 compiles a template's Jinja source to Python on every evaluation; a
    role variable read by several others is compiled again at each reading.
  - This plugin keeps the compiled code by source and compile settings, in memory for
    ansible-playbook's process and each worker it forks, and on disk for the next ones
    (C(~/.mlops-vm/cache/jinja), or under C(MLOPS_VM_HOME)), as Python keeps bytecode in
    C(__pycache__). mlops_vm/ansible_template_cache.py says what the key holds.
  - It also loads the Jinja filter and test plugins once in ansible-playbook's process,
    before it forks workers, instead of in the first worker that templates.
requirements:
  - enabled in C(callbacks_enabled) (the repository's ansible.cfg)
"""

from ansible.plugins.callback import CallbackBase

try:
    from mlops_vm.ansible_template_cache import install, load_jinja_plugins
    from mlops_vm.paths import CACHE_DIR
except ImportError:  # the collection without the mlops_vm package: nothing to speed up
    install = None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "mlops_vm_template_cache"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if install is not None:
            install(CACHE_DIR / "jinja")
            load_jinja_plugins()
