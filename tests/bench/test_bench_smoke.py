"""``python -m bench --quick`` runs and writes its JSON (one cheap row: the benchmarks are not timed tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m bench ARGS`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )


def test_bench_quick_hash_row(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = bench("--quick", "--only", "hash", "--repeats", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MANIFEST hashing" in proc.stdout
    result = json.loads(out.read_text())
    assert result["quick"] is True
    [row] = result["rows"]
    assert row["key"] == "hash" and row["ratio"] > 0


def test_bench_rejects_unknown_row() -> None:
    proc = bench("--only", "nope")
    assert proc.returncode == 2
    assert "unknown row" in proc.stderr


def test_bench_suite_row_runs_only_when_named(tmp_path: Path) -> None:
    """``--only suite`` times a pytest run (here a collect-only one, through the override); by default it is
    not in the table."""
    from bench.__main__ import OPT_IN, ROWS

    assert "suite" in ROWS and "suite" in OPT_IN
    out = tmp_path / "results.json"
    env = {
        **os.environ,
        "BENCH_SUITE_ARGS": "--collect-only -q -p no:cacheprovider tests/bench/test_bench_smoke.py",
    }
    proc = bench("--only", "suite", "--json", str(out), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [row] = json.loads(out.read_text())["rows"]
    assert row["key"] == "suite" and row["met"] is None and "exit 0" in row["note"]
