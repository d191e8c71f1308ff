"""The repository's own pytest configuration (pytest.ini) leaves pytest's cache on: ``--lf`` and ``--ff`` work."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

TWO_TESTS = "def test_passes():\n    pass\n\n\ndef test_fails():\n    assert False\n"


def test_last_failed_reruns_only_the_failure(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pytest.ini", tmp_path / "pytest.ini")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_two.py").write_text(TWO_TESTS)

    def pytest(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )

    first = pytest()
    assert first.returncode == 1 and "1 failed, 1 passed" in first.stdout, first.stdout + first.stderr
    again = pytest("--lf")
    assert again.returncode == 1 and "rerun previous 1 failure" in again.stdout, again.stdout + again.stderr
    assert "passed" not in again.stdout
    first_failures_first = pytest("--ff", "-v")
    lines = [line for line in first_failures_first.stdout.splitlines() if "::test_" in line]
    assert "test_fails" in lines[0] and "test_passes" in lines[1], first_failures_first.stdout


def test_the_package_cites_no_document_outside_the_repository() -> None:
    """Docstrings and comments point at files a reader of this repository has (the design notes that the
    project started from live elsewhere): no 'see DESIGN.md', no spec paths."""
    import re

    outside = re.compile(r"DESIGN\.md|STYLE\.md|artifact-packaging|\.\./shared")
    cited = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "conv2d_bundle").rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line)
    ]
    assert cited == []
