"""What a person sees while a long step runs, and tables: rich on a terminal, plain text otherwise.

Progress always goes to stderr (stdout stays parseable: ``create --json`` prints exactly one object, and
shows progress when stderr is a terminal). On a terminal a spinner shows the current step and each finished
step leaves a line; elsewhere (CI logs, pipes) each step is one plain line, ``  <step> ...``. Tables render
with rich on a terminal and as aligned plain text otherwise; ``--json`` output never goes through here.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Sequence
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich costs ~40 ms to import: only what draws on a terminal or a table needs it
    from rich.console import Console
    from rich.status import Status


def _console(stream: IO[str], force_terminal: bool | None) -> Console:
    from rich.console import Console

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
        self._stream = stream if stream is not None else sys.stderr
        self._force_terminal = force_terminal
        self.enabled = enabled and (self.is_terminal or not only_on_terminal)
        self._status: Status | None = None
        self._current: str | None = None
        self._started = 0.0

    @functools.cached_property
    def is_terminal(self) -> bool:
        return _is_terminal(self._stream, self._force_terminal)

    @functools.cached_property
    def console(self) -> Console:
        """rich's console on the stream: built (and rich imported) only to draw on a terminal."""
        return _console(self._stream, self._force_terminal)

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        if not self.is_terminal:  # one plain line, as written: no rich needed (nor its markup or emoji codes)
            self._stream.write(f"  {message} ...\n")
            self._stream.flush()
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
    out = stream if stream is not None else sys.stdout
    cells = [[_cell(v) for v in row] for row in rows]
    if _is_terminal(out, force_terminal):
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in cells:
            table.add_row(*row)
        _console(out, force_terminal).print(table, markup=False)
        return
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    out.write("\n".join(lines) + "\n")


def stdout_is_terminal() -> bool:
    return _is_terminal(sys.stdout, None)


def _is_terminal(stream: IO[str], force_terminal: bool | None) -> bool:
    """rich's answer (``Console.is_terminal``), without importing rich (~40 ms) where it can only say no: rich
    calls a stream a terminal only when it is a tty, or ``TTY_COMPATIBLE=1`` or ``FORCE_COLOR`` say so."""
    if force_terminal is not None:
        return force_terminal
    if not _isatty(stream) and os.environ.get("TTY_COMPATIBLE") != "1" and "FORCE_COLOR" not in os.environ:
        return False
    return _console(stream, None).is_terminal


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed: rich says "not a terminal" for both
        return False
