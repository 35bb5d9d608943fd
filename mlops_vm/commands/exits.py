"""Exit codes of every command, and how a command stops early with one.

0 ok, 1 the run failed, 2 bad input (nothing was created or changed), 130 interrupted
(Ctrl-C; the run stops cleanly and its log is kept).
"""

from mlops_vm import display

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class Stop(Exception):
    """The command ends here with CODE; what went wrong is already printed."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def fail(code: int, title: str, problems: list[str], as_json: bool) -> Stop:
    """Print TITLE and PROBLEMS (or their JSON); the Stop to raise with CODE."""
    if as_json:
        display.print_json({"ok": False, "error": title, "problems": problems})
    else:
        display.print_problems(title, problems)
    return Stop(code)
