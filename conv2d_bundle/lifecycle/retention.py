"""Housekeeping of an artifacts directory: pins, the deployment record, and ``clean --keep N``.

State that is about bundles but not part of them (a bundle is sealed) lives in ``<artifacts>/.conv2d/``:
``pins.json`` (bundles ``clean`` must keep) and ``deployments.json`` (where ``deploy`` copied what). Both are
versioned JSON written atomically.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conv2d_bundle.bundle import atomic
from conv2d_bundle.bundle.locks import build_in_progress
from conv2d_bundle.bundle.schema import read_json
from conv2d_bundle.bundle.store import get_bundle, is_bundle_dir
from conv2d_bundle.errors import BundleError, BundleIntegrityError, BundleNotFoundError

STATE_DIR = ".conv2d"
PINS_FILE = "pins.json"
DEPLOYMENTS_FILE = "deployments.json"
STATE_SCHEMA_VERSION = 1
STALE_STAGING_SECONDS = 3600
#: bundler.STAGING_PREFIX (and archive.IMPORT_PREFIX, deploy's copies start with it too); not imported from
#: bundler, which imports numpy: clean and list must stay light
STAGING_PREFIX = ".tmp-"


def _state_path(artifacts_dir: Path, name: str) -> Path:
    return Path(artifacts_dir) / STATE_DIR / name


def _read_state(path: Path, key: str) -> list[Any]:
    if not path.exists():
        return []
    try:
        data = read_json(path)
    except BundleIntegrityError as exc:
        raise BundleError(f"{path}: {exc}") from exc
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise BundleError(f"{path}: expected {{'schema_version': 1, '{key}': [...]}}")
    return items


def _write_state(path: Path, key: str, items: list[Any]) -> None:
    atomic.write_json(path, {"schema_version": STATE_SCHEMA_VERSION, key: items})


# -------------------------------------------------------------------------------------------- pins


def pinned(artifacts_dir: Path) -> set[str]:
    return {str(h) for h in _read_state(_state_path(artifacts_dir, PINS_FILE), "pins")}


def pin(artifacts_dir: Path, ref: str) -> tuple[str, bool]:
    """Pin a bundle (by prefix); (full hash, whether it was newly pinned)."""
    exp_hash = get_bundle(artifacts_dir, ref).exp_hash
    pins = pinned(artifacts_dir)
    if exp_hash in pins:
        return exp_hash, False
    _write_state(_state_path(artifacts_dir, PINS_FILE), "pins", sorted(pins | {exp_hash}))
    return exp_hash, True


def unpin(artifacts_dir: Path, ref: str) -> str:
    """Unpin by prefix of a pinned hash (the bundle itself may already be gone)."""
    pins = pinned(artifacts_dir)
    ref = ref.strip().lower()
    matches = sorted(h for h in pins if h.startswith(ref)) if len(ref) >= 4 else []
    if len(matches) != 1:
        what = "no pinned bundle matches" if not matches else "ambiguous among pinned bundles:"
        raise BundleNotFoundError(f"{ref!r}: {what} {', '.join(matches)}".rstrip())
    _write_state(_state_path(artifacts_dir, PINS_FILE), "pins", sorted(pins - {matches[0]}))
    return matches[0]


# ------------------------------------------------------------------------------------- deployments


def deployments(artifacts_dir: Path) -> list[dict[str, Any]]:
    return [
        d
        for d in _read_state(_state_path(artifacts_dir, DEPLOYMENTS_FILE), "deployments")
        if isinstance(d, dict)
    ]


def record_deployment(artifacts_dir: Path, entry: Mapping[str, Any]) -> None:
    """Record a deployment; one of the same bundle to the same destination replaces the older record."""
    path = _state_path(artifacts_dir, DEPLOYMENTS_FILE)
    key = (entry.get("exp_hash"), entry.get("destination"))
    kept = [d for d in deployments(artifacts_dir) if (d.get("exp_hash"), d.get("destination")) != key]
    _write_state(path, "deployments", [*kept, dict(entry)])


def forget_deployments(artifacts_dir: Path, entries: list[dict[str, Any]]) -> None:
    """Drop these records (as :func:`deployments` returned them): ``clean`` no longer keeps their bundles for them."""
    if entries:
        path = _state_path(artifacts_dir, DEPLOYMENTS_FILE)
        _write_state(path, "deployments", [d for d in deployments(artifacts_dir) if d not in entries])


def deployed(artifacts_dir: Path) -> set[str]:
    return {str(d.get("exp_hash")) for d in deployments(artifacts_dir)}


# ------------------------------------------------------------------------------------------- clean


@dataclass
class CleanPlan:
    """What ``clean`` removes (or would, with --dry-run) and what it keeps, and why."""

    remove: list[tuple[str, int]] = field(default_factory=list)  # (bundle hash, bytes)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (bundle hash, reason)
    staging: list[tuple[str, int]] = field(default_factory=list)  # (stale .tmp-* dir name, bytes)

    @property
    def freed_bytes(self) -> int:
        return sum(n for _, n in self.remove) + sum(n for _, n in self.staging)

    def to_json(self) -> dict[str, Any]:
        return {
            "removed": [{"exp_hash": h, "bytes": n} for h, n in self.remove],
            "kept": [{"exp_hash": h, "reason": r} for h, r in self.kept],
            "staging_removed": [{"name": s, "bytes": n} for s, n in self.staging],
            "freed_bytes": self.freed_bytes,
        }


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path``, links not followed."""
    total = 0
    for dirpath, _dirs, files in os.walk(path, followlinks=False):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += st.st_size if not os.path.islink(os.path.join(dirpath, name)) else 0
    return total


def plan_clean(artifacts_dir: Path, keep: int, *, now: float | None = None) -> CleanPlan:
    if keep < 0:
        raise BundleError(f"--keep {keep}: give 0 or more")
    artifacts_dir = Path(artifacts_dir)
    plan = CleanPlan()
    if not artifacts_dir.is_dir():
        return plan
    pins, live = pinned(artifacts_dir), deployed(artifacts_dir)
    bundles: list[tuple[str, str]] = []  # (created_at, hash)
    now = time.time() if now is None else now
    with os.scandir(artifacts_dir) as it:
        for entry in it:
            path = Path(entry.path)
            if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name.startswith(STAGING_PREFIX):
                stale = now - entry.stat(follow_symlinks=False).st_mtime > STALE_STAGING_SECONDS
                building = build_in_progress(artifacts_dir, entry.name[len(STAGING_PREFIX) :][:12])
                if stale and not building:  # a create still holding its lock is alive, however old
                    plan.staging.append((entry.name, tree_size(path)))
            elif is_bundle_dir(path):
                meta = read_json(path / "metadata.json")
                bundles.append((str(meta.get("created_at", "")), entry.name))
    bundles.sort(reverse=True)
    for i, (_created, exp_hash) in enumerate(bundles):
        if i < keep:
            plan.kept.append((exp_hash, "newest"))
        elif exp_hash in pins:
            plan.kept.append((exp_hash, "pinned"))
        elif exp_hash in live:
            plan.kept.append((exp_hash, "deployed"))
        else:
            plan.remove.append((exp_hash, tree_size(artifacts_dir / exp_hash)))
    plan.staging.sort()
    return plan


def clean(artifacts_dir: Path, keep: int, *, dry_run: bool = False) -> CleanPlan:
    """Remove all but the newest ``keep`` bundles (pinned and deployed ones stay) and stale staging dirs."""
    plan = plan_clean(artifacts_dir, keep)
    if dry_run:
        return plan
    for exp_hash, _size in plan.remove:
        path = Path(artifacts_dir) / exp_hash
        if is_bundle_dir(path):  # re-checked just before: never remove what is not (or no longer) a bundle
            _remove_bundle(path)
    for name, _size in plan.staging:
        path = Path(artifacts_dir) / name
        if path.is_dir() and not path.is_symlink():
            _rmtree(path)
    return plan


def _remove_bundle(path: Path) -> None:
    """Renamed aside in one step, then deleted: a reader (a create that found the bundle) sees it whole or
    not at all, never a directory losing its files. A crash in between leaves a ``.tmp-*`` for clean."""
    try:
        aside = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{path.name}-removed-", dir=path.parent))
        os.rename(path, aside / path.name)
    except OSError as exc:
        raise BundleError(f"cannot remove {path}: {exc.strerror or exc}") from exc
    _rmtree(aside)


def _rmtree(path: Path) -> None:
    try:
        shutil.rmtree(path)  # rmtree does not follow symlinks: a link inside is removed, not its target
    except OSError as exc:
        raise BundleError(f"cannot remove {path}: {exc.strerror or exc}") from exc


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
