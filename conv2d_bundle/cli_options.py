"""Options shared by the ``conv2d pack`` commands (one definition, imported by every cli_* module)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def artifacts_option(f: F) -> F:
    """``--output-dir``: the artifacts directory (``$CONV2D_ARTIFACTS``, default ``artifacts``)."""
    return click.option(
        "--output-dir",
        "output_dir",
        type=click.Path(path_type=Path),
        envvar="CONV2D_ARTIFACTS",
        default="artifacts",
        show_default=True,
        help="artifacts directory (env CONV2D_ARTIFACTS)",
    )(f)
