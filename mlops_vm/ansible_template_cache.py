"""A per-process cache of compiled Jinja code for ansible-core's templating.

ansible-core 2.19 compiles a template's source to Python (Jinja's parse, code generation
and Python's compile) each time it evaluates it: a role variable that others read is
compiled again at every reading, in every worker. A release's tasks compiled about 870
templates for 160 distinct sources (1.1 s of CPU on an idle machine, bench/README.md).
install() keeps Jinja's compiled code object per source and the settings that shape it
(plugins/callback/mlops_vm_template_cache.py calls it in ansible-playbook's process, before
it forks its workers; each worker then starts with the parent's cache and adds its own).

Only what Jinja's compile step reads is in the key: the source text and the names it is
given, the environment's class and its syntax settings (the ones a template may override
with a `#jinja2:` header), its optimizer, async and autoescape settings, and Ansible's
backslash-escaping context. A parsed tree (compile_expression's) is compiled as before.
"""

from typing import Any

_cache: dict[tuple, Any] = {}


def install() -> None:
    from ansible._internal._templating import _jinja_bits

    environment = _jinja_bits.AnsibleEnvironment
    if getattr(environment.compile, "mlops_vm_cached", False):
        return
    compile_uncached = environment.compile
    override_fields = _jinja_bits._TEMPLATE_OVERRIDE_FIELD_NAMES
    compile_context = _jinja_bits._TemplateCompileContext

    def compile_cached(self, source, name=None, filename=None, raw=False, defer_init=False):
        if not isinstance(source, str) or self._debuggable_template_source:
            return compile_uncached(self, source, name, filename, raw, defer_init)
        context = compile_context.current(optional=True)
        key = (
            str(source),
            name,
            filename,
            raw,
            defer_init,
            type(self),
            tuple(getattr(self, field) for field in override_fields),
            self.optimized,
            self.is_async,
            self.autoescape,
            context.escape_backslashes if context else None,
        )
        code = _cache.get(key)
        if code is None:
            code = _cache[key] = compile_uncached(self, source, name, filename, raw, defer_init)
        return code

    compile_cached.mlops_vm_cached = True
    environment.compile = compile_cached
