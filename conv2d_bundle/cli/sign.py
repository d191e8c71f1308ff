"""``conv2d pack keygen`` and ``conv2d pack sign``: Ed25519 signatures of a bundle's MANIFEST.json."""

from __future__ import annotations

from pathlib import Path

import click

from conv2d_bundle.cli.options import artifacts_option


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=".",
    show_default=True,
    help="directory for ed25519.pem (private, 0600) and ed25519.pub.pem",
)
def keygen(out_dir: Path) -> None:
    """Make an Ed25519 key pair for signing bundles."""
    from conv2d_bundle.bundle.signing import keygen as make_keys

    out_dir.mkdir(parents=True, exist_ok=True)
    private, public = out_dir / "ed25519.pem", out_dir / "ed25519.pub.pem"
    make_keys(private, public)
    click.echo(f"private key: {private}")
    click.echo(f"public key:  {public}  (give this one to verifiers: --trusted-key)")


@click.command()
@click.argument("bundle_ref")
@click.option(
    "--key", "key_path", required=True, type=click.Path(path_type=Path), help="Ed25519 private key (PEM)"
)
@artifacts_option
def sign(bundle_ref: str, key_path: Path, output_dir: Path) -> None:
    """Sign a bundle: writes MANIFEST.json.sig (the hashed content does not change)."""
    from conv2d_bundle.bundle.signing import sign_bundle
    from conv2d_bundle.bundle.store import get_bundle

    bundle = get_bundle(output_dir, bundle_ref)
    click.echo(f"signed {bundle.exp_hash}: {sign_bundle(bundle.bundle_dir, key_path)}")
