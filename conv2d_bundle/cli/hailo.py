"""``conv2d pack attach-hef BUNDLE HEF``: seal a HEF compiled from the bundle's kit into the bundle."""

from __future__ import annotations

from pathlib import Path

import click

from conv2d_bundle.cli.options import artifacts_option


@click.command("attach-hef")
@click.argument("bundle_ref", metavar="BUNDLE")
@click.argument("hef", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--emulator-outputs",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="emulator_outputs.npz from compile.sh (the DFC's quantized emulator on the golden inputs): sealed "
    "in, and judged by the hailo checks under the verifier's int8 policy",
)
@artifacts_option
def attach_hef(bundle_ref: str, hef: Path, emulator_outputs: Path | None, output_dir: Path) -> None:
    """Check HEF (integrity, architecture, network name) and seal it into BUNDLE (hash prefix or path)."""
    from conv2d_bundle.bundle.store import get_bundle
    from conv2d_bundle.targets.hailo.attach import attach_hef as attach

    result = attach(get_bundle(output_dir, bundle_ref), hef, emulator_outputs)
    for note in result.warnings:
        click.echo(f"warning: {note}", err=True)
    info = result.hef
    click.echo(
        f"{result.bundle_dir.name}: {'replaced' if result.replaced else 'attached'} models/hailo.hef "
        f"({info.hw_arch}, network {', '.join(info.network_groups)}, SDK {info.sdk_version or 'unknown'})"
        f"{' with the emulator outputs' if emulator_outputs else ''}; re-sealed. Verify with: conv2d pack verify {result.bundle_dir.name} --target hailo"
    )
