"""The `mlops-vm` command: typer wired to the commands (mlops_vm/commands/), nothing else.

Exit codes (commands/exits.py): 0 ok, 1 the run failed, 2 bad input (nothing was created or
changed), 130 interrupted (Ctrl-C; the run stops cleanly and its log is kept).
"""

from collections.abc import Callable
from typing import Annotated, NoReturn

import typer

from mlops_vm.commands import history as history_command
from mlops_vm.commands import image as image_command
from mlops_vm.commands import lock as lock_command
from mlops_vm.commands import logs as logs_command
from mlops_vm.commands import release, remote, run, scaffold
from mlops_vm.commands import status as status_command
from mlops_vm.commands import top as top_command
from mlops_vm.commands import validate as validate_command
from mlops_vm.commands.completion import complete_environment
from mlops_vm.commands.exits import Stop

app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion
    no_args_is_help=True,
    help="Put a containerised ML model into production behind HTTPS on VMs.",
)

EnvArg = Annotated[
    str,
    typer.Argument(
        help="Environment: a name under inventories/ or a path.",
        autocompletion=complete_environment,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show Ansible's own output.")]
CheckOpt = Annotated[bool, typer.Option("--check", help="Show the plan; change nothing.")]


def finish(command: Callable[[], int]) -> NoReturn:
    """Run COMMAND and exit with its code (or the code it stopped with)."""
    try:
        code = command()
    except Stop as stop:
        code = stop.code
    raise typer.Exit(code)


@app.command()
def provision(
    env: EnvArg,
    check: CheckOpt = False,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Launch the fleet, configure it, put the load balancer in front, smoke-test it."""
    finish(lambda: run.provision(env, check=check, as_json=as_json, verbose=verbose))


@app.command()
def destroy(
    env: EnvArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Delete everything the environment owns (found by its tags)."""
    finish(
        lambda: run.destroy(
            env,
            yes=yes,
            as_json=as_json,
            verbose=verbose,
            confirm=lambda question: typer.confirm(question, abort=True),
        )
    )


@app.command()
def deploy(
    env: EnvArg,
    image: Annotated[
        str | None,
        typer.Option("--image", help="Image to release (default: the inventory's model.image)."),
    ] = None,
    canary: Annotated[
        bool | None,
        typer.Option(
            "--canary/--no-canary",
            help="Judge the first batch against the old release over release.canary.window_s "
            "(default: release.canary.enabled).",
        ),
    ] = None,
    check: CheckOpt = False,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Release a model version host by host: out of the load balancer, swap, health-gate, back
    in; a host that does not get healthy, or a canary that serves worse than the old release
    (--canary), rolls the release back everywhere (exit 1)."""
    finish(
        lambda: release.deploy(
            env, image=image, check=check, as_json=as_json, verbose=verbose, canary=canary
        )
    )


@app.command()
def rollback(
    env: EnvArg,
    to: Annotated[
        int | None,
        typer.Option(
            "--to", metavar="N", help="Go back to the release of entry N of `mlops-vm history`."
        ),
    ] = None,
    check: CheckOpt = False,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Go back to the previous release recorded on the hosts (or, with --to N, to the one of
    history entry N), host by host like a deploy."""
    finish(lambda: release.rollback(env, to=to, check=check, as_json=as_json, verbose=verbose))


image_app = typer.Typer(no_args_is_help=True, help="Machine images baked per release.")
app.add_typer(image_app, name="image")


@image_app.command("build")
def image_build(
    env: EnvArg,
    check: CheckOpt = False,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Bake the release's machine image (scaling groups boot from it), unless an image with
    the same fingerprint exists; remove the images beyond fleet.keep_images."""
    finish(lambda: image_command.build(env, check=check, as_json=as_json, verbose=verbose))


@app.command()
def lock(
    env: EnvArg,
    release_it: Annotated[
        bool, typer.Option("--release", help="Clear the lock (one left by a run that died).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Who holds the environment's deploy lock, since when, doing what (stale: its run died)."""
    finish(lambda: lock_command.lock(env, release_it=release_it, as_json=as_json))


@app.command()
def history(env: EnvArg, as_json: JsonOpt = False) -> None:
    """Every provision, deploy and rollback that changed the model: when, who, from where,
    the command, the release before and after, the result and how long it took."""
    finish(lambda: history_command.history(env, as_json=as_json))


@app.command()
def logs(
    env: EnvArg,
    host: Annotated[str | None, typer.Option("--host", help="Only this host.")] = None,
    tail: Annotated[int, typer.Option("--tail", help="Lines per container.")] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming.")] = False,
) -> None:
    """The model containers' logs across the hosts, each line prefixed with host | container."""
    finish(lambda: logs_command.logs(env, host=host, tail=tail, follow=follow))


@app.command()
def status(
    env: EnvArg,
    as_json: JsonOpt = False,
    window: Annotated[
        int,
        typer.Option(
            "--window", min=1, max=900, help="Seconds of traffic the request figures cover."
        ),
    ] = status_command.DEFAULT_WINDOW_S,
) -> None:
    """Per host: running and previous release, replicas ready, health behind the load balancer,
    and per host and release: requests/s, 5xx share, p50 and p99 over the last --window
    seconds. Exits 1 when a target is unhealthy or a host runs another image than the release."""
    finish(lambda: status_command.status(env, as_json=as_json, window_s=window))


@app.command()
def top(
    env: EnvArg,
    window: Annotated[
        int,
        typer.Option(
            "--window", min=1, max=900, help="Seconds of traffic the request figures cover."
        ),
    ] = 30,
    every: Annotated[
        float, typer.Option("--every", min=1.0, help="Seconds between two refreshes.")
    ] = 3.0,
) -> None:
    """A live view of the request figures per host and per release (requests/s, 5xx share,
    p50 and p99 over the last --window seconds), refreshed every --every seconds until Ctrl-C."""
    finish(lambda: top_command.top(env, window_s=window, refresh_s=every))


@app.command()
def validate(
    env: EnvArg,
    cloud: Annotated[
        bool,
        typer.Option("--cloud", help="Also check through the cloud's API (needs credentials)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the environment offline: schema, files, references, the target's limits, secrets
    in the vault (no credentials, no network). --cloud adds what the cloud's API answers."""
    finish(lambda: validate_command.validate(env, as_json=as_json, cloud=cloud))


@app.command()
def init(
    env: Annotated[
        str | None,
        typer.Argument(help="New environment: a name under inventories/ or a path."),
    ] = None,  # a new name: nothing to complete
    provider: Annotated[
        str, typer.Option("--provider", help="local, static, aws, gcp or azure.")
    ] = ...,  # type: ignore[assignment]
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="A managed target instead of VMs: ecs, lambda, cloud_run, app_service."
        ),
    ] = None,
) -> None:
    """Write a commented environment folder (settings, vault stub, .gitignore) for the
    provider or target; fill in each CHANGE-ME, then `mlops-vm validate`."""
    finish(lambda: scaffold.init(env, provider=provider, target=target))


@app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_(
    env: EnvArg,
    command: Annotated[list[str] | None, typer.Argument(help="The command, after --.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Only this model host.")] = None,
    all_hosts: Annotated[bool, typer.Option("--all", help="Every model host (default).")] = False,
) -> None:
    """Run a command on the model hosts over SSH (as root), each output line prefixed with
    the host; exits with the worst host's code. Example: mlops-vm exec dev -- docker ps"""
    if host and all_hosts:
        raise typer.BadParameter("--host and --all exclude each other")
    finish(lambda: remote.exec_command(env, command or [], host=host))


@app.command()
def ssh(
    env: EnvArg,
    host: Annotated[str | None, typer.Argument(help="Model host (default: the first).")] = None,
    container: Annotated[
        bool, typer.Option("--container", help="Into the model container (docker exec -it).")
    ] = False,
) -> None:
    """An interactive session on a model host, over the SSH settings Ansible uses."""
    finish(lambda: remote.ssh(env, host, container=container))


def main() -> None:  # pragma: no cover - console script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
