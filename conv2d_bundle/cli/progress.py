"""What a person sees while a long step runs, and tables: rich on a terminal, plain text otherwise.

Progress always goes to stderr (stdout stays parseable: ``create --json`` prints exactly one object, and
shows progress when stderr is a terminal). On a terminal a spinner shows the current step and each finished
step leaves a line; elsewhere (CI logs, pipes) each step is one plain line, ``  <step> ...``. Tables render
with rich on a terminal and as aligned plain text otherwise; ``--json`` output never goes through here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Any

from rich.console import Console
from rich.status import Status
from rich.table import Table


def _console(stream: IO[str], force_terminal: bool | None) -> Console:
    return Console(file=stream, force_terminal=force_terminal, highlight=False, soft_wrap=True)


class StepDisplay:
    """A callable ``progress(message)`` for long steps; use as a context manager so the spinner stops."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        only_on_terminal: bool = False,
        stream: IO[str] | None = None,
        force_terminal: bool | None = None,
    ):
        """``only_on_terminal``: show progress only where a person watches (stdout being for a program)."""
        self.console = _console(stream if stream is not None else sys.stderr, force_terminal)
        self.enabled = enabled and (self.is_terminal or not only_on_terminal)
        self._status: Status | None = None
        self._current: str | None = None
        self._started = 0.0

    @property
    def is_terminal(self) -> bool:
        return self.console.is_terminal

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        if not self.is_terminal:
            self.console.print(f"  {message} ...", markup=False, highlight=False)
            return
        self._finish_current()
        self._current, self._started = message, time.monotonic()
        if self._status is None:
            self._status = self.console.status(message, spinner="dots")
            self._status.start()
        else:
            self._status.update(message)

    def _finish_current(self, ok: bool = True) -> None:
        if self._current is not None:
            mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
            took = time.monotonic() - self._started
            self.console.print(f"{mark} {self._current} [dim]({took:.1f}s)[/dim]")
            self._current = None

    def close(self, ok: bool = True) -> None:
        if self._status is not None:
            self._finish_current(ok)
            self._status.stop()
            self._status = None

    def __enter__(self) -> StepDisplay:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(ok=exc_type is None)


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    stream: IO[str] | None = None,
    force_terminal: bool | None = None,
) -> None:
    """A table on stdout: rich on a terminal, aligned plain text (a header line, then rows) otherwise."""
    console = _console(stream if stream is not None else sys.stdout, force_terminal)
    cells = [[_cell(v) for v in row] for row in rows]
    if console.is_terminal:
        table = Table(title=title, title_justify="left")
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in cells:
            table.add_row(*row)
        console.print(table, markup=False)
        return
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    console.file.write("\n".join(lines) + "\n")


def stdout_is_terminal() -> bool:
    return _console(sys.stdout, None).is_terminal
