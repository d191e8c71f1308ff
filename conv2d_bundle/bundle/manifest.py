"""MANIFEST.json: the sha256 and size of every file of a bundle but itself and ``validation/``.

Shape (the bundle contract)::

    {"schema_version": 1, "algorithm": "sha256",
     "files": {"models/model.onnx": {"sha256": "<hex>", "size": 1234}, ...}}
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conv2d_bundle.bundle import atomic
from conv2d_bundle.bundle.digest import canonical_json, sha256_file
from conv2d_bundle.bundle.schema import safe_relpath
from conv2d_bundle.errors import BundleIntegrityError

MANIFEST_NAME = "MANIFEST.json"
SIGNATURE_NAME = "MANIFEST.json.sig"  # a detached signature of the manifest (signing.py)
SCHEMA_VERSION = 1
#: paths that are not content: reports written by verify, and the manifest and its signature
UNSEALED = ("validation/",)
UNSEALED_FILES = (MANIFEST_NAME, "MANIFEST.json.sig")


def is_sealed_path(relpath: str) -> bool:
    return relpath not in UNSEALED_FILES and not relpath.startswith(UNSEALED)


def iter_bundle_entries(root: Path) -> Iterator[tuple[str, Path]]:
    """Every entry under ``root`` that the manifest covers, as (posix relpath, path), sorted; no links followed."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):  # symlinked dirs are taken out of dirnames below
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        if prefix and not is_sealed_path(prefix):
            dirnames[:] = []
            continue
        # symlinked directories are reported as entries (and then fail verification), not walked into
        for d in list(dirnames):
            if (base / d).is_symlink():
                dirnames.remove(d)
                filenames.append(d)
        for name in filenames:
            rel = prefix + name
            if is_sealed_path(rel):
                found.append((rel, base / name))
    yield from sorted(found)


@dataclass(frozen=True)
class ManifestDiff:
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    not_regular: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra or self.not_regular)

    def describe(self) -> str:
        parts = []
        for label, items in (
            ("changed", self.changed),
            ("missing", self.missing),
            ("extra (not in manifest)", self.extra),
            ("not a regular file", self.not_regular),
        ):
            if items:
                parts.append(f"{label}: {', '.join(items)}")
        return "; ".join(parts) or "all files match"


@dataclass(frozen=True)
class BundleManifest:
    files: Mapping[str, Mapping[str, Any]]

    @classmethod
    def build(cls, root: Path) -> BundleManifest:
        files: dict[str, dict[str, Any]] = {}
        for rel, path in iter_bundle_entries(root):
            if path.is_symlink() or not path.is_file():
                raise BundleIntegrityError(f"{rel}: not a regular file; a bundle holds regular files only")
            files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        return cls(files)

    @classmethod
    def load(cls, root: Path) -> BundleManifest:
        return cls.parse((root / MANIFEST_NAME).read_bytes())

    @classmethod
    def parse(cls, raw: bytes) -> BundleManifest:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleIntegrityError(f"{MANIFEST_NAME} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            raise BundleIntegrityError(f"{MANIFEST_NAME}: expected schema_version {SCHEMA_VERSION}")
        if data.get("algorithm") != "sha256" or not isinstance(data.get("files"), dict):
            raise BundleIntegrityError(f"{MANIFEST_NAME}: expected algorithm sha256 and a files mapping")
        for rel, entry in data["files"].items():
            ok = (
                isinstance(entry, dict)
                and isinstance(entry.get("sha256"), str)
                and len(entry["sha256"]) == 64
                and isinstance(entry.get("size"), int)
                and entry["size"] >= 0
            )
            if not ok or not safe_relpath(rel):
                raise BundleIntegrityError(f"{MANIFEST_NAME}: bad entry for {rel!r}")
        return cls(data["files"])

    @functools.cached_property
    def content_digest(self) -> str:
        """The bundle's content identity: ``sha256:<hex>`` of this manifest as canonical JSON (every sealed
        file's path, sha256 and size). EXP_HASH names the experiment; this names the bytes: a verdict, a
        cache entry or a piece of evidence is about this digest."""
        return "sha256:" + hashlib.sha256(canonical_json(self.to_json()).encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "algorithm": "sha256",
            "files": dict(sorted(self.files.items())),
        }

    def write(self, root: Path) -> None:
        atomic.write_json(root / MANIFEST_NAME, self.to_json())

    def verify(self, root: Path) -> ManifestDiff:
        """Compare the directory with this manifest: what is missing, changed, extra or not a file."""
        diff = ManifestDiff()
        seen = set()
        for rel, path in iter_bundle_entries(root):
            seen.add(rel)
            if path.is_symlink() or not path.is_file():
                diff.not_regular.append(rel)
            elif rel not in self.files:
                diff.extra.append(rel)
            else:
                entry = self.files[rel]
                if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
                    diff.changed.append(rel)
        diff.missing.extend(sorted(set(self.files) - seen))
        return diff
