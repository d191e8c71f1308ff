"""Shape checks for the JSON files a bundle holds (metadata.json, label_map.json).

They read untrusted files (a bundle may come from anywhere): each either returns the data, checked, or
raises BundleIntegrityError naming the file and the field, never a KeyError or TypeError later on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from conv2d_bundle.errors import BundleIntegrityError

_METADATA_TYPES: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "exp_hash": str,
    "exp_name": str,
    "created_at": str,
    "created_by": str,
    "system_version": str,
    "commit_sha": str,
    "model": dict,
    "formats": dict,
    "validation": dict,
}
REQUIRED_METADATA = ("exp_hash", "created_at", "formats")


def safe_relpath(rel: Any) -> bool:
    """Whether ``rel`` is a relative path that stays inside the bundle (``/``-separated, no ``..``, ``.``,
    empty part, leading ``/`` or backslash): what MANIFEST.json and metadata.json may name."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def read_json(path: str | Path, *, what: str | None = None) -> Any:
    """A JSON file of a bundle, parsed; BundleIntegrityError naming it when missing, unreadable or invalid.
    ``path`` may be a string (listing 10,000 bundles, a ``Path`` each cost as much as the decoding)."""
    label = what or os.path.basename(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError as exc:
        raise BundleIntegrityError(f"{label} is missing") from exc
    except OSError as exc:
        raise BundleIntegrityError(f"{label}: cannot read ({exc.strerror})") from exc
    return parse_json(raw, label)


def parse_json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleIntegrityError(f"{what} is not valid JSON: {exc}") from exc


def check_metadata(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BundleIntegrityError("metadata.json: expected a JSON object")
    missing = [k for k in REQUIRED_METADATA if k not in data]
    if missing:
        raise BundleIntegrityError(f"metadata.json lacks {missing}")
    for key, kind in _METADATA_TYPES.items():
        if key in data and (not isinstance(data[key], kind) or isinstance(data[key], bool)):
            raise BundleIntegrityError(f"metadata.json: {key} should be a {getattr(kind, '__name__', kind)}")
    for name, info in data["formats"].items():
        if not isinstance(info, dict) or not isinstance(info.get("status"), str):
            raise BundleIntegrityError(f"metadata.json: formats.{name} should be an object with a status")
        if "file" in info and not (isinstance(info["file"], str) and safe_relpath(info["file"])):
            raise BundleIntegrityError(
                f"metadata.json: formats.{name}.file should be a relative path inside the bundle"
            )
    return data


def check_label_map(data: Any) -> dict[str, str]:
    if not isinstance(data, dict) or not data:
        raise BundleIntegrityError("label_map.json: expected a non-empty object of class index -> name")
    for key, value in data.items():
        if not key.isdigit() or not isinstance(value, str) or not value:
            raise BundleIntegrityError(f"label_map.json: entry {key!r}: {value!r} is not index -> name")
    indices = sorted(int(k) for k in data)
    if indices != list(range(len(indices))):
        raise BundleIntegrityError(f"label_map.json: class indices {indices} are not 0..{len(indices) - 1}")
    return data
