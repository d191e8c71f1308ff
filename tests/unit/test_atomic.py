"""atomic.exchange: two directories trade places in one step, or the caller is told to fall back."""

from __future__ import annotations

from pathlib import Path

import pytest

from conv2d_bundle.bundle import atomic


def test_exchange_swaps_two_directories(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "old").write_text("old")
    (b / "new").write_text("new")
    if not atomic.exchange(a, b):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here: callers use two renames")
    assert [p.name for p in a.iterdir()] == ["new"] and [p.name for p in b.iterdir()] == ["old"]
    with pytest.raises(FileNotFoundError):
        atomic.exchange(a, tmp_path / "missing")
