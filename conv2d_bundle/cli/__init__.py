"""``conv2d pack ...``: a thin shell over the library, one module per command group (create, verify,
lifecycle, registry, sign, targets, hailo's ``attach-hef``); a target of another package adds its own
commands through ``Target.cli_commands``.

Exit codes are decided in exactly one place, :class:`_Conv2dGroup.main`: 0 ok, 1 validation failed,
2 bad input or usage. A :class:`BundleError` becomes one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from conv2d_bundle import __version__
from conv2d_bundle.cli import create, hailo, lifecycle, registry, sign, targets, verify
from conv2d_bundle.cli.options import one_line
from conv2d_bundle.errors import BundleError

log = logging.getLogger("conv2d_bundle")


class _Conv2dGroup(click.Group):
    def main(self, args: Any = None, prog_name: str | None = None, **kwargs: Any) -> Any:  # type: ignore[override]  # always non-standalone: exit codes are decided here
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv
        try:
            return super().main(argv, prog_name, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(2)
        except click.exceptions.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
                click.echo("interrupted", err=True)
                sys.exit(130)
            click.echo("aborted", err=True)
            sys.exit(2)
        except BundleError as exc:
            if debug:
                raise
            click.echo(f"error: {one_line(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:  # a file the user named that cannot be read or written: bad input, one line
            if debug:
                raise
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Conv2dGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="conv2d-bundle")
@click.option("--debug", is_flag=True, help="show tracebacks and debug logs")
@click.option("-v", "--verbose", is_flag=True, help="log progress")
def main(debug: bool, verbose: bool) -> None:
    """conv2d-bundle: one deployment bundle per experiment, proven deployable by pytest checks."""
    # numpy's OpenBLAS starts a thread per core at import, and they spin: 0.06 s of CPU per process on this
    # 2-core machine, taken from onnxruntime's threads (bench/README.md, row 9). No command does BLAS work
    # that gains from them (the ML Program interpreter measured the same). Before numpy is imported; a
    # value the user set wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    level = logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(level)


@main.group()
def pack() -> None:
    """Create, verify and manage deployment bundles."""


for command in (
    create.create,
    create.list_cmd,
    verify.verify,
    *lifecycle.COMMANDS,
    *registry.COMMANDS,
    sign.keygen,
    sign.sign,
    targets.targets_cmd,
    hailo.attach_hef,
):
    pack.add_command(command)


def _add_target_commands() -> None:
    from conv2d_bundle.targets import registry

    for target in registry().values():
        for command in target.cli_commands():
            pack.add_command(command)


_add_target_commands()
