"""Row 9: verifying many bundles, 2 processes at a time vs 1."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from bench import Row
from bench.timing import BenchError, child_env, children_cpu, conv2d_cmd, fmt_s
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
    before = children_cpu()
    serial = _verify_all(bundles, 1)
    cpu = children_cpu() - before
    before = children_cpu()
    parallel = _verify_all(bundles, 2)
    cpu_parallel = children_cpu() - before
    shutil.rmtree(root, ignore_errors=True)
    speedup = serial / parallel
    # two processes on 2 cores cannot finish faster than their CPU time over 2: a verify that already keeps
    # both cores busy part of the time (onnxruntime's intra-op threads) leaves less to gain
    ceiling = min(2.0, 2 * serial / cpu) if cpu > 0 else 2.0
    return [
        Row(
            "parallel", f"verify {count} bundles ({' '.join(VERIFY_ARGS)}), 2 processes at a time",
            "1 process at a time", fmt_s(parallel), fmt_s(serial), speedup, ">= 1.6x speed-up",
            speedup >= 1.6,
            f"ratio is the speed-up (serial / parallel); one run of each (each is many runs); one at a time used "
            f"{cpu:.1f} s of CPU (user+sys) in {serial:.1f} s: 2 cores allow at most {ceiling:.2f}x; two at a "
            f"time used {cpu_parallel:.1f} s",
        )
    ]  # fmt: skip
