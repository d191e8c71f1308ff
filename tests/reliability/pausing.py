"""Run `conv2d` paused at a chosen moment, so a test can act in a window that is otherwise microseconds wide.

    python -m tests.reliability.pausing POINT MARKERS [--without-exchange] -- <conv2d args>

POINT:
  read-metadata    before the first open of a bundle's ``<hash>/metadata.json`` (a create that found the bundle)
  move-into-place  before a rename onto a bundle's final name (a create --force putting its new bundle in)

At the point the process creates ``MARKERS/<POINT>.paused`` and waits (at most a minute) for
``MARKERS/<POINT>.go``. A Python audit hook sees the calls (``open``, ``os.rename``), so nothing in
``conv2d_bundle`` is patched and the point is wherever the code happens to do that.
``--without-exchange``: as on a system without an atomic directory swap (``atomic.exchange`` says so).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

_HASH = re.compile(r"^[0-9a-f]{12}$")


def _is_final(path: Path) -> bool:
    """``<artifacts>/<hash>``, not a staging or set-aside copy inside ``.tmp-*``."""
    return bool(_HASH.match(path.name)) and not path.parent.name.startswith(".tmp-")


def _matches(point: str, event: str, args: tuple[Any, ...]) -> bool:
    if point == "read-metadata" and event == "open" and isinstance(args[0], str | bytes):
        path = Path(os.fsdecode(args[0]))
        return path.name == "metadata.json" and _is_final(path.parent)
    if point == "move-into-place" and event == "os.rename":
        return _is_final(Path(os.fsdecode(args[1])))
    return False


def _install(point: str, markers: Path) -> None:
    state = {"busy": False, "done": False}

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if state["busy"] or state["done"] or not _matches(point, event, args):
            return
        state["busy"] = True  # the marker file's own open must not re-enter
        try:
            (markers / f"{point}.paused").touch()
            deadline = time.monotonic() + 60
            while not (markers / f"{point}.go").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            state["done"] = True
        finally:
            state["busy"] = False

    sys.addaudithook(hook)


def main() -> None:
    point, markers = sys.argv[1], Path(sys.argv[2])
    if point not in ("read-metadata", "move-into-place"):
        raise SystemExit(f"unknown point {point}")
    _install(point, markers)
    if "--without-exchange" in sys.argv[: sys.argv.index("--")]:
        from conv2d_bundle.bundle import atomic

        atomic.exchange = lambda a, b: False
    from conv2d_bundle.cli import main as cli

    sys.argv = ["conv2d", *sys.argv[sys.argv.index("--") + 1 :]]
    cli()


if __name__ == "__main__":
    main()
