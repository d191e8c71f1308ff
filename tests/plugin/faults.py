"""Faults the tests inject into a run of the bundle checks, to try to make the verdict lie.

Loaded with ``PYTEST_PLUGINS=tests.plugin.faults`` (so it reaches ``pytest checks``, ``conv2d pack verify``
in-process and xdist workers alike) and driven by ``CONV2D_FAULT``:

- ``crash:<text>``: an xdist worker kills itself (SIGKILL) when it starts the check whose node id has <text>;
- ``sigint:<text>``: the user's Ctrl-C (SIGINT to this process) while the call of that check runs;
- ``collect-error:<file>`` / ``module-skip:<file>``: the checks module of that name fails to import, or skips
  itself at module level, wherever it is collected (also by the plugin's own collection of what should run).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest


def _fault() -> tuple[str, str]:
    kind, _, arg = os.environ.get("CONV2D_FAULT", "").partition(":")
    return kind, arg


def pytest_configure(config: pytest.Config) -> None:
    # A user's Ctrl-C comes from a terminal; a run started in the background of a non-interactive shell (as CI
    # scripts and `cmd &` do) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
    if _fault()[0] == "sigint" and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_runtest_call(item: pytest.Item) -> None:
    kind, arg = _fault()
    if not arg or arg not in item.nodeid:
        return
    if kind == "crash" and hasattr(item.config, "workerinput"):
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "sigint":
        os.kill(os.getpid(), signal.SIGINT)


class _FaultyModule(pytest.Module):
    def collect(self) -> Any:
        kind, _ = _fault()
        if kind == "module-skip":
            raise pytest.skip.Exception("needs a runtime this host lacks", allow_module_level=True)
        raise ImportError("simulated: the check module cannot be imported")


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    kind, arg = _fault()
    if kind in ("collect-error", "module-skip") and module_path.name == arg:
        return _FaultyModule.from_parent(parent, path=module_path)
    return None
