"""Promise 8: verifying many bundles at once gives the same reports as one at a time, and a killed verify
never leaves a truncated report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
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


def test_killed_verify_leaves_no_truncated_report(bundle_copy: Path) -> None:
    reports = bundle_copy / "validation"
    for delay in (0.5, 1.5, 2.5, 3.5):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "checks",
                "--bundle",
                str(bundle_copy),
                "--target",
                "onnx",
                "-q",
                "-p",
                "no:cacheprovider",
                "--check-profile",
                "quick",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for f in reports.glob("*.json") if reports.is_dir() else []:
            json.loads(f.read_text())  # whole or absent, never half
