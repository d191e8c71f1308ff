"""Per-EXP_HASH build locks in ``<artifacts>/.conv2d/locks/`` (``flock``: released when the process dies).

``create`` holds one while it builds; ``clean`` asks before removing a staging directory, so a long
build (a Hailo compile may take an hour) is never removed from under a running create.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

LOCK_DIR = Path(".conv2d") / "locks"


def _lock_path(artifacts_dir: Path, exp_hash: str) -> Path:
    return artifacts_dir / LOCK_DIR / f"{exp_hash}.lock"


@contextlib.contextmanager
def build_lock(artifacts_dir: Path, exp_hash: str) -> Iterator[None]:
    """Hold the build lock of ``exp_hash``; waits while another process holds it."""
    path = _lock_path(artifacts_dir, exp_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def build_in_progress(artifacts_dir: Path, exp_hash: str) -> bool:
    """Whether a live process holds the build lock of ``exp_hash`` right now."""
    path = _lock_path(artifacts_dir, exp_hash)
    if not path.is_file():
        return False
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False
