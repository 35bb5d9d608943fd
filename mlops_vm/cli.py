"""The `mlops-vm` command: provision, deploy, rollback, status, logs, destroy and validate.

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
from mlops_vm.config import IMAGE_REFERENCE, ConfigError, LoadedEnvironment, load_environment
from mlops_vm.provision import ErrorCode, Provider, ProvisionError, get_provider
from mlops_vm.provision.model import ROLE_MODEL
from mlops_vm.release.choose import choose_release
from mlops_vm.release.hosts import read_hosts, stream_logs
from mlops_vm.runner import PlaybookRun, RunResult, RunState
from mlops_vm.services import ServiceTarget, get_service_target
from mlops_vm.services.commands import service_status, status_rows
from mlops_vm.services.environment import service_spec
from mlops_vm.sizing import sizing_warnings
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
CheckOpt = Annotated[bool, typer.Option("--check", help="Show the plan; change nothing.")]


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


def rejected(
    loaded: LoadedEnvironment, by: str, error: ProvisionError, as_json: bool
) -> typer.Exit:
    code = EXIT_BAD_INPUT if error.code == ErrorCode.INVALID_INPUT else EXIT_FAILED
    return fail(code, f"{loaded.source}: rejected by {by}", [str(error)], as_json)


def check_with_provider(loaded: LoadedEnvironment, provider: Provider, as_json: bool) -> None:
    """What the provider can check before anything is created (regions, ports, files)."""
    try:
        provider.validate(
            fleet_spec(loaded.config, loaded.inventory_dir),
            load_balancer_spec(loaded.config, loaded.inventory_dir),
        )
    except ProvisionError as error:
        raise rejected(loaded, f"the {provider.name} provider", error, as_json) from None


def service_target_for(loaded: LoadedEnvironment, as_json: bool) -> ServiceTarget:
    try:
        return get_service_target(loaded.config.target, provider_settings(loaded.config))
    except ProvisionError as error:
        raise fail(EXIT_BAD_INPUT, "target not available", [str(error)], as_json) from None


def check_environment(loaded: LoadedEnvironment, as_json: bool, *, with_cloud: bool) -> None:
    """The provider (VMs) or the managed target can be used; WITH_CLOUD, it also checks
    what it can before anything is created (exit 2 naming the problem)."""
    if not loaded.config.managed:
        provider = provider_for(loaded, as_json)
        if with_cloud:
            check_with_provider(loaded, provider, as_json)
        return
    target = service_target_for(loaded, as_json)
    if with_cloud:
        try:
            target.validate(service_spec(loaded.config, loaded.inventory_dir))
        except ProvisionError as error:
            raise rejected(loaded, f"the {target.name} target", error, as_json) from None


def known_secrets(loaded: LoadedEnvironment) -> list[str]:
    """Secret values the run must never write down (censored from the run folder)."""
    registry = loaded.config.model.registry
    secrets = [value for value in (registry.password,) if value and "{{" not in value]
    try:
        from mlops_vm.localcloud.registry import credentials_file, ensure_credentials

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
    extravars: dict[str, Any] | None = None,
) -> RunResult:
    run = PlaybookRun(
        env=loaded.config.env,
        inventory_dir=loaded.inventory_dir,
        playbook=playbook,
        provider=loaded.config.provider.name,
        check=check,
        verbose=verbose,
        secrets=known_secrets(loaded),
        extravars={"mlops_vm_release_batch": loaded.config.release.batch, **(extravars or {})},
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


def run_changes(state: RunState) -> list[str]:
    """The playbook's own list when it got that far; else what the modules reported as they
    ran (a failed or interrupted run never reaches the playbook's set_stats)."""
    if "planned" in state.data:
        return list(state.data["planned"])
    return list(state.changes)


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
        "changed_by_host": state.changed_by_host,
        "planned" if check else "changes": run_changes(state),
        "targets": state.data.get("targets", []),
        "release": state.data.get("release"),
        "service": state.data.get("service") or None,
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
        *release_rows(summary.get("release")),
        *service_rows(summary.get("service")),
        ("time", f"{summary['elapsed_s']:.0f}s"),
        ("run log", summary["run_dir"]),
    ]
    display.print_summary(rows, title)
    if summary["failures"]:
        display.print_problems(
            "failed:",
            [f"{f['host']}: task '{f['task']}': {f['message']}" for f in summary["failures"]],
        )


def service_rows(service: dict[str, Any] | None) -> list[tuple[str, str]]:
    """A managed service's revision and health (playbooks/service.yml records them)."""
    if not service:
        return []
    active = (service.get("active") or {}).get("id", "-")
    health = "healthy" if service.get("healthy") else service.get("reason") or "-"
    return [("service", f"{service['name']}: {active}, {health}")]


def release_rows(release: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not release or not release.get("image"):
        return []
    changed = ", ".join(release.get("hosts_changed") or []) or "none (already running)"
    rows = [("release", f"{release['image']} ({release.get('source')}), hosts changed: {changed}")]
    rows += [("note", note) for note in release.get("notes") or []]
    if release.get("failure"):
        failure = release["failure"]
        rows.append(("rolled back", f"{failure['host']}: {failure['reason']}"))
    return rows


def run_and_report(
    loaded: LoadedEnvironment,
    playbook: str,
    title: str,
    check: bool,
    verbose: bool,
    as_json: bool,
    extravars: dict[str, Any] | None = None,
) -> None:
    """Run PLAYBOOK, print its summary (or JSON), exit with the run's code."""
    result = run_playbook(
        loaded, playbook, title, check=check, verbose=verbose, as_json=as_json, extravars=extravars
    )
    summary = run_summary(result, check)
    if as_json:
        display.print_json(summary)
    else:
        show_run(summary, title)
    raise typer.Exit(exit_code(result))


@app.command()
def provision(
    env: EnvArg,
    check: CheckOpt = False,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Launch the fleet, configure it, put the load balancer in front, smoke-test it."""
    loaded = load(env, as_json)
    check_environment(loaded, as_json, with_cloud=True)
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
    check_environment(loaded, as_json, with_cloud=False)
    if not yes:
        if not sys.stdin.isatty():
            raise fail(
                EXIT_BAD_INPUT, "destroy needs --yes when not run interactively", [], as_json
            )
        typer.confirm(f"Delete every resource of environment {loaded.config.env!r}?", abort=True)
    title = f"destroyed {loaded.config.env}"
    run_and_report(loaded, "playbooks/destroy.yml", title, False, verbose, as_json)


@app.command()
def deploy(
    env: EnvArg,
    image: Annotated[
        str | None,
        typer.Option("--image", help="Image to release (default: the inventory's model.image)."),
    ] = None,
    check: CheckOpt = False,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Release a model version host by host: out of the load balancer, swap, health-gate, back
    in; a host that does not get healthy rolls the release back everywhere (exit 1)."""
    loaded = load(env, as_json)
    if image is not None and not IMAGE_REFERENCE.match(image):
        raise fail(
            EXIT_BAD_INPUT,
            f"--image {image!r} is not an image reference",
            ["registry[:port]/path[:tag][@sha256:digest], lowercase path"],
            as_json,
        )
    check_environment(loaded, as_json, with_cloud=False)
    extravars: dict[str, Any] = {"mlops_vm_release_mode": "deploy"}
    if image:
        extravars["mlops_vm_release_image"] = image
    title = f"{'release plan for' if check else 'released'} {loaded.config.env}"
    run_and_report(loaded, "playbooks/release.yml", title, check, verbose, as_json, extravars)


@app.command()
def rollback(
    env: EnvArg,
    check: CheckOpt = False,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Go back to the previous release recorded on the hosts, host by host like a deploy."""
    loaded = load(env, as_json)
    check_environment(loaded, as_json, with_cloud=False)
    title = f"{'rollback plan for' if check else 'rolled back'} {loaded.config.env}"
    extravars = {"mlops_vm_release_mode": "rollback"}
    run_and_report(loaded, "playbooks/release.yml", title, check, verbose, as_json, extravars)


@app.command()
def logs(
    env: EnvArg,
    host: Annotated[str | None, typer.Option("--host", help="Only this host.")] = None,
    tail: Annotated[int, typer.Option("--tail", help="Lines per container.")] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming.")] = False,
) -> None:
    """The model containers' logs across the hosts, each line prefixed with host | container."""
    loaded = load(env, False)
    if loaded.config.managed:
        raise typer.Exit(service_logs(loaded, tail=tail, follow=follow))
    provider = provider_for(loaded, False)
    try:
        instances = provider.list_instances(loaded.config.env, ROLE_MODEL)
    except ProvisionError as error:
        raise fail(EXIT_FAILED, "logs failed", [str(error)], False) from None
    if host:
        instances = [i for i in instances if host in (i.name, i.id)]
        if not instances:
            raise fail(EXIT_BAD_INPUT, f"no model host {host!r} in {loaded.config.env}", [], False)
    code = stream_logs(instances, loaded.config, loaded.inventory_dir, tail=tail, follow=follow)
    raise typer.Exit(code)


def service_logs(loaded: LoadedEnvironment, *, tail: int, follow: bool) -> int:
    """The managed service's container logs (the platform's log store)."""
    if follow:
        raise fail(EXIT_BAD_INPUT, "--follow is for VMs; a managed service: --tail", [], False)
    target = service_target_for(loaded, False)
    try:
        lines = target.logs(loaded.config.env, tail=tail)
    except ProvisionError as error:
        raise fail(EXIT_FAILED, "logs failed", [str(error)], False) from None
    for line in lines:
        display.out.print(line, markup=False, highlight=False)
    return EXIT_OK


def host_status_rows(
    loaded: LoadedEnvironment, provider: Provider
) -> tuple[list[dict[str, Any]], str | None]:
    """One row per instance (release, replicas, LB health) and the release the inventory asks
    for (with the rules of `provision`)."""
    config = loaded.config
    instances = provider.list_instances(config.env)
    health = {
        t.instance_id: t
        for t in provider.target_health(load_balancer_spec(config, loaded.inventory_dir))
    }
    model_hosts = [i for i in instances if i.role == ROLE_MODEL]
    readings = read_hosts(model_hosts, config, loaded.inventory_dir) if model_hosts else {}
    wanted = None
    records = {name: r.record for name, r in readings.items() if not r.error}
    if config.fleet.mode == "fleet":
        wanted = choose_release("provision", config.model.model_dump(), records).release["image"]
    rows = []
    for i in instances:
        reading = readings.get(i.name)
        row: dict[str, Any] = {
            "name": i.name,
            "role": i.role,
            "status": str(i.status),
            "address": i.address,
            "healthy": health[i.id].healthy if i.id in health else None,
            "health": health[i.id].reason if i.id in health else "",
        }
        if reading is not None:
            row.update(
                running_image=reading.current.get("image"),
                previous_image=reading.previous.get("image"),
                deployed_by=reading.current.get("source"),
                deployed_at=reading.current.get("deployed_at"),
                replicas_ready=sum(r["ready"] for r in reading.replicas),
                replicas=reading.current.get("replicas"),
                read_error=reading.error,
            )
        rows.append(row)
    return rows, wanted


def status_problems(rows: list[dict[str, Any]], wanted: str | None) -> list[str]:
    problems = []
    for row in rows:
        name = row["name"]
        if row["role"] != ROLE_MODEL:
            continue
        if row["healthy"] is False:
            problems.append(f"{name}: not healthy behind the load balancer ({row['health']})")
        if row.get("read_error"):
            problems.append(f"{name}: could not be read ({row['read_error']})")
        elif wanted and "running_image" in row and row["running_image"] != wanted:
            problems.append(f"{name}: runs {row['running_image']}, the release is {wanted}")
        if row.get("replicas") and row.get("replicas_ready", 0) < row["replicas"]:
            problems.append(f"{name}: {row['replicas_ready']}/{row['replicas']} replicas ready")
    return problems


def managed_status(loaded: LoadedEnvironment, as_json: bool) -> int:
    """`status` of a managed service: its revisions, traffic and health, from the platform."""
    target = service_target_for(loaded, as_json)
    try:
        payload = service_status(loaded, target)
    except ProvisionError as error:
        raise fail(EXIT_FAILED, "status failed", [str(error)], as_json) from None
    if as_json:
        display.print_json(payload)
    else:
        display.print_summary(status_rows(payload), f"environment {loaded.config.env}")
        if payload["problems"]:
            display.print_problems("not as it should be:", payload["problems"])
    return EXIT_FAILED if payload["problems"] else EXIT_OK


@app.command()
def status(env: EnvArg, as_json: JsonOpt = False) -> None:
    """Per host: running and previous release, replicas ready, health behind the load balancer.
    Exits 1 when a target is unhealthy or a host runs another image than the release."""
    loaded = load(env, as_json)
    if loaded.config.managed:
        raise typer.Exit(managed_status(loaded, as_json))
    provider = provider_for(loaded, as_json)
    try:
        rows, wanted = host_status_rows(loaded, provider)
    except ProvisionError as error:
        raise fail(EXIT_FAILED, "status failed", [str(error)], as_json) from None
    problems = status_problems(rows, wanted)
    code = EXIT_FAILED if problems else EXIT_OK
    if as_json:
        display.print_json(
            {
                "env": loaded.config.env,
                "ok": not problems,
                "release": wanted,
                "inventory_image": loaded.config.model.image,
                "instances": rows,
                "problems": problems,
            }
        )
        raise typer.Exit(code)
    if not rows:
        display.out.print(f"environment {loaded.config.env}: no instances")
        raise typer.Exit(code)
    summary = [("release", f"{wanted or '-'} (inventory: {loaded.config.model.image})")]
    for r in rows:
        line = (
            f"{r['role']:6} {r['status']:8} {r['address'] or '-':15} "
            f"{'healthy' if r['healthy'] else r['health'] or '-'}"
        )
        if "running_image" in r:
            line += (
                f"\n  running {r['running_image'] or '-'} ({r['deployed_by'] or '-'}, "
                f"{r['deployed_at'] or '-'}), replicas ready {r['replicas_ready']}/"
                f"{r['replicas'] or '-'}\n  previous {r['previous_image'] or '-'}"
            )
        summary.append((r["name"], line))
    display.print_summary(summary, f"environment {loaded.config.env}")
    if problems:
        display.print_problems("not as it should be:", problems)
    raise typer.Exit(code)


@app.command()
def validate(env: EnvArg, as_json: JsonOpt = False) -> None:
    """Check the environment's configuration (and what the provider can check up front)."""
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


def main() -> None:  # pragma: no cover - console script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
