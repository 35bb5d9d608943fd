"""`top`: the request figures of `status` (per host and per release: requests/s, 5xx share,
p50 / p99), as a live view refreshed every few seconds until Ctrl-C.

Each refresh is one `status` reading (commands/status.py): the figures over the last
WINDOW seconds come from the hosts' exporters' own history, so a refresh never waits for a
window to pass; `render` turns one reading into the view and is what the tests check."""

import time
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from mlops_vm import display
from mlops_vm.commands.checks import load, provider_for, service_target_for
from mlops_vm.commands.exits import EXIT_FAILED, EXIT_OK, fail
from mlops_vm.commands.status import host_status, service_status
from mlops_vm.environment.config import LoadedEnvironment
from mlops_vm.provision import ProvisionError

COLUMNS = ("requests/s", "5xx", "p50", "p99", "requests")


def cells(figures: dict[str, Any] | None) -> list[str]:
    """The columns of one window's figures (Figures.as_json()); dashes when there are none."""
    if not figures:
        return ["-"] * len(COLUMNS)

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    return [
        f"{figures['requests_per_s']:.1f}",
        f"{figures['error_share']:.1%}",
        ms(figures["p50_ms"]),
        ms(figures["p99_ms"]),
        f"{figures['requests']:.0f}",
    ]


def render(payload: dict[str, Any], *, refreshed_at: str = "") -> Group:
    """One reading of `status` as the live view: a table of hosts, then one of releases."""
    figures = payload.get("figures") or {}
    window = figures.get("window_s")
    title = f"environment {payload['env']}" + (f", last {window:.0f} s" if window else "")
    hosts = Table(title=title, title_justify="left")
    for column in ("host", "release", "health", *COLUMNS):
        hosts.add_column(column, justify="right" if column in COLUMNS else "left")
    for row in payload.get("instances", []):
        if row.get("role") != "model":
            continue
        health = "healthy" if row.get("healthy") else (row.get("health") or "-")
        image = (row.get("running_image") or "-").rpartition("/")[2]
        hosts.add_row(row["name"], image, health, *cells(row.get("figures")))
    releases = Table(title="per release", title_justify="left")
    for column in ("release", *COLUMNS):
        releases.add_column(column, justify="right" if column in COLUMNS else "left")
    for name, each in (figures.get("releases") or {}).items():
        releases.add_row(name or "(none)", *cells(each))
    releases.add_row(Text("all", style="bold"), *cells(figures.get("total")))
    footer = Text(f"refreshed {refreshed_at}, Ctrl-C to stop" if refreshed_at else "Ctrl-C to stop")
    parts: list[Any] = [hosts, releases]
    if payload.get("problems"):
        parts.append(Text("\n".join(payload["problems"]), style="red"))
    return Group(*parts, footer)


def reading(loaded: LoadedEnvironment, window_s: float) -> dict[str, Any]:
    if loaded.config.managed:
        return service_status(loaded, service_target_for(loaded, False))
    return host_status(loaded, provider_for(loaded, False), window_s)


def top(env: str, *, window_s: float, refresh_s: float) -> int:
    loaded = load(env, False)

    def view() -> Group:
        return render(reading(loaded, window_s), refreshed_at=time.strftime("%H:%M:%S"))

    try:
        with Live(view(), console=display.out, auto_refresh=False) as live:
            while True:
                time.sleep(refresh_s)  # the refresh period the user asked for
                live.update(view(), refresh=True)
    except KeyboardInterrupt:
        return EXIT_OK
    except ProvisionError as error:
        raise fail(EXIT_FAILED, "top failed", [str(error)], False) from None
