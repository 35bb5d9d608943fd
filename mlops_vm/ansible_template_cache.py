"""A cache of compiled Jinja code for ansible-core's templating, in memory and on disk.

ansible-core 2.19 compiles a template's source to Python (Jinja's parse, code generation
and Python's compile) each time it evaluates it: a role variable that others read is
compiled again at every reading, and again in every worker ansible-playbook forks for a
task. A 2-host release compiled about 870 templates of 160 distinct sources: 1.1 s of CPU
on an idle 2-core machine, more than its Nginx switches took (docs/benchmark.md).

install() keeps Jinja's compiled code per source and the settings that shape it: in memory
(a worker reads a role variable many times) and in FOLDER, one file per entry, like
Python's __pycache__ (a worker is a new process; so is the next run). The callback plugin
plugins/callback/mlops_vm_overhead.py installs it in ansible-playbook's process
before it forks any worker.

The key holds what Jinja's compile step reads: the source text and the names it is given,
the environment's class and its syntax settings (those a `#jinja2:` header may override),
its optimizer, async and autoescape settings, and Ansible's backslash-escaping context. The
folder is per Python, Jinja and ansible-core version (compiled code is specific to each)
and per compile_settings(): the settings of a whole run that also shape the code, the
filter and test plugins among them. A source naming a collection's filter or test is kept
in memory only (the collection's plugins are loaded on first use, after that).
An expression (compile_expression's: a `when`, a loop's condition) is keyed on its own
source. Any other parsed tree is compiled as before, as is any source while Ansible's
template debugging is on. A source that does not compile raises each time.
"""

import contextvars
import hashlib
import marshal
import os
import re
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

_memory: dict[tuple, Any] = {}
# A filter or test named by a collection's name (`| community.general.x`, `is a.b.c`).
COLLECTION_PLUGIN = re.compile(r"(\||\bis(\s+not)?)\s*\w+\.\w+\.\w+")
# The source of the expression being compiled (compile_expression hands compile a parsed
# tree, which has no source of its own to key on).
_expression: contextvars.ContextVar[str | None] = contextvars.ContextVar("expression", default=None)


def versions_folder(folder: Path) -> Path:
    """FOLDER's subfolder for this Python, Jinja and ansible-core, and for what else shapes
    the compiled code the same way for every template of a run (compile_settings)."""
    import jinja2
    from ansible.release import __version__ as ansible_version

    python = f"{sys.implementation.cache_tag}-{sys.hexversion:x}"
    settings = hashlib.sha256(repr(compile_settings()).encode()).hexdigest()[:16]
    return folder / f"{python}-jinja{jinja2.__version__}-ansible{ansible_version}-{settings}"


def compile_settings() -> tuple:
    """What Jinja's code generation reads besides the key's settings, the same for a whole
    run: whether Ansible expands templates embedded in constants, the Jinja extensions,
    and each filter and test plugin's name with what it is handed besides its arguments
    (context, environment: decided at compile time). Another filter plugin under a known
    name, or a new one, makes another folder."""
    from ansible._internal._templating._jinja_bits import AnsibleEnvironment
    from ansible._internal._templating._jinja_common import _TemplateConfig
    from ansible.plugins.loader import filter_loader, test_loader
    from jinja2.utils import _PassArg

    load_jinja_plugins()
    environment = AnsibleEnvironment()
    plugins = []
    for kind, loader, found in (
        ("filter", filter_loader, environment.filters),
        ("test", test_loader, environment.tests),
    ):
        for name in sorted(loader._cached_non_collection_wrappers):
            plugins.append((kind, name, str(_PassArg.from_obj(found.get(name)))))
    return (
        _TemplateConfig.allow_embedded_templates,
        sorted(type(extension).__qualname__ for extension in environment.extensions.values()),
        plugins,
    )


def install(folder: Path | None = None) -> None:
    """Compile through the cache from now on in this process and the ones it forks; FOLDER
    (none: memory only) keeps the compiled code for other processes."""
    from ansible._internal._templating import _jinja_bits

    environment = _jinja_bits.AnsibleEnvironment
    if getattr(environment.compile, "mlops_vm_cached", False):
        return
    compile_uncached = environment.compile
    override_fields = _jinja_bits._TEMPLATE_OVERRIDE_FIELD_NAMES
    compile_context = _jinja_bits._TemplateCompileContext
    stored = Stored(versions_folder(folder)) if folder is not None else None

    def compile_cached(self, source, name=None, filename=None, raw=False, defer_init=False):
        text = str(source) if isinstance(source, str) else _expression.get()
        _expression.set(None)  # the expression's own tree only, never a nested one
        if text is None or self._debuggable_template_source:
            return compile_uncached(self, source, name, filename, raw, defer_init)
        context = compile_context.current(optional=True)
        key = (
            "template" if isinstance(source, str) else "expression",
            text,
            name,
            filename,
            raw,
            defer_init,
            f"{type(self).__module__}.{type(self).__qualname__}",
            tuple(getattr(self, field) for field in override_fields),
            self.optimized,
            self.is_async,
            self.autoescape,
            context.escape_backslashes if context else None,
        )
        # A collection's plugin (a.b.c) is loaded on first use: not in compile_settings.
        on_disk = stored is not None and not COLLECTION_PLUGIN.search(text)
        code = _memory.get(key)
        if code is None and on_disk:
            code = stored.get(key)
        if code is None:
            code = compile_uncached(self, source, name, filename, raw, defer_init)
            if on_disk:
                stored.put(key, code)
        _memory[key] = code
        return code

    compile_expression_uncached = environment.compile_expression

    def compile_expression_keyed(self, source, *args, **kwargs):
        token = _expression.set(str(source))
        try:
            return compile_expression_uncached(self, source, *args, **kwargs)
        finally:
            _expression.reset(token)

    compile_cached.mlops_vm_cached = True
    environment.compile = compile_cached
    environment.compile_expression = compile_expression_keyed


def load_jinja_plugins() -> None:
    """Load every Jinja filter and test plugin in this process. Ansible loads them all at
    the first lookup of one; in ansible-playbook's process before it forks, each worker has
    them. Otherwise the first worker that templates loads them (the project's filters with
    their imports: the environment's schema, the metrics parser) and loses them on exit,
    and ansible-playbook loads them again for its next template of its own."""
    from ansible.plugins.loader import filter_loader, test_loader

    filter_loader.get("ansible.builtin.to_json")
    test_loader.get("ansible.builtin.match")


class Stored:
    """Compiled code in FOLDER, one marshal file per key (its SHA-256)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, key: tuple) -> Path:
        return self.folder / f"{hashlib.sha256(repr(key).encode()).hexdigest()}.code"

    def get(self, key: tuple) -> Any:
        try:
            code = marshal.loads(self.path(key).read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            return None  # none yet, or unreadable: compiled again and written anew
        # Compiled code, or a raw compile's Python source; anything else is not ours.
        return code if isinstance(code, types.CodeType | str) else None

    def put(self, key: tuple, code: Any) -> None:
        """Written whole or not at all (another process may read it meanwhile); a folder
        that cannot be written to only costs the compile next time."""
        staged = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            with tempfile.NamedTemporaryFile(dir=self.folder, delete=False) as staged:
                staged.write(marshal.dumps(code))
            os.replace(staged.name, self.path(key))
        except OSError:
            if staged is not None:
                Path(staged.name).unlink(missing_ok=True)
