"""The compiled-template cache (mlops_vm/ansible_template_cache.py): each source compiled
once per process, and never the code of one compile setting served for another: the
backslash escaping of Ansible's top-level templates, a `#jinja2:` header's syntax."""

from pathlib import Path

import pytest
from ansible._internal._templating._jinja_bits import AnsibleEnvironment
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from jinja2 import Environment

from mlops_vm import ansible_template_cache, paths
from tests.ansible_cli import ansible_playbook

FIXTURES = Path(__file__).parent / "template_cache_fixtures"
# As ansible-core defines it (install() wraps it; each test puts it back).
COMPILE_EXPRESSION = AnsibleEnvironment.compile_expression


@pytest.fixture
def spied(monkeypatch) -> list[str]:
    """The sources Jinja compiles (a spy under the cache), nothing installed yet."""
    seen: list[str] = []
    uncached = Environment.compile

    def spy(self, source, *args, **kwargs):
        seen.append(source if isinstance(source, str) else "<tree>")
        return uncached(self, source, *args, **kwargs)

    monkeypatch.setattr(Environment, "compile", spy)
    # A class attribute only while the test runs: install() patches the subclass.
    monkeypatch.setattr(AnsibleEnvironment, "compile", Environment.compile, raising=False)
    monkeypatch.setattr(AnsibleEnvironment, "compile_expression", COMPILE_EXPRESSION)
    monkeypatch.setattr(ansible_template_cache, "_memory", {})
    return seen


@pytest.fixture
def compiles(spied) -> list[str]:
    """spied, with the cache installed in memory only."""
    ansible_template_cache.install()
    return spied


def another_process(monkeypatch) -> None:
    """As a new process starts: nothing in memory, compile not wrapped yet."""
    monkeypatch.setattr(ansible_template_cache, "_memory", {})
    monkeypatch.setattr(AnsibleEnvironment, "compile", Environment.compile, raising=False)
    monkeypatch.setattr(AnsibleEnvironment, "compile_expression", COMPILE_EXPRESSION)


def render(template: str, escape_backslashes: bool = True, **variables) -> object:
    # A template from code must be trusted to be rendered (ansible-core 2.19).
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template(template), escape_backslashes=escape_backslashes)


def test_a_source_is_compiled_once_and_renders_each_time_with_its_variables(compiles):
    source = "{{ name ~ '-' ~ index }}"
    assert render(source, name="model", index=0) == "model-0"
    assert render(source, name="model", index=1) == "model-1"
    assert render(source, name="other", index=7) == "other-7"
    assert compiles.count(source) == 1


def test_an_expression_is_compiled_once_by_its_own_source(compiles):
    def evaluate(expression: str, **variables) -> object:
        templar = Templar(loader=DataLoader(), variables=variables)
        return templar.evaluate_expression(trust_as_template(expression))

    assert evaluate("x * 21", x=2) == 42
    assert evaluate("x * 21", x=1) == 21
    assert evaluate("x * 2", x=1) == 2  # another expression, the same shape of tree
    assert evaluate("x * 21", x=3) == 63
    assert compiles.count("<tree>") == 2


def test_install_twice_wraps_once(compiles):
    ansible_template_cache.install()
    source = "{{ 1 + 2 }}"
    assert render(source) == 3
    assert render(source) == 3
    assert compiles.count(source) == 1


def test_backslash_escaping_keeps_its_own_code(compiles):
    # Ansible escapes backslashes in string constants of top-level templates only; the
    # same source compiled without it reads '\n' as a newline.
    source = "{{ 'a\\nb' }}"
    escaped = render(source, escape_backslashes=True)
    plain = render(source, escape_backslashes=False)
    assert escaped == "a\\nb"
    assert plain == "a\nb"
    assert render(source, escape_backslashes=True) == escaped
    assert render(source, escape_backslashes=False) == plain
    assert compiles.count(source) == 2


def test_a_jinja_header_compiles_with_its_own_syntax(compiles):
    body = "[% greeting %] {{ greeting }}"
    with_header = "#jinja2:variable_start_string:'[%', variable_end_string:'%]'\n" + body
    assert render(with_header, greeting="hi") == "hi {{ greeting }}"
    assert render(body, greeting="hi") == "[% greeting %] hi"
    assert render(with_header, greeting="hello") == "hello {{ greeting }}"


def test_a_syntax_error_is_raised_each_time_and_not_kept(compiles):
    for _ in range(2):
        with pytest.raises(Exception, match="unexpected"):
            render("{{ 1 + }}")
    assert not [key for key in ansible_template_cache._memory if key[0] == "{{ 1 + }}"]


def test_the_folder_serves_the_next_process_without_a_compile(spied, monkeypatch, tmp_path):
    source = "{{ items | map('upper') | join(',') }}"
    ansible_template_cache.install(tmp_path)
    assert render(source, items=["a", "b"]) == "A,B"
    assert spied.count(source) == 1
    another_process(monkeypatch)
    ansible_template_cache.install(tmp_path)
    assert render(source, items=["c"]) == "C"
    assert spied.count(source) == 1  # read from the folder
    # One folder per Python, Jinja and ansible-core version, private to the user.
    (versions,) = tmp_path.iterdir()
    assert "jinja" in versions.name and "ansible" in versions.name
    assert versions.stat().st_mode & 0o077 == 0


def test_an_unreadable_entry_is_compiled_again_and_rewritten(spied, monkeypatch, tmp_path):
    source = "{{ 6 * 7 }}"
    ansible_template_cache.install(tmp_path)
    assert render(source) == 42
    (entry,) = next(tmp_path.iterdir()).iterdir()
    entry.write_bytes(b"not marshal data")
    another_process(monkeypatch)
    ansible_template_cache.install(tmp_path)
    assert render(source) == 42
    assert spied.count(source) == 2
    another_process(monkeypatch)
    ansible_template_cache.install(tmp_path)
    assert render(source) == 42
    assert spied.count(source) == 2  # the rewritten entry serves


def test_a_folder_that_cannot_be_written_only_costs_the_compile(spied, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder would be")
    ansible_template_cache.install(blocked)
    assert render("{{ 'still' ~ ' works' }}") == "still works"


def test_ansible_playbook_runs_with_the_cache_in_its_workers(tmp_path):
    # The repository's ansible.cfg enables the callback; a fixture filter reports, from
    # the worker that runs the task, whether compile is the cached one.
    run = ansible_playbook(
        "-i",
        "localhost,",
        str(FIXTURES / "cache_state.yml"),
        env={
            "ANSIBLE_FILTER_PLUGINS": f"{FIXTURES}:{paths.PROJECT_DIR / 'plugins' / 'filter'}",
            "MLOPS_VM_HOME": str(tmp_path),
        },
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "template cache in the worker: True" in run.stdout, run.stdout
    assert "WARNING" not in run.stdout + run.stderr, run.stdout + run.stderr
    # The state folder's cache keeps what the run compiled.
    assert list((tmp_path / "cache" / "jinja").glob("*/*.code"))


def test_the_callback_freezes_the_heap_at_the_exit(monkeypatch):
    # The collection at the interpreter's exit then skips every object of the run.
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "mlops_vm_overhead", paths.PROJECT_DIR / "plugins" / "callback" / "mlops_vm_overhead.py"
    )
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    monkeypatch.setattr(plugin, "install", None)  # only the exit's part here
    registered = []
    monkeypatch.setattr(plugin.atexit, "register", registered.append)
    plugin.CallbackModule()
    assert registered == [plugin.gc.freeze]


def test_the_embedded_templates_setting_has_its_own_folder(spied, monkeypatch, tmp_path):
    # Ansible's code generator expands a template embedded in a constant unless
    # ALLOW_EMBEDDED_TEMPLATES is off: the same source compiles to other code.
    from ansible._internal._templating._jinja_common import _TemplateConfig

    def condition() -> bool:
        templar = Templar(loader=DataLoader(), variables={"x": "a", "y": "a"})
        return templar.evaluate_conditional(trust_as_template("x == '{{ y }}'"))

    monkeypatch.setattr(_TemplateConfig, "allow_embedded_templates", True)
    ansible_template_cache.install(tmp_path)
    assert condition() is True
    another_process(monkeypatch)
    monkeypatch.setattr(_TemplateConfig, "allow_embedded_templates", False)
    ansible_template_cache.install(tmp_path)
    assert condition() is False
    assert spied.count("<tree>") == 2
    assert len(list(tmp_path.iterdir())) == 2


def test_what_a_filter_is_handed_is_part_of_the_folder(monkeypatch, tmp_path):
    # Whether a filter gets the context or the environment is compiled into the code: a
    # plugin that changes it under the same name must not be served the old code.
    from jinja2 import utils

    before = ansible_template_cache.versions_folder(tmp_path)
    monkeypatch.setattr(utils._PassArg, "from_obj", classmethod(lambda cls, obj: cls.environment))
    assert ansible_template_cache.versions_folder(tmp_path) != before


def test_a_collection_plugin_is_kept_in_memory_only(spied, tmp_path):
    ansible_template_cache.install(tmp_path)
    assert render("{{ 'a' | ansible.builtin.upper }}") == "A"
    assert render("{{ 'b' | upper }}") == "B"
    (folder,) = tmp_path.iterdir()
    assert len(list(folder.iterdir())) == 1  # the second template only
