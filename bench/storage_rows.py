"""Rows 7-8: ``conv2d pack list`` over many bundles vs a bare read loop; MANIFEST hashing vs ``sha256sum``."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from bench import Row
from bench.timing import PYTHON, child_env, conv2d_cmd, fmt_s, side_by_side, wall
from bench.workspace import Workspace

READ_LOOP = """\
import json, os, sys
rows = []
for entry in os.scandir(sys.argv[1]):
    with open(os.path.join(entry.path, "metadata.json")) as f:
        m = json.load(f)
    rows.append((m["created_at"], m["exp_hash"], m["exp_name"]))
rows.sort(reverse=True)
print(f"Found {len(rows)} bundles")
for _, h, name in rows:
    print(f"  {h}  {name}")
"""


def make_bundle_dirs(template: dict, root: Path, count: int) -> None:
    """``count`` bundle directories holding only a metadata.json copied from ``template``, distinct hashes."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        exp_hash = f"{(i * 2654435761 + 0xABCDEF) % (1 << 48):012x}"
        meta = dict(template, exp_hash=exp_hash, created_at=f"2026-01-01T00:00:{i % 60:02d}Z")
        d = root / exp_hash
        d.mkdir()
        (d / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


def rows_list(ws: Workspace, repeats: int, count: int) -> list[Row]:
    """Row 7: ``list`` with ``count`` bundles on disk vs reading their metadata.json in a loop."""
    template = json.loads((ws.bundle / "metadata.json").read_text())
    many = ws.root / "many"
    shutil.rmtree(many, ignore_errors=True)
    make_bundle_dirs(template, many, count)
    loop = ws.script("read_loop.py", READ_LOOP)
    env = child_env()
    t = side_by_side(
        {
            "list": lambda: wall(conv2d_cmd("pack", "list", "--output-dir", str(many)), env=env),
            "loop": lambda: wall([PYTHON, str(loop), str(many)], env=env),
        },
        repeats,
    )
    shutil.rmtree(many, ignore_errors=True)
    ratio = t["list"] / t["loop"]
    return [
        Row(
            "list", f"list with {count:,} bundles on disk", f"reading {count:,} metadata.json in a loop",
            fmt_s(t["list"]), fmt_s(t["loop"]), ratio, "<= 1.5x", ratio <= 1.5,
        )
    ]  # fmt: skip


def _write_file(path: Path, megabytes: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(megabytes):
            f.write(block[i % 7 :] + block[: i % 7])  # no two blocks alike


def rows_hash(ws: Workspace, repeats: int, megabytes: int) -> list[Row]:
    """Row 8: MANIFEST hashing (``BundleManifest.build``) of a large file vs ``sha256sum``, as throughput."""
    from conv2d_bundle.bundle.manifest import BundleManifest

    sha256sum = shutil.which("sha256sum")
    goal = ">= 0.8x sha256sum"
    if sha256sum is None:
        return [
            Row("hash", "MANIFEST hashing", "sha256sum", "-", "-", None, goal, None, "sha256sum not found")
        ]
    folder = ws.scratch("bigfile")
    big = folder / "models" / "weights.bin"
    big.parent.mkdir()
    _write_file(big, megabytes)
    try:
        wall([sha256sum, str(big)])  # read once so both measure hashing from the page cache

        def manifest() -> float:
            start = time.perf_counter()
            BundleManifest.build(folder)
            return time.perf_counter() - start

        t = side_by_side({"manifest": manifest, "sha256sum": lambda: wall([sha256sum, str(big)])}, repeats)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    mb_manifest, mb_tool = megabytes / t["manifest"], megabytes / t["sha256sum"]
    ratio = mb_manifest / mb_tool
    return [
        Row(
            "hash", f"MANIFEST hashing of a {megabytes} MB file (throughput)", "sha256sum on the same file",
            f"{mb_manifest:.0f} MB/s", f"{mb_tool:.0f} MB/s", ratio, goal, ratio >= 0.8,
        )
    ]  # fmt: skip
