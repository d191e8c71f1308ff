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


def ssh_option(f: F) -> F:
    """``--ssh``: the remote shell for ``host:path`` destinations (rsync's ``-e``; ``$RSYNC_RSH``, else ssh)."""
    return click.option(
        "--ssh",
        "ssh",
        metavar="COMMAND",
        default=None,
        help='remote shell for host:path, e.g. "ssh -p 2222" (default: $RSYNC_RSH, else ssh; ~/.ssh/config applies)',
    )(f)


def existing_artifacts_dir(output_dir: Path) -> Path:
    """``output_dir`` if it is a directory, else a usage error naming it and where it came from."""
    from click.core import ParameterSource

    from conv2d_bundle.errors import BundleNotFoundError

    source = click.get_current_context().get_parameter_source("output_dir")
    if source == ParameterSource.COMMANDLINE:
        why = "from --output-dir"
    elif source == ParameterSource.ENVIRONMENT:
        why = "from CONV2D_ARTIFACTS"
    else:
        why = "the default: ./artifacts in the working directory; give --output-dir or set CONV2D_ARTIFACTS"
    if not output_dir.exists():
        raise BundleNotFoundError(f"artifacts directory {output_dir.absolute()} does not exist ({why})")
    if not output_dir.is_dir():
        raise BundleNotFoundError(f"artifacts directory {output_dir.absolute()} is not a directory ({why})")
    return output_dir


class TargetList(click.ParamType):
    """``--target``: ``general``, an installed target, several comma-separated (``onnx,ios``) or ``all``."""

    name = "target"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from conv2d_bundle.errors import BundleError
        from conv2d_bundle.targets import parse_target_list

        try:
            return ",".join(parse_target_list(value))
        except BundleError as exc:
            self.fail(str(exc), param, ctx)


def target_option(help_text: str) -> Callable[[F], F]:
    """``--target``: which checks must pass (general always runs)."""

    def decorate(f: F) -> F:
        return click.option(
            "--target",
            default="general",
            show_default=True,
            type=TargetList(),
            help=f"{help_text}: general, the installed targets (conv2d pack targets), a comma list, or all",
        )(f)

    return decorate


def one_line(text: str) -> str:
    """An error message as one line (the CLI prints every error on one)."""
    return " ".join(text.split())
