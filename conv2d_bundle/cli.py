"""``conv2d pack ...``: a thin shell over the library.

Exit codes are decided in exactly one place, :class:`_Conv2dGroup.main`: 0 ok, 1 validation failed,
2 bad input or usage. A :class:`BundleError` becomes one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from conv2d_bundle import __version__
from conv2d_bundle.cli_options import artifacts_option, existing_artifacts_dir, target_option
from conv2d_bundle.config import COREML_TARGETS
from conv2d_bundle.errors import BundleError, BundleWarning

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
            click.echo(f"error: {_one_line(str(exc))}", err=True)
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


def _one_line(text: str) -> str:
    return " ".join(text.split())


@click.group(cls=_Conv2dGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="conv2d-bundle")
@click.option("--debug", is_flag=True, help="show tracebacks and debug logs")
@click.option("-v", "--verbose", is_flag=True, help="log progress")
def main(debug: bool, verbose: bool) -> None:
    """conv2d-bundle: one deployment bundle per experiment, proven deployable by pytest checks."""
    level = logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(level)


@main.group()
def pack() -> None:
    """Create, verify and manage deployment bundles."""


@pack.command()
@click.option(
    "--config", "config_path", required=True, type=click.Path(path_type=Path), help="experiment YAML"
)
@click.option(
    "--model", "model_path", required=True, type=click.Path(path_type=Path), help="checkpoint (state dict)"
)
@click.option("--name", "exp_name", help="experiment name (default: config name or model name)")
@artifacts_option
@click.option("--formats", help="comma-separated: onnx,coreml,hailo (default: every format installed)")
@click.option("--force", is_flag=True, help="rebuild even if the bundle exists")
@click.option(
    "--allow-pickle", is_flag=True, help="load a pickled checkpoint (runs code from the file: trust it)"
)
@click.option(
    "--coreml-target",
    type=click.Choice(COREML_TARGETS),
    help="minimum iOS for Core ML (config export.coreml.minimum_deployment_target; iOS13/14: neuralnetwork)",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def create(
    config_path: Path,
    model_path: Path,
    exp_name: str | None,
    output_dir: Path,
    formats: str | None,
    force: bool,
    allow_pickle: bool,
    coreml_target: str | None,
    as_json: bool,
) -> None:
    """Build the bundle of a config + checkpoint (idempotent: same inputs, same EXP_HASH)."""
    from conv2d_bundle.bundler import ArtifactBundler
    from conv2d_bundle.config import load_config, parse_config
    from conv2d_bundle.progress import StepDisplay

    config: Any = config_path
    if coreml_target:  # an option that changes the export changes the config, and so the hash
        loaded = load_config(config_path)
        data = json.loads(json.dumps(loaded.data))
        data["export"]["coreml"]["minimum_deployment_target"] = coreml_target
        config = parse_config(data, base_dir=loaded.base_dir)
    # progress on stderr: a spinner on a terminal, else plain lines (with --json: only on a terminal)
    with (
        StepDisplay(only_on_terminal=as_json) as progress,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always", BundleWarning)
        bundle = ArtifactBundler(output_dir).create_bundle(
            config,
            model_path,
            exp_name=exp_name,
            formats=formats,
            force=force,
            allow_pickle=allow_pickle,
            progress=progress,
        )
    for w in caught:
        if issubclass(w.category, BundleWarning):
            click.echo(f"warning: {w.message}", err=True)
    meta = bundle.metadata
    info = {
        "exp_hash": bundle.exp_hash,
        "exp_name": bundle.exp_name,
        "bundle_dir": str(bundle.bundle_dir),
        "formats": {k: v.get("status") for k, v in meta.get("formats", {}).items()},
        "already_existed": bundle.already_existed,
        "validation": meta.get("validation", {}),
    }
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    state = "already exists" if bundle.already_existed else "created"
    click.echo(f"Bundle {state}: {bundle.exp_hash}")
    click.echo(f"  Path: {bundle.bundle_dir}")
    for name, fmt in sorted(meta.get("formats", {}).items()):
        click.echo(f"  {name}: {fmt.get('status')}" + (f" ({fmt['reason']})" if fmt.get("reason") else ""))
    onnx_parity = meta.get("formats", {}).get("onnx", {}).get("parity", {})
    for out, p in sorted(onnx_parity.items()):
        click.echo(
            f"  parity {out}: {'ok' if p.get('passed') else 'FAILED'} (max abs error {p.get('max_abs_error'):.2g})"
        )
    for target, v in sorted(meta.get("validation", {}).items()):
        unverified = f", {v['not_verified']} not verified (skipped here)" if v.get("not_verified") else ""
        click.echo(
            f"  checks {target}: {'passed' if v.get('passed') else 'FAILED'}, {v.get('warnings', 0)} warnings"
            + unverified
        )


@pack.command(name="list")
@artifacts_option
@click.option("--verbose", "verbose_list", is_flag=True, help="show created time, path, formats, accuracy")
@click.option("--json", "as_json", is_flag=True, help="print a JSON array")
def list_cmd(output_dir: Path, verbose_list: bool, as_json: bool) -> None:
    """List bundles, newest first."""
    from conv2d_bundle.bundle import list_bundles

    bundles = list_bundles(existing_artifacts_dir(output_dir))
    if as_json:
        rows = [
            {
                "exp_hash": b.exp_hash,
                "exp_name": b.exp_name,
                "created_at": b.created_at,
                "bundle_dir": str(b.bundle_dir),
                "formats": b.get_available_formats(),
                "accuracy": b.metadata.get("model", {}).get("accuracy"),
            }
            for b in bundles
        ]
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not bundles:
        click.echo(f"No bundles in {output_dir}")
        return
    from conv2d_bundle.progress import print_table, stdout_is_terminal

    if stdout_is_terminal():
        columns = ["hash", "name"] + (["created", "formats", "accuracy", "path"] if verbose_list else [])
        table_rows = [
            [b.exp_hash, b.exp_name]
            + (
                [
                    b.created_at,
                    ", ".join(b.get_available_formats()),
                    b.metadata.get("model", {}).get("accuracy"),
                    str(b.bundle_dir),
                ]
                if verbose_list
                else []
            )
            for b in bundles
        ]
        print_table(columns, table_rows, title=f"{len(bundles)} bundle(s) in {output_dir}")
        return
    click.echo(f"Found {len(bundles)} bundle{'s' if len(bundles) != 1 else ''} in {output_dir}:")
    for b in bundles:
        click.echo(f"  {b.exp_hash}  {b.exp_name}")
        if verbose_list:
            click.echo(f"    Created: {b.created_at}")
            click.echo(f"    Path: {b.bundle_dir}")
            click.echo(f"    Formats: {', '.join(b.get_available_formats()) or '-'}")
            click.echo(f"    Accuracy: {b.metadata.get('model', {}).get('accuracy', 'N/A')}")


@pack.command()
@click.argument("bundle_ref")
@artifacts_option
@target_option("deployment target")
@click.option("--junitxml", type=click.Path(path_type=Path), help="also write JUnit XML here")
@click.option(
    "-n",
    "numprocesses",
    help="parallel workers (pytest-xdist), e.g. 2 or auto. For one bundle it is usually slower: each worker "
    "starts its own pytest and onnxruntime, and one fuzz check holds ~99% of a --profile thorough run and is "
    "never split (2 cores: 4.4 s vs 3.3 s serial at the default profile, 97 s vs 81 s with --profile "
    "thorough). For many bundles, run several verifies side by side instead (README: When -n pays off).",
)
@click.option("--strict-targets", is_flag=True, help="count skipped checks as failed")
@click.option(
    "--profile", default="default", type=click.Choice(["quick", "default", "thorough"]), help="fuzzing budget"
)
@click.option("-k", "select", help="only checks matching this pytest -k expression (e.g. test_parity)")
@click.option(
    "--trusted-key",
    type=click.Path(path_type=Path),
    help="Ed25519 public key: fail unless the bundle is signed by it",
)
@click.option(
    "--tolerance-policy",
    type=click.Path(path_type=Path),
    help="the verifier's parity tolerance caps (YAML/JSON); default: the built-in policy",
)
def verify(
    bundle_ref: str,
    output_dir: Path,
    target: str,
    junitxml: Path | None,
    numprocesses: str | None,
    strict_targets: bool,
    profile: str,
    select: str | None,
    trusted_key: Path | None,
    tolerance_policy: Path | None,
) -> None:
    """Run the bundle's checks for a target; exit 0 if the run was complete and passed, 1 if a check failed or
    the run was incomplete (interrupted, a selection, a crashed worker)."""
    from conv2d_bundle.bundle import get_bundle
    from conv2d_bundle.errors import ValidationFailed
    from conv2d_bundle.progress import StepDisplay
    from conv2d_bundle.validation import run_pytest

    bundle = get_bundle(output_dir, bundle_ref)
    extra: list[str] = []
    if junitxml:
        extra += ["--junitxml", str(junitxml)]
    if numprocesses:
        extra += ["-n", numprocesses]
    if strict_targets:
        extra.append("--strict-targets")
    if select:
        extra += ["-k", select]
    if trusted_key:
        extra += ["--trusted-key", str(trusted_key)]
    if tolerance_policy:
        from conv2d_bundle.tolerance import TolerancePolicy

        TolerancePolicy.load(tolerance_policy)  # a bad policy is bad input (exit 2), not a failed check
        extra += ["--tolerance-policy", str(tolerance_policy)]
    with StepDisplay() as progress:
        progress(f"running the {target} checks on {bundle.exp_hash}")
        run = run_pytest(bundle.bundle_dir, target, profile=profile, extra=extra)
    report = run.reports.get(target)
    if run.exit_code == 5 or (report is not None and not report["checks_run"] and not report["skipped"]):
        if not run.interrupted:
            raise BundleError(f"no checks matched{f' -k {select!r}' if select else ''} for --target {target}")
    if report is None:
        raise BundleError(
            f"the checks could not run (pytest exit {run.exit_code}): {_one_line(run.output.strip()[-400:])}"
        )
    verdict = run.verdict(target)
    counts = report["counts"]
    skipped = f", {counts['skipped']} skipped: not verified" if counts["skipped"] else ""
    click.echo(
        f"{bundle.exp_hash} --target {target}: {verdict.status.upper()} "
        f"({counts['passed']} passed, {counts['failed']} failed{skipped})"
    )
    for e in report["errors"]:
        click.echo(f"  FAILED  {e}")
    for reason in verdict.reasons:
        click.echo(f"  INCOMPLETE {reason}")
    for s in report["skipped"]:
        click.echo(f"  SKIPPED {s['id']}: {s['reason']} (not verified)")
    for w in report["warnings"]:
        click.echo(f"  WARNING {w}")
    click.echo(f"  report: {bundle.bundle_dir / 'validation' / f'{target}_validation.json'}")
    if junitxml:
        click.echo(f"  junit: {junitxml}")
    if run.interrupted:
        raise KeyboardInterrupt
    if not verdict.passed:
        raise ValidationFailed(f"{bundle.exp_hash}: --target {target} {verdict.describe()}")


from conv2d_bundle.cli_hailo import attach_hef  # noqa: E402 - registered after the group exists

pack.add_command(attach_hef)

from conv2d_bundle.cli_lifecycle import register as _register_lifecycle  # noqa: E402 - after the group exists

_register_lifecycle(pack)

from conv2d_bundle.cli_sign import keygen, sign  # noqa: E402 - registered after the group exists

pack.add_command(keygen)
pack.add_command(sign)


if __name__ == "__main__":
    main()
