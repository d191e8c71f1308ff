"""``show``: one bundle's summary — formats with sizes and status, metrics, validation, provenance.

Reads metadata.json, metrics.json, MANIFEST.json and ``validation/*_validation.json``; loads no model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conv2d_bundle.bundle import Bundle

REPORT_SUFFIX = "_validation.json"


def format_sizes(bundle: Bundle) -> dict[str, int]:
    """Bytes per format (a file, or every file of a package directory), from the manifest; plus ``total``."""
    files = bundle.manifest.files
    sizes: dict[str, int] = {}
    for name, info in sorted(bundle.metadata.get("formats", {}).items()):
        rel = info.get("file") if isinstance(info, dict) else None
        if not isinstance(rel, str):
            continue
        total = sum(
            int(e["size"]) for f, e in files.items() if f == rel or f.startswith(rel.rstrip("/") + "/")
        )
        if total:
            sizes[name] = total
    sizes["total"] = sum(int(e["size"]) for e in files.values())
    return sizes


def validation_status(bundle: Bundle) -> dict[str, dict[str, Any]]:
    """Per target: passed, errors, warnings, skipped and finished_at from the latest report on disk,
    else the summary recorded in metadata.json when the bundle was sealed (``source`` says which)."""
    out: dict[str, dict[str, Any]] = {}
    recorded = bundle.metadata.get("validation", {})
    for target, v in sorted(recorded.items() if isinstance(recorded, dict) else []):
        if isinstance(v, dict):
            out[target] = {
                "passed": bool(v.get("passed")),
                "errors": v.get("errors", 0),
                "warnings": v.get("warnings", 0),
                "finished_at": None,
                "source": "metadata",
            }
    reports = bundle.path("validation")
    if reports.is_dir() and not reports.is_symlink():
        for path in sorted(reports.glob(f"*{REPORT_SUFFIX}")):
            try:
                report = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if not isinstance(report, dict) or "passed" not in report or report.get("partial"):
                continue  # a -k run verified only some checks: it says nothing about the whole target
            target = path.name[: -len(REPORT_SUFFIX)]
            out[target] = {
                "passed": bool(report["passed"]),
                "errors": len(report.get("errors", [])),
                "warnings": len(report.get("warnings", [])),
                "skipped": len(report.get("skipped", [])),
                "finished_at": report.get("finished_at"),
                "source": f"validation/{path.name}",
            }
    return dict(sorted(out.items()))


def show_bundle(bundle: Bundle, artifacts_dir: Path | None = None) -> dict[str, Any]:
    from conv2d_bundle import lifecycle

    meta = bundle.metadata
    sizes = format_sizes(bundle)
    formats = {}
    for name, info in sorted(meta.get("formats", {}).items()):
        info = info if isinstance(info, dict) else {}
        formats[name] = {
            "status": info.get("status"),
            "file": info.get("file"),
            "size_bytes": sizes.get(name),
            "reason": info.get("reason"),
        }
    art = Path(artifacts_dir) if artifacts_dir is not None else bundle.bundle_dir.parent
    return {
        "exp_hash": bundle.exp_hash,
        "exp_name": bundle.exp_name,
        "created_at": bundle.created_at,
        "bundle_dir": str(bundle.bundle_dir),
        "provenance": {
            "commit_sha": meta.get("commit_sha"),
            "system_version": meta.get("system_version"),
            "created_by": meta.get("created_by"),
        },
        "model": {
            k: v
            for k, v in meta.get("model", {}).items()
            if k in ("architecture", "parameters", "input_shape")
        },
        "formats": formats,
        "size_bytes": sizes["total"],
        "metrics": dict(bundle.metrics),
        "validation": validation_status(bundle),
        "pinned": bundle.exp_hash in lifecycle.pinned(art),
        "deployments": [d for d in lifecycle.deployments(art) if d.get("exp_hash") == bundle.exp_hash],
    }
