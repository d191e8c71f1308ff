"""clean --keep N, pin/unpin: only valid, unprotected bundles go; links are never followed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from click.testing import CliRunner

from conv2d_bundle import cli
from conv2d_bundle.lifecycle import create as bundler
from conv2d_bundle.lifecycle import retention as lifecycle
from tests.lifecycle.conftest import MakeVariant

OLD, MID, NEW = "aaaaaaaaaaa1", "aaaaaaaaaaa2", "aaaaaaaaaaa3"


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli.main, list(args))
    return r.exit_code, r.stdout, r.stderr


def three(variant: MakeVariant) -> Path:
    for h, day in ((OLD, "01"), (MID, "02"), (NEW, "03")):
        art = variant(h, created_at=f"2026-01-{day}T00:00:00.000000Z").parent
    return art


def test_clean_keep_1_removes_exactly_two_bundles(variant: MakeVariant) -> None:
    art = three(variant)
    (art / "not_a_bundle").mkdir()
    (art / "not_a_bundle" / "keep.txt").write_text("mine")
    (art / "stray.txt").write_text("mine")
    (art / "bbbbbbbbbbbb").mkdir()  # hash-shaped, but no metadata: not a bundle
    size = lifecycle.tree_size(art / OLD) + lifecycle.tree_size(art / MID)

    code, out, err = invoke("pack", "clean", "--keep", "1", "--output-dir", str(art), "--dry-run")
    assert code == 0, err
    assert f"would remove {OLD}" in out and f"would remove {MID}" in out
    assert (art / OLD).exists() and (art / MID).exists()

    code, out, err = invoke("pack", "clean", "--keep", "1", "--output-dir", str(art), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert sorted(r["exp_hash"] for r in report["removed"]) == [OLD, MID]
    assert report["freed_bytes"] == size > 0
    assert sorted(p.name for p in art.iterdir()) == sorted([NEW, "bbbbbbbbbbbb", "not_a_bundle", "stray.txt"])
    assert (art / "not_a_bundle" / "keep.txt").read_text() == "mine"


def test_clean_keeps_pinned_and_deployed_and_never_follows_links(
    variant: MakeVariant, tmp_path: Path
) -> None:
    art = three(variant)
    outside = variant("cccccccccccc", created_at="2020-01-01T00:00:00.000000Z")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = elsewhere / outside.name
    outside.rename(moved)
    (art / outside.name).symlink_to(moved, target_is_directory=True)  # a link named like a bundle

    code, out, _ = invoke("pack", "pin", OLD, "--output-dir", str(art))
    assert code == 0 and f"pinned: {OLD}" in out
    lifecycle.record_deployment(art, {"exp_hash": MID, "destination": "/opt/models"})
    code, out, _ = invoke("pack", "clean", "--keep", "0", "--output-dir", str(art))
    assert code == 0
    assert f"kept {OLD} (pinned)" in out and f"kept {MID} (deployed)" in out
    assert not (art / NEW).exists()
    assert (art / outside.name).is_symlink() and (moved / "MANIFEST.json").exists()

    code, out, _ = invoke("pack", "unpin", OLD, "--output-dir", str(art))
    assert code == 0 and f"unpinned: {OLD}" in out
    code, _, err = invoke("pack", "unpin", OLD, "--output-dir", str(art))
    assert code == 2 and "no pinned bundle" in err
    invoke("pack", "clean", "--keep", "0", "--output-dir", str(art))
    assert not (art / OLD).exists() and (art / MID).exists()


def test_clean_removes_stale_staging_dirs_only(tmp_path: Path) -> None:
    art = tmp_path / "art"
    stale = art / f"{lifecycle.STAGING_PREFIX}0123456789ab-xyz"
    fresh = art / f"{lifecycle.STAGING_PREFIX}import-abc"
    for d in (stale, fresh):
        d.mkdir(parents=True)
        (d / "half.onnx").write_bytes(b"\0" * 100)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    code, out, _ = invoke("pack", "clean", "--keep", "5", "--output-dir", str(art))
    assert code == 0 and "stale temporary directory" in out and "100 B" in out
    assert not stale.exists() and fresh.exists()
    assert lifecycle.STAGING_PREFIX == bundler.STAGING_PREFIX
