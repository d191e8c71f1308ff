"""``conv2d pack create`` and ``conv2d pack list``: build a bundle, and see which bundles there are."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from conv2d_bundle.cli.options import artifacts_option, existing_artifacts_dir
from conv2d_bundle.config import COREML_TARGETS
from conv2d_bundle.errors import BundleWarning

if TYPE_CHECKING:
    from conv2d_bundle.bundle.placement import ContentChange


@click.command()
@click.option(
    "--config", "config_path", required=True, type=click.Path(path_type=Path), help="experiment YAML"
)
@click.option(
    "--model", "model_path", required=True, type=click.Path(path_type=Path), help="checkpoint (state dict)"
)
@click.option("--name", "exp_name", help="experiment name (default: config name or model name)")
@artifacts_option
@click.option(
    "--formats",
    help="comma-separated: onnx,coreml,hailo,executorch (default: every format installed but executorch, which "
    "is built only when named; the others are recorded in metadata.json with why)",
)
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
    from conv2d_bundle.cli.progress import StepDisplay
    from conv2d_bundle.config import load_config, parse_config
    from conv2d_bundle.lifecycle.create import ArtifactBundler

    config: Any = config_path
    if coreml_target:  # an option that changes the export changes the config, and so the hash
        loaded = load_config(config_path)
        data = json.loads(json.dumps(loaded.data))
        data["export"]["coreml"]["minimum_deployment_target"] = coreml_target
        config = parse_config(data, base_dir=loaded.base_dir)
    # progress on stderr: a spinner on a terminal, else plain lines (with --json: only on a terminal)
    changes: list[ContentChange] = []  # what a --force rebuild changed about the bundle it replaced
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
            on_content_change=changes.append,
        )
    # the bundle is in place: the create is done, and a Ctrl-C now would only cut its summary short and exit
    # 130 as if it had failed (as git does once a commit is written, the rest is not interruptible)
    with _sigint_ignored():
        _summarise(bundle, caught, changes, as_json)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _summarise(bundle: Any, caught: list[Any], changes: list[ContentChange], as_json: bool) -> None:
    for w in caught:
        if issubclass(w.category, BundleWarning):
            click.echo(f"warning: {w.message}", err=True)
    from conv2d_bundle.lifecycle.show import validation_status

    meta = bundle.metadata
    verdicts = validation_status(bundle)
    info = {
        "exp_hash": bundle.exp_hash,
        "exp_name": bundle.exp_name,
        "bundle_dir": str(bundle.bundle_dir),
        "formats": {k: v.get("status") for k, v in meta.get("formats", {}).items()},
        "already_existed": bundle.already_existed,
        "validation": meta.get("validation", {}),  # the seal-time summary: the bundle's own claim
        "verdicts": {t: {"status": v["status"], "result": v["result"]} for t, v in verdicts.items()},
        "content_digest": bundle.content_digest,
        "replaced_content_digest": changes[0].old if changes else None,
    }
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    state = "already exists" if bundle.already_existed else "created"
    click.echo(f"Bundle {state}: {bundle.exp_hash}")
    click.echo(f"  Path: {bundle.bundle_dir}")
    click.echo(f"  Content: {bundle.content_digest}")
    for change in changes:  # rebuilt under the same EXP_HASH: what held for the old bytes may not hold now
        click.echo(f"  {change.describe()}")
    for name, fmt in sorted(meta.get("formats", {}).items()):
        click.echo(f"  {name}: {fmt.get('status')}" + (f" ({fmt['reason']})" if fmt.get("reason") else ""))
    onnx_parity = meta.get("formats", {}).get("onnx", {}).get("parity", {})
    for out, p in sorted(onnx_parity.items()):
        click.echo(
            f"  parity {out}: {'ok' if p.get('passed') else 'FAILED'} (max abs error {p.get('max_abs_error'):.2g})"
        )
    for target, v in verdicts.items():  # the reports on disk, bound to these bytes (as show reads them)
        click.echo(f"  checks {target}: {v['result']}, {v['warnings']} warnings")


@click.command(name="list")
@artifacts_option
@click.option("--verbose", "verbose_list", is_flag=True, help="show created time, path, formats, accuracy")
@click.option("--json", "as_json", is_flag=True, help="print a JSON array")
def list_cmd(output_dir: Path, verbose_list: bool, as_json: bool) -> None:
    """List bundles, newest first."""
    artifacts_dir = existing_artifacts_dir(output_dir)
    if as_json or verbose_list:
        _list_in_full(artifacts_dir, output_dir, as_json)
        return
    from conv2d_bundle.bundle.store import list_summaries

    listed = list_summaries(artifacts_dir)  # hash and name: what is shown is all that is kept
    if not listed:
        click.echo(f"No bundles in {output_dir}")
        return
    from conv2d_bundle.cli.progress import print_table, stdout_is_terminal

    if stdout_is_terminal():
        rows = [[b.exp_hash, b.exp_name] for b in listed]
        print_table(["hash", "name"], rows, title=f"{len(listed)} bundle(s) in {output_dir}")
        return
    lines = [f"Found {len(listed)} bundle{'s' if len(listed) != 1 else ''} in {output_dir}:"]
    lines += [f"  {b.exp_hash}  {b.exp_name}" for b in listed]
    click.echo("\n".join(lines))  # one write: click.echo per line costs as much as reading the metadata


def _list_in_full(artifacts_dir: Path, output_dir: Path, as_json: bool) -> None:
    """``list --json`` and ``list --verbose``: formats (with their files' presence) and accuracy too."""
    from conv2d_bundle.bundle.store import list_bundles

    bundles = list_bundles(artifacts_dir)
    if as_json:
        rows = [
            {
                "exp_hash": b.exp_hash,
                "exp_name": b.exp_name,
                "created_at": b.created_at,
                "bundle_dir": str(b.bundle_dir),
                "formats": b.get_available_formats(),
                "format_status": b.format_status(),
                "accuracy": b.metadata.get("model", {}).get("accuracy"),
            }
            for b in bundles
        ]
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not bundles:
        click.echo(f"No bundles in {output_dir}")
        return
    from conv2d_bundle.cli.progress import print_table, stdout_is_terminal

    if stdout_is_terminal():
        columns = ["hash", "name", "created", "formats", "accuracy", "path"]
        table_rows = [
            [
                b.exp_hash,
                b.exp_name,
                b.created_at,
                ", ".join(b.describe_formats()),
                b.metadata.get("model", {}).get("accuracy"),
                str(b.bundle_dir),
            ]
            for b in bundles
        ]
        print_table(columns, table_rows, title=f"{len(bundles)} bundle(s) in {output_dir}")
        return
    lines = [f"Found {len(bundles)} bundle{'s' if len(bundles) != 1 else ''} in {output_dir}:"]
    for b in bundles:
        lines += [
            f"  {b.exp_hash}  {b.exp_name}",
            f"    Created: {b.created_at}",
            f"    Path: {b.bundle_dir}",
            f"    Formats: {', '.join(b.describe_formats()) or '-'}",
            f"    Accuracy: {b.metadata.get('model', {}).get('accuracy', 'N/A')}",
        ]
    click.echo("\n".join(lines))
