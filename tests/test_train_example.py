"""examples/train_example.py writes the same bytes on every run: whatever thread count the environment asks for
(torch's CPU kernels split their sums by thread count, so the script fixes it) and whatever the output is called
(torch.save names the archive inside the file after the file). A short run stands in for the real one, which
takes ~30 s of CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SCRIPT = ROOT / "examples" / "train_example.py"


def _train(output: Path, threads: str) -> bytes:
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(output), "--epochs", "1", "--windows", "128"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    return output.read_bytes()


def test_two_short_runs_give_identical_bytes(tmp_path: Path) -> None:
    one = _train(tmp_path / "one.pt", threads="1")
    other = _train(tmp_path / "other.pt", threads="3")
    assert one == other
