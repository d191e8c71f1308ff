"""A verify obeys nothing in the bundle it verifies, and writes nothing into it but ``validation/``.

A bundle may come from anywhere. pytest reads configuration from the directory it runs in (``pytest.ini``,
``pyproject.toml``, ``tox.ini``, ``setup.cfg``; ``addopts = -p helper`` with ``pythonpath = .`` imports a
module of the bundle's), and collects and imports ``conftest.py`` and ``test_*.py`` under its arguments. Run
from inside a bundle, pytest also writes ``.pytest_cache/`` there, which the next verify finds as a file the
manifest does not list. So a bundle session:

- refuses to start when pytest was started, rooted or configured inside the bundle, or collects from it
  (:func:`refuse_bundle_configuration`; pytest's cache then never lands there either); ``conv2d pack verify``
  reads no configuration file (``-c /dev/null``) and runs from wherever it is started without reading it;
- fails ``test_general.py::test_no_code_or_test_configuration`` for a bundle that carries such files
  (:data:`FORBIDDEN_NAMES`, :func:`code_or_configuration`), sealed or not.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    """UsageError when this pytest run started in, took its configuration or rootdir from, or collects from
    inside the bundle under test. Started there, pytest has already read the bundle's ini file, imported its
    ``conftest.py`` and any plugin that ini names before a plugin of ours exists: refusing is all that is left
    to do (and a bundle's code may have undone even that) -- so the docs say: never run plain pytest inside a
    bundle; ``conv2d pack verify DIR`` reads nothing from it."""
    import pytest

    how = "run conv2d pack verify DIR, or pytest --pyargs conv2d_bundle.checks --bundle DIR from another directory"
    inipath = config.inipath
    if inipath is not None and is_within(Path(inipath), bundle_dir):
        raise pytest.UsageError(
            f"pytest read its configuration from {inipath}, inside the bundle under test: a verify never "
            f"obeys the bundle it verifies ({how})"
        )
    for where, path in (
        ("pytest was started", config.invocation_params.dir),
        ("pytest's rootdir is", config.rootpath),
    ):
        if is_within(Path(path), bundle_dir):
            raise pytest.UsageError(
                f"{where} inside the bundle under test ({path}): pytest reads conftest.py and configuration "
                f"from there, and writes its cache there ({how})"
            )
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0])
        if path.exists() and is_within(path, bundle_dir):
            raise pytest.UsageError(
                f"{arg} lies inside the bundle under test: the checks are collected from the package "
                "(pytest --pyargs conv2d_bundle.checks --bundle DIR), never from the bundle"
            )
