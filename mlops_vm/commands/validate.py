"""`validate`: the environment's configuration, offline by default (schema, files, references
between settings, the targets' documented limits, secrets defined in the environment's
vault, placeholders filled in) and the right-sizing warnings (VMs); with `--cloud`, what the
provider or target checks through the cloud's API too (what `provision` checks first).

Offline means no credentials and no network: a pull request check in CI can run it."""

from mlops_vm import display
from mlops_vm.commands.checks import check_environment, load
from mlops_vm.commands.exits import EXIT_BAD_INPUT, EXIT_OK, fail
from mlops_vm.environment.config import ConfigProblem
from mlops_vm.environment.load import environment_directory
from mlops_vm.environment.secrets import check_placeholders, check_secrets
from mlops_vm.environment.sizing import sizing_warnings


def validate(env: str, *, as_json: bool, cloud: bool = False) -> int:
    refuse_problems(env, check_placeholders(environment_directory(env)).problems, as_json)
    loaded = load(env, as_json)
    secrets = check_secrets(loaded)
    refuse_problems(env, secrets.problems, as_json)
    check_environment(loaded, as_json, with_cloud=cloud, offline=True)
    # Machine sizes: VMs only (a managed target's platform sizes its instances).
    warnings = [] if loaded.config.managed else [str(p) for p in sizing_warnings(loaded)]
    warnings += secrets.warnings
    if as_json:
        display.print_json(
            {
                "ok": True,
                "env": loaded.config.env,
                "source": str(loaded.source),
                "cloud": cloud,
                "warnings": warnings,
            }
        )
    else:
        checked = "with the cloud's API" if cloud else "offline"
        display.out.print(f"{loaded.source}: environment {loaded.config.env} is valid ({checked})")
        if warnings:
            display.print_problems("warnings:", warnings)
    return EXIT_OK


def refuse_problems(env: str, problems: list[ConfigProblem], as_json: bool) -> None:
    if problems:
        raise fail(
            EXIT_BAD_INPUT, f"invalid environment {env!r}", [str(p) for p in problems], as_json
        )
