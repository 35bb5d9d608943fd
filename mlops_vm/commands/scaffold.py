"""`init`: a new environment folder, commented, for a provider (VMs) or a managed target.

Writes inventories/ENV/ from the templates in commands/templates/ (*.tmpl: string.Template
with $env and $model, the model section every choice shares): the inventory plugin's file,
group_vars/all/mlops_vm.yml (every setting commented, CHANGE-ME where a value must be
filled in), group_vars/all/vault.yml (the secrets, to encrypt) and a .gitignore for the
files that must never be committed. An existing folder is never touched: exit 1 naming it.
Once the placeholders are filled in, `mlops-vm validate ENV` passes.
"""

import re
from importlib import resources
from pathlib import Path
from string import Template

from mlops_vm import display
from mlops_vm.commands.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, fail
from mlops_vm.environment.config import ENV_PATTERN
from mlops_vm.environment.load import inventory_dir
from mlops_vm.environment.secrets import PLACEHOLDER
from mlops_vm.provision.dispatch import PROVIDER_NAMES
from mlops_vm.services.dispatch import TARGET_NAMES, target_cloud

TEMPLATES = resources.files("mlops_vm.commands") / "templates"
ENV_NAME_HELP = "lowercase letters, digits and '-', starting with a letter, at most 31"


def template(name: str, env: str) -> str:
    """The template NAME (templates/NAME.tmpl) for ENV."""
    return Template((TEMPLATES / f"{name}.tmpl").read_text()).substitute(
        env=env, model=(TEMPLATES / "settings" / "model.yml.tmpl").read_text().rstrip("\n")
    )


def planned_files(env: str, provider: str, target: str | None) -> dict[str, str]:
    """Relative path -> text of each file of the new environment."""
    settings = f"settings/{target or provider}.yml"
    return {
        "mlops_vm.yml": template("inventory.yml", env),
        "group_vars/all/mlops_vm.yml": template(settings, env),
        "group_vars/all/vault.yml": template("vault.yml", env),
        ".gitignore": template("gitignore", env),
    }


def choice_problems(env: str, provider: str, target: str | None) -> list[str]:
    problems = []
    if not re.match(ENV_PATTERN, env):
        problems.append(f"environment name {env!r}: {ENV_NAME_HELP}")
    if provider not in PROVIDER_NAMES:
        problems.append(f"--provider {provider!r}: one of {', '.join(PROVIDER_NAMES)}")
    if target is not None:
        if target not in TARGET_NAMES:
            problems.append(f"--target {target!r}: one of {', '.join(TARGET_NAMES)}")
        elif target_cloud(target) != provider:
            problems.append(f"--target {target} runs on --provider {target_cloud(target)}")
    return problems


def default_name(provider: str, target: str | None) -> str:
    return f"my-{target or provider}".replace("_", "-")


def init(env_or_dir: str | None, *, provider: str, target: str | None) -> int:
    """Write the environment ENV_OR_DIR (a name under inventories/, or a path whose last
    part is the name) for PROVIDER / TARGET."""
    given = env_or_dir or default_name(provider, target)
    is_path = "/" in given
    env = Path(given).name if is_path else given
    problems = choice_problems(env, provider, target)
    if problems:
        raise fail(EXIT_BAD_INPUT, "cannot make this environment", problems, False)
    where = Path(given).absolute() if is_path else inventory_dir(env)
    if where.exists():
        raise fail(EXIT_FAILED, f"{where} already exists: not overwritten", [], False)
    for relative, text in planned_files(env, provider, target).items():
        path = where / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    display.out.print(f"wrote {where}/ for {target or 'VMs'} on {provider}")
    display.out.print(
        f"next: fill in each {PLACEHOLDER} (group_vars/all/), encrypt the vault with "
        f"`ansible-vault encrypt {where}/group_vars/all/vault.yml`, then "
        f"`mlops-vm validate {given}`",
        markup=False,
        highlight=False,
    )
    return EXIT_OK
