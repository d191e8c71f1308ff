"""``conv2d pack archive|import|deploy|undeploy|clean|compare|show|pin|unpin``: the bundle lifecycle commands.

Registered on the ``pack`` group by ``conv2d_bundle/cli/__init__.py`` (:data:`COMMANDS`). Errors are raised as
:class:`BundleError` subclasses; ``cli.py`` alone turns them into a message and an exit code.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click

from conv2d_bundle.cli.options import artifacts_option, ssh_option, target_option
from conv2d_bundle.cli.registry import registry_options
from conv2d_bundle.errors import ValidationFailed

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``1048576``, ``100M``, ``4G`` (binary units; a trailing ``B``/``iB`` is accepted)."""
    raw = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = raw[-1:] if raw[-1:] in _UNITS and raw[-1:] else ""
    number = raw[: -len(unit)] if unit else raw
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a size such as 500M or 4G") from None
    if value <= 0:
        raise click.BadParameter(f"{text!r}: must be positive")
    return int(value)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@click.command()
@click.argument("bundle_ref")
@artifacts_option
@click.option("--format", "fmt", type=click.Choice(["tar.gz", "zip"]), default="tar.gz", show_default=True)
@click.option(
    "--output", "output", type=click.Path(path_type=Path), default=".", show_default=True, help="directory"
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def archive(bundle_ref: str, output_dir: Path, fmt: str, output: Path, as_json: bool) -> None:
    """Write BUNDLE as a deterministic zip or tar.gz (+ .sha256 beside it); print its path."""
    from conv2d_bundle.bundle.archive import create_archive
    from conv2d_bundle.bundle.digest import sha256_file
    from conv2d_bundle.bundle.store import get_bundle

    bundle = get_bundle(output_dir, bundle_ref)
    path = create_archive(bundle, fmt, output)
    digest = sha256_file(path)
    if as_json:
        _echo_json({"archive": str(path.absolute()), "sha256": digest, "exp_hash": bundle.exp_hash})
        return
    click.echo(str(path))
    click.echo(f"sha256 {digest}  (written to {path.name}.sha256)")


@click.command(name="import")
@click.argument("archive_path", metavar="ARCHIVE", type=click.Path(path_type=Path))
@artifacts_option
@click.option("--max-size", default="4G", show_default=True, help="refuse archives that expand past this")
@click.option("--max-entries", default=10_000, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--force", is_flag=True, help="replace a bundle of the same EXP_HASH whose content differs (else refused)"
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def import_cmd(
    archive_path: Path, output_dir: Path, max_size: str, max_entries: int, force: bool, as_json: bool
) -> None:
    """Extract ARCHIVE safely, verify its manifest and identity, and add it to the artifacts directory. A bundle
    of the same EXP_HASH with other content is not touched (exit 2, naming both content digests and the files
    that differ) unless --force, which replaces it, its validation reports included."""
    from conv2d_bundle.bundle.archive import import_archive

    result = import_archive(
        archive_path, output_dir, max_bytes=parse_size(max_size), max_entries=max_entries, force=force
    )
    if as_json:
        _echo_json(
            {
                "exp_hash": result.exp_hash,
                "bundle_dir": str(result.bundle_dir),
                "already_existed": result.already_existed,
                "content_digest": result.content_digest,
                "replaced_content_digest": result.replaced.old if result.replaced else None,
            }
        )
        return
    if result.already_existed:
        state = "already exists (archive verified, nothing changed)"
    else:
        state = "replaced" if result.replaced else "imported"
    click.echo(f"Bundle {state}: {result.exp_hash}")
    click.echo(f"  Path: {result.bundle_dir}")
    click.echo(f"  Content: {result.content_digest}")
    if result.replaced:
        click.echo(f"  {result.replaced.describe()}")


@click.command()
@click.argument("bundle_ref", required=False)
@artifacts_option
@click.option(
    "--from",
    "source",
    metavar="oci://HOST/REPO[:TAG|@DIGEST]",
    help="deploy the bundle at this registry reference (pulled into the cache, verified) instead of BUNDLE",
)
@registry_options
@click.option("--to", "to", required=True, help="local directory, or [user@]host:path (rsync over ssh)")
@ssh_option
@target_option("checks that must pass before deploying")
@click.option("--force", is_flag=True, help="deploy even if the checks fail")
@click.option(
    "--dry-run",
    is_flag=True,
    help="verify, then print what would be copied; copy nothing (exit 1 if refused)",
)
@click.option(
    "--profile", default="default", type=click.Choice(["quick", "default", "thorough"]), help="fuzzing budget"
)
def deploy(
    bundle_ref: str | None,
    output_dir: Path,
    source: str | None,
    to: str,
    target: str,
    force: bool,
    dry_run: bool,
    profile: str,
    ssh: str | None,
    **registry: Any,
) -> None:
    """Verify BUNDLE (or --from oci://...) for --target, then copy it to --to (refused if a check fails,
    unless --force)."""
    from conv2d_bundle.bundle.store import Bundle, get_bundle
    from conv2d_bundle.cli.progress import StepDisplay
    from conv2d_bundle.lifecycle.deploy import deploy as do_deploy

    if (bundle_ref is None) == (source is None):
        raise click.UsageError("give BUNDLE or --from oci://..., one of them")
    if source is not None:
        from conv2d_bundle.cli.registry import RegistryAccess, RemoteBundle

        with RemoteBundle(source, RegistryAccess.from_kwargs(registry)) as remote:
            bundle = Bundle(remote.pull_to_cache())
        output_dir = bundle.bundle_dir.parent  # the cache's bundles/: deployments are recorded there
    else:
        bundle = get_bundle(output_dir, str(bundle_ref))
    with StepDisplay() as progress:  # a dry run verifies too: it exits as the deploy would (1 if refused)
        progress(f"verifying {bundle.exp_hash} --target {target}")
        result = do_deploy(
            bundle,
            to,
            target=target,
            force=force,
            dry_run=dry_run,
            profile=profile,
            artifacts_dir=output_dir,
            ssh=ssh,
        )
    if not result.verified:
        would = "would deploy" if dry_run else "deployed"
        click.echo(f"warning: {would} despite failing {target} checks (--force)", err=True)
    where = result.destination
    if dry_run:
        checks = "passed" if result.verified else "FAILED"
        click.echo(f"dry run: {bundle.exp_hash} --target {target} checks {checks}; nothing copied")
        if result.already_present:
            click.echo(f"  already deployed (verified intact) at {where}")
        elif result.command:
            click.echo(f"  would run: {shlex.join(result.command)}")
            click.echo(f"  then compare that copy with the bundle and rename it to {where} over ssh")
        else:
            click.echo(f"  would copy {bundle.bundle_dir} -> {where}")
        return
    verb = "already deployed (verified intact)" if result.already_present else "deployed"
    click.echo(f"Bundle {bundle.exp_hash} {verb} to {where}")


@click.command()
@click.argument("bundle_ref")
@artifacts_option
@click.option(
    "--to",
    "to",
    default=None,
    help="forget only the deployment at this destination (as given to deploy --to, or the bundle's path there)",
)
@click.option("--remove", is_flag=True, help="also delete the deployed copy at each destination forgotten")
@ssh_option
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def undeploy(
    bundle_ref: str, output_dir: Path, to: str | None, remove: bool, ssh: str | None, as_json: bool
) -> None:
    """Forget the deployments of BUNDLE (all, or the one --to names) so that clean may remove it; with
    --remove, delete the deployed copies first."""
    from conv2d_bundle.lifecycle.deploy import undeploy as do_undeploy

    forgotten = do_undeploy(output_dir, bundle_ref, to=to, remove=remove, ssh=ssh)
    if as_json:
        _echo_json({"undeployed": forgotten})
        return
    for d in forgotten:
        removed = {True: "; copy removed", False: "; no copy was there", None: ""}[d["removed"]]
        click.echo(f"undeployed {d['exp_hash']} from {d['destination']}{removed}")


@click.command()
@artifacts_option
@click.option("--keep", required=True, type=click.IntRange(min=0), help="keep the newest N bundles")
@click.option("--dry-run", is_flag=True, help="list what would be removed, remove nothing")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def clean(output_dir: Path, keep: int, dry_run: bool, as_json: bool) -> None:
    """Remove all but the newest --keep bundles (pinned and deployed ones stay) and stale temporary dirs."""
    from conv2d_bundle.lifecycle.retention import clean as do_clean
    from conv2d_bundle.lifecycle.retention import human_bytes

    plan = do_clean(output_dir, keep, dry_run=dry_run)
    if as_json:
        _echo_json({**plan.to_json(), "dry_run": dry_run})
        return
    verb = "would remove" if dry_run else "removed"
    for exp_hash, size in plan.remove:
        click.echo(f"{verb} {exp_hash} ({human_bytes(size)})")
    for name, size in plan.staging:
        click.echo(f"{verb} stale temporary directory {name} ({human_bytes(size)})")
    for exp_hash, reason in plan.kept:
        if reason != "newest":
            click.echo(f"kept {exp_hash} ({reason})")
    n = len(plan.remove)
    click.echo(
        f"{'Would free' if dry_run else 'Freed'} {human_bytes(plan.freed_bytes)}: "
        f"{n} bundle{'s' if n != 1 else ''}, {len(plan.staging)} temporary dir(s); {len(plan.kept)} kept"
    )


@click.command()
@click.argument("bundle1")
@click.argument("bundle2")
@artifacts_option
@click.option("--output", type=click.Path(path_type=Path), help="write the Markdown report to this file")
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON")
@click.option(
    "--fail-if-worse",
    "gates",
    multiple=True,
    metavar="METRIC:THRESHOLD",
    help="exit 1 if BUNDLE2 is worse than BUNDLE1 by more than THRESHOLD (negative: must improve by that much)",
)
def compare(
    bundle1: str, bundle2: str, output_dir: Path, output: Path | None, as_json: bool, gates: tuple[str, ...]
) -> None:
    """Compare BUNDLE1 (baseline) with BUNDLE2 (candidate): metrics, config, formats, sizes, checks."""
    from conv2d_bundle.bundle import atomic
    from conv2d_bundle.cli.progress import stdout_is_terminal
    from conv2d_bundle.lifecycle.compare import check_gates, compare_bundles, parse_gate, render_markdown

    parsed = [parse_gate(g) for g in gates]
    result = compare_bundles(bundle1, bundle2, output_dir)
    failed = check_gates(result, parsed)
    markdown = render_markdown(result)
    if output is not None:
        atomic.write_text(output, markdown)
    if as_json:
        _echo_json({**result, "gates_failed": failed})
    elif output is not None:
        click.echo(f"comparison written to {output}")
    elif stdout_is_terminal():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(markdown))
    else:
        click.echo(markdown, nl=False)
    if failed:
        raise ValidationFailed("; ".join(failed))


@click.command()
@click.argument("bundle_ref")
@artifacts_option
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@registry_options
def show(bundle_ref: str, output_dir: Path, as_json: bool, **registry: Any) -> None:
    """One bundle's summary: formats, sizes, metrics, validation per target, provenance. For an oci://
    reference: the validation evidence attached in the registry, per target, from every host."""
    from conv2d_bundle.bundle.store import get_bundle

    if bundle_ref.startswith("oci://"):
        from conv2d_bundle.cli.registry import RegistryAccess, show_remote

        show_remote(bundle_ref, RegistryAccess.from_kwargs(registry), as_json)
        return
    from conv2d_bundle.cli.progress import print_table
    from conv2d_bundle.lifecycle.retention import human_bytes
    from conv2d_bundle.lifecycle.show import show_bundle

    info = show_bundle(get_bundle(output_dir, bundle_ref), output_dir)
    if as_json:
        _echo_json(info)
        return
    prov = info["provenance"]
    click.echo(f"{info['exp_hash']}  {info['exp_name']}{'  (pinned)' if info['pinned'] else ''}")
    click.echo(f"  Path: {info['bundle_dir']}")
    click.echo(f"  Created: {info['created_at']} by {prov['created_by']}")
    click.echo(f"  Commit: {prov['commit_sha']}  version {prov['system_version']}")
    click.echo(f"  Size: {human_bytes(info['size_bytes'])}")
    click.echo(f"  Content: {info['content_digest'] or '(MANIFEST.json unreadable)'}")
    click.echo("")
    fmt_rows = [
        [
            name,
            f["status"],
            f["file"],
            None if f["size_bytes"] is None else human_bytes(f["size_bytes"]),
            f["reason"],
        ]
        for name, f in info["formats"].items()
    ]
    print_table(["format", "status", "file", "size", "note"], fmt_rows, title="Formats")
    click.echo("")
    print_table(["metric", "value"], sorted(info["metrics"].items()), title="Metrics")
    click.echo("")
    val_rows = [
        [
            t,
            v["result"],
            v["errors"],
            v["warnings"],
            v["skipped"],
            v["finished_at"] or ("(seal-time claim)" if v["source"].startswith("metadata") else "-"),
            v["host"] or "-",
        ]
        for t, v in info["validation"].items()
    ]
    print_table(
        ["target", "result", "errors", "warnings", "not verified", "last report", "host"],
        val_rows,
        title="Validation",
    )
    for d in info["deployments"]:
        click.echo(
            f"  deployed to {d.get('destination')} at {d.get('deployed_at')} (--target {d.get('target')})"
        )


@click.command()
@click.argument("bundle_ref")
@artifacts_option
def pin(bundle_ref: str, output_dir: Path) -> None:
    """Protect BUNDLE from clean."""
    from conv2d_bundle.lifecycle.retention import pin as do_pin

    exp_hash, new = do_pin(output_dir, bundle_ref)
    click.echo(f"{'pinned' if new else 'already pinned'}: {exp_hash}")


@click.command()
@click.argument("bundle_ref")
@artifacts_option
def unpin(bundle_ref: str, output_dir: Path) -> None:
    """Let clean remove BUNDLE again."""
    from conv2d_bundle.lifecycle.retention import unpin as do_unpin

    click.echo(f"unpinned: {do_unpin(output_dir, bundle_ref)}")


COMMANDS = (archive, import_cmd, deploy, undeploy, clean, compare, show, pin, unpin)
