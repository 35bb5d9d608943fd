"""Shell completion of environment names (typer completes commands and options itself;
`mlops-vm --install-completion` installs it for the current shell)."""

from mlops_vm.environment.load import environment_names


def complete_environment(incomplete: str) -> list[str]:
    """The environments under inventories/ whose name starts with INCOMPLETE."""
    return [name for name in environment_names() if name.startswith(incomplete)]
