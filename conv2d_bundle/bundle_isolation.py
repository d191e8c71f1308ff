"""A verify obeys nothing in the bundle it verifies, and writes nothing into it but ``validation/``.

A bundle may come from anywhere. pytest reads configuration from the directory it runs in (``pytest.ini``,
``pyproject.toml``, ``tox.ini``, ``setup.cfg``; ``addopts = -p helper`` with ``pythonpath = .`` imports a
module of the bundle's), and collects and imports ``conftest.py`` and ``test_*.py`` under its arguments. Run
from inside a bundle, pytest also writes ``.pytest_cache/`` there, which the next verify finds as a file the
manifest does not list. So a bundle session:

- refuses to start when pytest's configuration file, or a collection argument, lies inside the bundle
  (:func:`refuse_bundle_configuration`); ``conv2d pack verify`` never reads one (``-c /dev/null``);
- moves pytest's cache out of the bundle for the length of the run (:func:`keep_cache_out`);
- fails ``test_general.py::test_no_code_or_test_configuration`` for a bundle that carries such files
  (:data:`FORBIDDEN_NAMES`, :func:`code_or_configuration`), sealed or not.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

#: files pytest or Python would read as configuration or import as code when run in or on a directory
FORBIDDEN_NAMES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg", "conftest.py")
FORBIDDEN_SUFFIXES = (".py", ".pyc", ".pth")


def code_or_configuration(relpaths: Iterable[str]) -> list[str]:
    """The paths among ``relpaths`` (posix, relative to the bundle) that are code or test configuration."""
    return sorted(
        rel
        for rel in relpaths
        if rel.rpartition("/")[2] in FORBIDDEN_NAMES or rel.endswith(FORBIDDEN_SUFFIXES)
    )


def is_within(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


def refuse_bundle_configuration(config: Any, bundle_dir: Path) -> None:
    """UsageError when this pytest run takes configuration or collects from inside the bundle under test."""
    import pytest

    inipath = config.inipath
    if inipath is not None and is_within(Path(inipath), bundle_dir):
        raise pytest.UsageError(
            f"pytest read its configuration from {inipath}, inside the bundle under test: a verify never "
            "obeys the bundle it verifies. Run from another directory (pytest --pyargs conv2d_bundle.checks "
            "--bundle DIR) or use conv2d pack verify"
        )
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0])
        if path.exists() and is_within(path, bundle_dir):
            raise pytest.UsageError(
                f"{arg} lies inside the bundle under test: the checks are collected from the package "
                "(pytest --pyargs conv2d_bundle.checks --bundle DIR), never from the bundle"
            )


def keep_cache_out(config: Any, bundle_dir: Path) -> Callable[[], None] | None:
    """When pytest's cache directory lies inside the bundle (pytest run from the bundle's directory), point
    the cache at a temporary directory for the run; the function that removes it, or None."""
    cache = getattr(config, "cache", None)
    cachedir = getattr(cache, "_cachedir", None)  # pytest's Cache keeps its directory here
    if cache is None or cachedir is None or not is_within(Path(cachedir), bundle_dir):
        return None
    from _pytest.cacheprovider import Cache  # the class config.cache is; no public constructor

    scratch = Path(tempfile.mkdtemp(prefix="conv2d-pytest-cache-"))
    config.cache = Cache(scratch, config, _ispytest=True)

    def undo() -> None:
        shutil.rmtree(scratch, ignore_errors=True)

    return undo
