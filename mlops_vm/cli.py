"""The `mlops-vm` command: provision, status, destroy and validate an environment.

Exit codes: 0 ok, 1 the run failed, 2 bad input (nothing was created or changed),
130 interrupted (Ctrl-C; the run stops cleanly and its log is kept).
"""

import json
import sys
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.live import Live

from mlops_vm import display
from mlops_vm.config import ConfigError, LoadedEnvironment, load_environment
from mlops_vm.provision import ErrorCode, Provider, ProvisionError, get_provider
from mlops_vm.runner import PlaybookRun, RunResult
from mlops_vm.specs import fleet_spec, load_balancer_spec, provider_settings

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Put a containerised ML model into production behind HTTPS on VMs.",
)

EnvArg = Annotated[str, typer.Argument(help="Environment: a name under inventories/ or a path.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show Ansible's own output.")]


def fail(code: int, title: str, problems: list[str], as_json: bool) -> typer.Exit:
    if as_json:
        display.print_json({"ok": False, "error": title, "problems": problems})
    else:
        display.print_problems(title, problems)
    return typer.Exit(code)


def load(env: str, as_json: bool) -> LoadedEnvironment:
    try:
        return load_environment(env)
    except ConfigError as error:
        raise fail(
            EXIT_BAD_INPUT,
            f"invalid environment {env!r}",
            [str(p) for p in error.problems],
            as_json,
        ) from None


def provider_for(loaded: LoadedEnvironment, as_json: bool) -> Provider:
    try:
        return get_provider(provider_settings(loaded.config))
    except ProvisionError as error:
        raise fail(EXIT_BAD_INPUT, "provider not available", [str(error)], as_json) from None


def check_with_provider(loaded: LoadedEnvironment, provider: Provider, as_json: bool) -> None:
    """What the provider can check before anything is created (regions, ports, files)."""
    try:
        provider.validate(
            fleet_spec(loaded.config, loaded.inventory_dir),
            load_balancer_spec(loaded.config, loaded.inventory_dir),
        )
    except ProvisionError as error:
        code = EXIT_BAD_INPUT if error.code == ErrorCode.INVALID_INPUT else EXIT_FAILED
        raise fail(
            code,
            f"{loaded.source}: rejected by the {provider.name} provider",
            [str(error)],
            as_json,
        ) from None


def known_secrets(loaded: LoadedEnvironment) -> list[str]:
    """Secret values the run must never write down (censored from the run folder)."""
    registry = loaded.config.model.registry
    secrets = [value for value in (registry.password,) if value and "{{" not in value]
    try:
        from mlops_vm.platform.registry import credentials_file, ensure_credentials

        if credentials_file().exists():
            secrets.append(ensure_credentials().password)
    except (OSError, ValueError, KeyError):
        pass
    return secrets


def run_playbook(
    loaded: LoadedEnvironment,
    playbook: str,
    title: str,
    *,
    check: bool,
    verbose: bool,
    as_json: bool,
) -> RunResult:
    run = PlaybookRun(
        env=loaded.config.env,
        inventory_dir=loaded.inventory_dir,
        playbook=playbook,
        check=check,
        verbose=verbose,
        secrets=known_secrets(loaded),
    )
    if as_json or verbose or not display.console.is_terminal:
        return run.run()
    with Live(
        display.progress_view(run.state, title),
        console=display.console,
        refresh_per_second=4,
        transient=True,
    ) as live:
        run.on_event = lambda state: live.update(display.progress_view(state, title))
        return run.run()


def exit_code(result: RunResult) -> int:
    if result.status == "canceled":
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_FAILED


def run_summary(result: RunResult, check: bool) -> dict[str, Any]:
    state = result.state
    return {
        "ok": result.ok,
        "status": result.status,
        "check": check,
        "endpoint": state.data.get("endpoint"),
        "ca_file": state.data.get("ca_file") or None,
        "hosts": sorted(h for h in state.hosts if h != "localhost"),
        "changed": state.changed,
        "changed_by_host": state.stats.get("changed", {}),
        "planned" if check else "changes": state.data.get("planned", []),
        "targets": state.data.get("targets", []),
        "failures": [asdict(f) for f in state.failures],
        "elapsed_s": round(state.elapsed_s, 1),
        "run_dir": str(result.run_dir),
    }


def show_run(summary: dict[str, Any], title: str) -> None:
    changes_key = "planned" if summary["check"] else "changes"
    rows = [
        ("status", summary["status"]),
        ("endpoint", summary["endpoint"] or "-"),
        ("ca file", summary["ca_file"] or "-"),
        ("hosts", ", ".join(summary["hosts"]) or "-"),
        (
            "health",
            ", ".join(
                f"{t['instance_id']}={'healthy' if t['healthy'] else t['reason']}"
                for t in summary["targets"]
            )
            or "-",
        ),
        (
            "changed tasks",
            f"{summary['changed']} " + json.dumps(summary["changed_by_host"], sort_keys=True),
        ),
        (changes_key, "\n".join(summary[changes_key]) or "none"),
        ("time", f"{summary['elapsed_s']:.0f}s"),
        ("run log", summary["run_dir"]),
    ]
    display.print_summary(rows, title)
    if summary["failures"]:
        display.print_problems(
            "failed:",
            [f"{f['host']}: task '{f['task']}': {f['message']}" for f in summary["failures"]],
        )


def run_and_report(
    loaded: LoadedEnvironment,
    playbook: str,
    title: str,
    check: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    """Run PLAYBOOK, print its summary (or JSON), exit with the run's code."""
    result = run_playbook(loaded, playbook, title, check=check, verbose=verbose, as_json=as_json)
    summary = run_summary(result, check)
    if as_json:
        display.print_json(summary)
    else:
        show_run(summary, title)
    raise typer.Exit(exit_code(result))


@app.command()
def provision(
    env: EnvArg,
    check: Annotated[bool, typer.Option("--check", help="Show the plan; change nothing.")] = False,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Launch the fleet, configure it, put the load balancer in front, smoke-test it."""
    loaded = load(env, as_json)
    check_with_provider(loaded, provider_for(loaded, as_json), as_json)
    title = f"{'plan for' if check else 'provisioned'} {loaded.config.env}"
    run_and_report(loaded, "playbooks/provision.yml", title, check, verbose, as_json)


@app.command()
def destroy(
    env: EnvArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Delete everything the environment owns (found by its tags)."""
    loaded = load(env, as_json)
    provider_for(loaded, as_json)
    if not yes:
        if not sys.stdin.isatty():
            raise fail(
                EXIT_BAD_INPUT, "destroy needs --yes when not run interactively", [], as_json
            )
        typer.confirm(f"Delete every resource of environment {loaded.config.env!r}?", abort=True)
    title = f"destroyed {loaded.config.env}"
    run_and_report(loaded, "playbooks/destroy.yml", title, False, verbose, as_json)


@app.command()
def status(env: EnvArg, as_json: JsonOpt = False) -> None:
    """List the environment's instances and their health behind the load balancer."""
    loaded = load(env, as_json)
    provider = provider_for(loaded, as_json)
    try:
        instances = provider.list_instances(loaded.config.env)
        health = {
            t.instance_id: t
            for t in provider.target_health(load_balancer_spec(loaded.config, loaded.inventory_dir))
        }
    except ProvisionError as error:
        raise fail(EXIT_FAILED, "status failed", [str(error)], as_json) from None
    rows = [
        {
            "name": i.name,
            "role": i.role,
            "status": str(i.status),
            "address": i.address,
            "healthy": health[i.id].healthy if i.id in health else None,
            "health": health[i.id].reason if i.id in health else "",
        }
        for i in instances
    ]
    if as_json:
        display.print_json({"env": loaded.config.env, "instances": rows})
        return
    if not rows:
        display.out.print(f"environment {loaded.config.env}: no instances")
        return
    display.print_summary(
        [
            (
                r["name"],
                f"{r['role']:6} {r['status']:8} {r['address'] or '-':15} "
                f"{'healthy' if r['healthy'] else r['health'] or '-'}",
            )
            for r in rows
        ],
        f"environment {loaded.config.env}",
    )


@app.command()
def validate(env: EnvArg, as_json: JsonOpt = False) -> None:
    """Check the environment's configuration (and what the provider can check up front)."""
    loaded = load(env, as_json)
    check_with_provider(loaded, provider_for(loaded, as_json), as_json)
    if as_json:
        display.print_json({"ok": True, "env": loaded.config.env, "source": str(loaded.source)})
    else:
        display.out.print(f"{loaded.source}: environment {loaded.config.env} is valid")


def main() -> None:  # pragma: no cover - console script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
