"""Where a bundle came from: system version, the user's git commit, who made it, when."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
import socket
import subprocess
from pathlib import Path

UNKNOWN_COMMIT = "unknown"
_SHA = re.compile(r"^[0-9a-f]{40}$")


def system_version() -> str:
    from conv2d_bundle import __version__

    return __version__


def commit_sha(cwd: Path | None = None) -> str:
    """HEAD of the git repository the user runs in, or ``unknown`` outside one (or without git)."""
    try:
        p = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN_COMMIT
    sha = p.stdout.strip()
    return sha if p.returncode == 0 and _SHA.match(sha) else UNKNOWN_COMMIT


def is_commit_sha(text: str) -> bool:
    return text == UNKNOWN_COMMIT or bool(_SHA.match(text))


def created_by() -> str:
    """``CONV2D_CREATED_BY``, else user@host."""
    if who := os.environ.get("CONV2D_CREATED_BY"):
        return who
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def utc_now() -> str:
    """ISO 8601 UTC with microseconds and a Z, as metadata.json holds it."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
