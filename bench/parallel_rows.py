"""Row 9: verifying many bundles, 2 processes at a time vs 1."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from bench import Row
from bench.timing import BenchError, child_env, conv2d_cmd, fmt_s
from bench.workspace import Workspace

#: what each bundle is verified for: the ONNX checks with the quick fuzzing budget keep the row to minutes
VERIFY_ARGS = ("--target", "onnx", "--profile", "quick")


def _verify_all(bundles: list[Path], jobs: int) -> float:
    """Wall time to verify every bundle with at most ``jobs`` ``conv2d pack verify`` processes at once."""
    env = child_env()
    pending = list(bundles)
    running: list[subprocess.Popen[bytes]] = []
    start = time.perf_counter()
    while pending or running:
        while pending and len(running) < jobs:
            b = pending.pop()
            cmd = conv2d_cmd("pack", "verify", b.name, "--output-dir", str(b.parent), *VERIFY_ARGS)
            running.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env))
        proc = running.pop(0)
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise BenchError(f"verify exited {proc.returncode}: {err.decode()[-400:]}")
    return time.perf_counter() - start


def rows_parallel(ws: Workspace, count: int) -> list[Row]:
    """Row 9: ``count`` copies of the example bundle, each in its own artifacts dir; 2 at a time vs 1."""
    root = ws.scratch("parallel")
    bundles = []
    for i in range(count):
        dst = root / f"artifacts-{i:02d}" / ws.bundle.name
        shutil.copytree(ws.bundle, dst)
        bundles.append(dst)
    serial = _verify_all(bundles, 1)
    parallel = _verify_all(bundles, 2)
    shutil.rmtree(root, ignore_errors=True)
    speedup = serial / parallel
    return [
        Row(
            "parallel", f"verify {count} bundles ({' '.join(VERIFY_ARGS)}), 2 processes at a time",
            "1 process at a time", fmt_s(parallel), fmt_s(serial), speedup, ">= 1.6x speed-up",
            speedup >= 1.6, "ratio is the speed-up (serial / parallel); one run of each (each is many runs)",
        )
    ]  # fmt: skip
