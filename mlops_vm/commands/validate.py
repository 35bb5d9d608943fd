"""`validate`: the environment's configuration, what the provider or target can check up
front, and the right-sizing warnings (VMs)."""

from mlops_vm import display
from mlops_vm.commands.checks import check_environment, load
from mlops_vm.commands.exits import EXIT_OK
from mlops_vm.environment.sizing import sizing_warnings


def validate(env: str, *, as_json: bool) -> int:
    loaded = load(env, as_json)
    check_environment(loaded, as_json, with_cloud=True)
    # Machine sizes: VMs only (a managed target's platform sizes its instances).
    warnings = [] if loaded.config.managed else [str(p) for p in sizing_warnings(loaded)]
    if as_json:
        display.print_json(
            {
                "ok": True,
                "env": loaded.config.env,
                "source": str(loaded.source),
                "warnings": warnings,
            }
        )
    else:
        display.out.print(f"{loaded.source}: environment {loaded.config.env} is valid")
        if warnings:
            display.print_problems("right-sizing warnings:", warnings)
    return EXIT_OK
