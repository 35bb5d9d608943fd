"""Offline checks of an environment's secrets and placeholders, for `validate`.

A secret field refers to a variable (`"{{ vault_registry_password }}"`); Ansible resolves it
from the environment's group_vars at run time, and a name defined nowhere fails the run
halfway. Here each plain reference must be defined in a group_vars file of the environment:
plain YAML, or an ansible-vault encrypted file opened with the password file Ansible would
use (ANSIBLE_VAULT_PASSWORD_FILE). An encrypted file that cannot be opened is reported as
a warning (its names cannot be seen), not as an error.

`mlops-vm init` writes PLACEHOLDER where the user has to fill something in; a value still
holding it is an error naming the file, line and field.
"""

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops_vm.environment.config import (
    CONFIG_VARIABLE,
    ConfigProblem,
    LoadedEnvironment,
    node_line,
)
from mlops_vm.environment.load import group_vars_files, is_vaulted

PLACEHOLDER = "CHANGE-ME"
# A secret field that is exactly one variable: the only form whose name can be checked here
# (an expression such as a lookup is Ansible's to resolve).
REFERENCE = re.compile(r"^\s*\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")


@dataclass
class SecretsReport:
    problems: list[ConfigProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # An encrypted file could not be opened: it may define any name.
    unopened: bool = False


def secret_references(loaded: LoadedEnvironment) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(location under mlops_vm, variable name) of each secret field that names a variable."""
    registry = loaded.config.model.registry
    fields: list[tuple[tuple[Any, ...], str | None]] = [
        (("model", "registry", "username"), registry.username),
        (("model", "registry", "password"), registry.password),
        *((("auth", "api_keys", i), key) for i, key in enumerate(loaded.config.auth.api_keys)),
    ]
    for location, value in fields:
        match = REFERENCE.match(value or "")
        if match:
            yield location, match.group(1)


def vault_password() -> bytes | None:
    path = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if not path or not Path(path).expanduser().is_file():
        return None
    return Path(path).expanduser().read_bytes().strip()


def decrypt(path: Path, password: bytes) -> str | None:
    """The file's text, or None when the password does not open it."""
    from ansible.errors import AnsibleError
    from ansible.parsing.vault import VaultLib, VaultSecret

    try:
        vault = VaultLib([("default", VaultSecret(password))])
        return vault.decrypt(path.read_bytes()).decode()
    except AnsibleError:
        return None


def group_vars_texts(directory: Path, report: SecretsReport) -> Iterator[tuple[Path, str]]:
    """Each group_vars file's text; encrypted ones decrypted when the password is at hand."""
    password = vault_password()
    for path in group_vars_files(directory):
        if not is_vaulted(path):
            yield path, path.read_text()
            continue
        text = decrypt(path, password) if password else None
        if text is None:
            report.warnings.append(
                f"{path}: encrypted and not opened (set ANSIBLE_VAULT_PASSWORD_FILE): "
                "the secrets it defines are not checked"
            )
            report.unopened = True
            continue
        yield path, text


def placeholders(node: yaml.Node | None, location: tuple[Any, ...] = ()) -> Iterator[tuple]:
    """(location, line) of every scalar that still holds PLACEHOLDER."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from placeholders(value, (*location, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from placeholders(item, (*location, index))
    elif isinstance(node, yaml.ScalarNode) and PLACEHOLDER in str(node.value):
        yield location, node.start_mark.line + 1


def check_placeholders(directory: Path) -> SecretsReport:
    """Values still holding PLACEHOLDER in the group_vars files of DIRECTORY, located (checked
    before the schema: an unfilled image is a placeholder to fill, not a bad reference)."""
    report = SecretsReport()
    for path, text in group_vars_texts(directory, report):
        try:
            node = yaml.compose(text)
        except yaml.YAMLError:
            continue  # loading the environment names the syntax error
        report.problems += [
            ConfigProblem(path, ".".join(map(str, location)), f"fill in {PLACEHOLDER}", line)
            for location, line in placeholders(node)
        ]
    return report


def check_secrets(loaded: LoadedEnvironment) -> SecretsReport:
    """Secret references that no group_vars file of the environment defines, located."""
    report = SecretsReport()
    defined: set[str] = set()
    for _, text in group_vars_texts(loaded.inventory_dir, report):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue  # a plain file was parsed by load already; a decrypted one: Ansible's
        if isinstance(data, dict):
            defined.update(str(key) for key in data)
    if report.unopened:
        return report  # the names may be in the file not opened
    for location, name in secret_references(loaded):
        if name not in defined:
            report.problems.append(
                ConfigProblem(
                    loaded.source,
                    ".".join(map(str, (CONFIG_VARIABLE, *location))),
                    f"refers to {name!r}, which no group_vars file of the environment "
                    f"defines: add it to {loaded.inventory_dir / 'group_vars/all/vault.yml'} "
                    "(encrypted with ansible-vault)",
                    node_line(loaded.node, location),
                )
            )
    return report
