"""Fixtures for the Hailo tests: the fakes' locations, synthesized HEFs, the real HEF when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import SHARED

FAKES = Path(__file__).parent / "fakes"
FAKE_BIN = FAKES / "bin"
REAL_HEF = SHARED / "data" / "hef" / "real_hailo8_dfc3.27.hef"


def fake_env(*, dfc: bool = True, hailortcli: bool = True, **extra: str) -> dict[str, str]:
    """The environment of a child process that sees the fake DFC and/or the fake hailortcli."""
    env = dict(os.environ)
    if dfc:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FAKES), env.get("PYTHONPATH", "")) if p)
    if hailortcli:
        env["PATH"] = os.pathsep.join([str(FAKE_BIN), env.get("PATH", "")])
    env.update(extra)
    return env


@pytest.fixture
def real_hef() -> Path:
    if not REAL_HEF.is_file():
        pytest.skip(f"the real HEF is not at {REAL_HEF} (see ../shared/data/hef/README.md)")
    return REAL_HEF
