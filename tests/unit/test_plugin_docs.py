"""Every plugin's documentation is YAML that Ansible can read: ansible-doc, ansible-lint
and the collection's users parse DOCUMENTATION, EXAMPLES and RETURN, and a plain-text
line with `: ` in a list item turns into a mapping key and breaks all three (it did, in
mlops_vm_fleet's `rollback` option)."""

import ast
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
PLUGINS = PROJECT / "plugins"
# A role's own modules (roles/<role>/library): they travel with the role (boot payload).
ROLE_MODULES = sorted(PROJECT.glob("roles/*/library/*.py"))
DOC_NAMES = ("DOCUMENTATION", "EXAMPLES", "RETURN")


def documented() -> list[tuple[Path, str, str]]:
    found = []
    # The collection's links to the role modules (plugins/modules) are read once, as the role's.
    plugins = [path for path in sorted(PLUGINS.rglob("*.py")) if not path.is_symlink()]
    for path in plugins + ROLE_MODULES:
        # Module level, and the class attributes of doc fragments.
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in DOC_NAMES
                and isinstance(node.value, ast.Constant)
            ):
                found.append((path, node.targets[0].id, node.value.value))
    return found


def test_the_plugins_are_found():
    assert {name for _, name, _ in documented()} == set(DOC_NAMES)


@pytest.mark.parametrize(
    ("path", "name", "text"),
    documented(),
    ids=[f"{path.stem}-{name}" for path, name, _ in documented()],
)
def test_each_documentation_block_parses(path: Path, name: str, text: str):
    parsed = yaml.safe_load(text)
    if name == "DOCUMENTATION":
        if path.parent.name != "doc_fragments":
            assert parsed.get("short_description"), f"{path.name}: no short_description"
        for option, spec in (parsed.get("options") or {}).items():
            description = spec.get("description")
            items = description if isinstance(description, list) else [description]
            assert items and all(isinstance(item, str) for item in items), (
                f"{path.name}: option {option}'s description is not text"
            )
