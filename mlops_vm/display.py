"""What the CLI shows: live progress from runner events, summaries, problems."""

import json
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from mlops_vm.runner import RunState

console = Console(stderr=True)
out = Console()


def progress_view(state: RunState, title: str) -> Group:
    """A table of host x (current task, ok, changed, failed) under a header line."""
    header = Text(f"{title}  {state.elapsed_s:5.0f}s  ", style="bold")
    header.append(f"{state.play}", style="cyan")
    if state.task:
        header.append(f" / {state.task}")
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column, justify in (
        ("host", "left"),
        ("task", "left"),
        ("ok", "right"),
        ("changed", "right"),
        ("failed", "right"),
    ):
        table.add_column(column, justify=justify)
    for host, progress in sorted(state.hosts.items()):
        table.add_row(
            host,
            progress.task[:60],
            str(progress.ok),
            Text(str(progress.changed), style="yellow" if progress.changed else ""),
            Text(str(progress.failed), style="red" if progress.failed else ""),
        )
    return Group(header, table)


def print_json(payload: dict[str, Any]) -> None:
    out.print_json(json.dumps(payload, default=str))


def print_problems(title: str, problems: list[str]) -> None:
    console.print(f"[bold red]{title}[/]")
    for problem in problems:
        console.print(f"  {problem}", highlight=False, markup=False)


def print_summary(rows: list[tuple[str, str]], title: str) -> None:
    table = Table(title=title, show_header=False, box=None, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)
