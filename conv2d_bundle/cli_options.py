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


#: what ``--target`` accepts on the CLI (pytest_plugin.KNOWN_TARGETS, kept here so the CLI imports no pytest)
TARGET_CHOICES = ("general", "onnx", "ios", "hailo", "all")


def target_option(help_text: str) -> Callable[[F], F]:
    """``--target``: which checks must pass (general always runs)."""

    def decorate(f: F) -> F:
        return click.option(
            "--target",
            default="general",
            show_default=True,
            type=click.Choice(TARGET_CHOICES),
            help=help_text,
        )(f)

    return decorate
