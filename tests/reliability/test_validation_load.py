"""Promise 8: verifying many bundles at once gives the same reports as one at a time, and a killed verify
never leaves a truncated report."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

N_BUNDLES = 3  # the 50-bundle figure is a benchmark (bench/), this is the property


def _verify(bundle: Path) -> dict[str, Any]:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "conv2d_bundle.cli",
            "pack",
            "verify",
            str(bundle),
            "--target",
            "onnx",
            "--profile",
            "quick",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    report = json.loads((bundle / "validation" / "onnx_validation.json").read_text())
    return {
        "ids": [(c["id"], c["outcome"]) for c in report["checks"]],
        "passed": report["passed"],
        "warnings": report["warnings"],
        "skipped": report["skipped"],
    }


def test_parallel_verification_matches_serial(example_bundle: Path, tmp_path: Path) -> None:
    bundles = []
    for i in range(N_BUNDLES):
        dst = tmp_path / f"art{i}" / example_bundle.name
        shutil.copytree(example_bundle, dst)
        bundles.append(dst)
    serial = [_verify(b) for b in bundles]
    with ThreadPoolExecutor(max_workers=2) as pool:
        parallel = list(pool.map(_verify, bundles))
    assert serial == parallel
    assert all(r == serial[0] for r in serial)


KILL_WHILE_WRITING = """
import os, signal, sys
import conv2d_bundle.bundle.atomic as atomic

def die(fd):  # the report's bytes are written, not yet published: the worst moment to be killed
    os.kill(os.getpid(), signal.SIGKILL)

atomic.os.fsync = die
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


def test_killed_verify_leaves_no_truncated_report(bundle_copy: Path) -> None:
    args = [
        str(ROOT / "checks"),
        "--bundle",
        str(bundle_copy),
        "--target",
        "onnx",
        "-q",
        "-p",
        "no:cacheprovider",
        "--check-profile",
        "quick",
    ]
    first = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-1000:]
    reports = bundle_copy / "validation"
    before = {f.name: f.read_bytes() for f in reports.glob("*.json")}
    killed = subprocess.run([sys.executable, "-c", KILL_WHILE_WRITING, *args], cwd=ROOT, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    after = {f.name: f.read_bytes() for f in reports.glob("*.json")}
    assert after == before  # the previous reports, whole; never a half-written one
    for data in after.values():
        json.loads(data)
