"""Keep hypothesis's storage out of the working directory while a bundle is verified.

The fuzz checks run with ``database=None``, yet hypothesis still caches the constants it finds in local
source files under its storage directory, by default ``.hypothesis/`` in the working directory
(``hypothesis.configuration.storage_directory``). A verify or a create must write nothing outside the
artifacts directory, so for the length of a run that storage is a temporary directory, removed afterwards.

Set through ``HYPOTHESIS_STORAGE_DIRECTORY`` (read when hypothesis first needs its storage; xdist workers
inherit it) and, when hypothesis is already imported, ``set_hypothesis_home_dir``; both are undone at the
end. hypothesis itself is not imported here: a run without fuzz checks should not pay for it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ENV = "HYPOTHESIS_STORAGE_DIRECTORY"


def _configuration() -> ModuleType | None:
    return sys.modules.get("hypothesis.configuration")


def isolate() -> Callable[[], None]:
    """Point hypothesis's storage at a new temporary directory; return the function that undoes it."""
    scratch = Path(tempfile.mkdtemp(prefix="conv2d-hypothesis-"))
    old_env = os.environ.get(ENV)
    conf = _configuration()
    old_home = conf.storage_directory(intent_to_write=False).home_directory if conf else None
    os.environ[ENV] = str(scratch)
    if conf:
        conf.set_hypothesis_home_dir(scratch)

    def undo() -> None:
        if old_env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old_env
        conf_now = _configuration()
        if conf_now:  # None: decide again from the environment, as hypothesis does on first use
            conf_now.set_hypothesis_home_dir(old_home)
        shutil.rmtree(scratch, ignore_errors=True)

    return undo
