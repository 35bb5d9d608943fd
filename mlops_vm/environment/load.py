"""Load an environment: find the group_vars file that holds the `mlops_vm` variable, validate
it (environment/config.py), check the files it names and the machine sizes it asks for.

The loaded environment keeps the variable's YAML node, so every later check (sizing
warnings, ...) names the line of the setting without reading the file again.
"""

from pathlib import Path
from typing import Any

import yaml

from mlops_vm import paths
from mlops_vm.environment.config import (
    CONFIG_VARIABLE,
    TEMPLATED,
    ConfigError,
    ConfigProblem,
    LoadedEnvironment,
    node_line,
    resolve_path,
    validate_config,
)
from mlops_vm.environment.sizing import check_machine_settings


def inventory_dir(env: str) -> Path:
    return paths.PROJECT_DIR / "inventories" / env


def environment_names() -> list[str]:
    """The environments under inventories/ (folders with group_vars), sorted."""
    root = paths.PROJECT_DIR / "inventories"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "group_vars").is_dir())


def environment_directory(env_or_dir: str | Path) -> Path:
    """The inventory directory of ENV_OR_DIR: a path, or a name under inventories/."""
    # Absolute: ansible-runner runs from its own folder, where a relative inventory (and
    # with it the group_vars holding `mlops_vm`) would not be found.
    directory = Path(env_or_dir).expanduser().absolute()
    if not Path(env_or_dir).is_dir():
        directory = inventory_dir(str(env_or_dir)).absolute()
    return directory


def group_vars_files(directory: Path) -> list[Path]:
    group_vars = directory / "group_vars"
    files = sorted((group_vars / "all").glob("*.y*ml")) if (group_vars / "all").is_dir() else []
    files += [p for p in (group_vars / "all.yml", group_vars / "all.yaml") if p.exists()]
    return files


def is_vaulted(path: Path) -> bool:
    return path.read_bytes().startswith(b"$ANSIBLE_VAULT")


def parse_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    text = path.read_text()
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise ConfigError(
            [
                ConfigProblem(
                    path,
                    "(yaml)",
                    f"YAML syntax error: {getattr(error, 'problem', error)}",
                    mark.line + 1 if mark else None,
                )
            ]
        ) from None


def check_files(loaded: LoadedEnvironment) -> None:
    """Files the configuration names must exist (relative paths: from the inventory)."""
    config = loaded.config
    wanted = {
        ("tls", "cert_file"): config.tls.cert_file,
        ("tls", "key_file"): config.tls.key_file,
        ("fleet", "ssh_public_key_file"): config.fleet.ssh_public_key_file,
        ("fleet", "ssh_private_key_file"): config.fleet.ssh_private_key_file,
        ("model", "registry", "ca_file"): config.model.registry.ca_file,
        ("service", "cert_file"): config.service.cert_file if config.service else None,
        ("service", "key_file"): config.service.key_file if config.service else None,
    }
    problems = [
        ConfigProblem(
            loaded.source,
            ".".join((CONFIG_VARIABLE, *location)),
            f"file not found: {resolve_path(value, loaded.inventory_dir)}",
            node_line(loaded.node, location),
        )
        for location, value in wanted.items()
        if value
        and not TEMPLATED.search(value)
        and not resolve_path(value, loaded.inventory_dir).is_file()
    ]
    if problems:
        raise ConfigError(problems)


def load_environment(env_or_dir: str | Path) -> LoadedEnvironment:
    """Load and validate inventories/ENV (or a given inventory directory)."""
    directory = environment_directory(env_or_dir)
    if not directory.is_dir():
        raise ConfigError([ConfigProblem(directory, "environment", "no such inventory directory")])
    found: list[tuple[Path, Any, yaml.Node | None]] = []
    for path in group_vars_files(directory):
        if is_vaulted(path):
            continue  # secrets only; Ansible decrypts them at run time
        data, node = parse_yaml(path)
        if isinstance(data, dict) and CONFIG_VARIABLE in data:
            mapping_node = node_line_node(node, CONFIG_VARIABLE)
            found.append((path, data[CONFIG_VARIABLE], mapping_node))
    if not found:
        raise ConfigError(
            [
                ConfigProblem(
                    directory / "group_vars" / "all",
                    CONFIG_VARIABLE,
                    "no group_vars file defines the mlops_vm variable",
                )
            ]
        )
    if len(found) > 1:
        raise ConfigError(
            [ConfigProblem(found[1][0], CONFIG_VARIABLE, f"defined again (first in {found[0][0]})")]
        )
    source, data, node = found[0]
    config = validate_config(data, source=source, node=node, env=directory.name)
    loaded = LoadedEnvironment(config, directory, source, node)
    check_files(loaded)
    if not config.managed:  # machine sizes: VMs only
        check_machine_settings(loaded)
    return loaded


def node_line_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if k.value == key), None)
    return None
