"""Promise 1: a create killed at any point leaves nothing that list, get_bundle or verify takes for a bundle;
the next create succeeds; clean removes the leftovers. Promise 5 (part): a disk full mid-write is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conv2d_bundle.bundle.digest import is_exp_hash
from conv2d_bundle.bundle.store import get_bundle, list_bundles
from conv2d_bundle.errors import BundleNotFoundError
from tests.conftest import ROOT, conv2d, create_args

POINTS = ["reference", "onnx-export", "coreml-export", "manifest", "seal-checks", "rename"]


def _drive(point: str, action: str, out: Path, formats: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability.driver",
            point,
            action,
            "--",
            *create_args(out, formats=formats),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def _formats_for(point: str) -> str:
    if point == "coreml-export":
        pytest.importorskip("coremltools", reason="the Core ML conversion point needs coremltools")
        return "onnx,coreml"
    return "onnx"


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_each_point_leaves_no_bundle(tmp_path: Path, point: str) -> None:
    out = tmp_path / "art"
    p = _drive(point, "kill", out, _formats_for(point))
    assert p.returncode == -9, f"not killed at {point}: rc {p.returncode}\n{p.stderr[-800:]}"
    assert list_bundles(out) == []
    assert not [d for d in out.iterdir() if is_exp_hash(d.name)]
    leftovers = [d for d in out.iterdir() if d.name.startswith(".tmp-")]
    assert leftovers, "the kill should leave a staging directory for clean to remove"
    with pytest.raises(BundleNotFoundError):
        get_bundle(out, leftovers[0].name.removeprefix(".tmp-")[:12])
    v = conv2d("pack", "verify", str(leftovers[0]), "--target", "onnx")
    assert v.returncode != 0  # a staging dir is not verified as a bundle
    again = conv2d(*create_args(out))
    assert again.returncode == 0, again.stderr
    assert len(list_bundles(out)) == 1


def test_clean_removes_crash_leftovers(tmp_path: Path) -> None:
    import os

    out = tmp_path / "art"
    assert _drive("manifest", "kill", out, "onnx").returncode == -9
    leftover = next(d for d in out.iterdir() if d.name.startswith(".tmp-"))
    old = leftover.stat().st_mtime - 2 * 3600
    os.utime(leftover, (old, old))
    p = conv2d("pack", "clean", "--keep", "5", "--output-dir", str(out))
    assert p.returncode == 0, p.stderr
    assert not leftover.exists()


def test_disk_full_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "art"
    p = _drive("onnx-export", "enospc", out, "onnx")
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert p.returncode == 2 and len(errors) == 1 and "No space left on device" in errors[0], p.stderr
    assert "Traceback" not in p.stderr
    assert [d.name for d in out.iterdir() if d.name != ".conv2d"] == []


def test_clean_spares_a_create_that_is_still_running(tmp_path: Path) -> None:
    import os

    from conv2d_bundle.bundle.locks import build_lock
    from conv2d_bundle.lifecycle.retention import clean

    out = tmp_path / "art"
    staging = out / ".tmp-abcdefabcdef-x1y2"
    staging.mkdir(parents=True)
    (staging / "part.bin").write_bytes(b"half a bundle")
    old = staging.stat().st_mtime - 2 * 3600
    os.utime(staging, (old, old))
    with build_lock(out, "abcdefabcdef"):  # as a long create (a Hailo compile) holds it
        clean(out, keep=5)
        assert staging.exists()
    clean(out, keep=5)
    assert not staging.exists()
