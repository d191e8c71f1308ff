"""``show``: one bundle's summary — formats with sizes and status, metrics, validation, provenance.

Reads metadata.json, metrics.json, MANIFEST.json and ``validation/*_validation.json``; loads no model.
"""

from __future__ import annotations

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
    """Per target, the verdict of the latest report on disk (``conv2d_bundle.verdict``), else the summary
    recorded in metadata.json when the bundle was sealed (``source`` says which): its status (passed /
    failed / incomplete), ``result`` in words (``not verified (6 skipped)`` for a pass with skips), counts,
    reasons, and the time and host of the report."""
    from conv2d_bundle.verdict import verdict_of

    out: dict[str, dict[str, Any]] = {}
    recorded = bundle.metadata.get("validation", {})
    for target, v in sorted(recorded.items() if isinstance(recorded, dict) else []):
        if isinstance(v, dict):
            status = "passed" if v.get("passed") is True else "failed"
            skipped = v.get("not_verified", 0)
            out[target] = {
                "status": status,
                "passed": status == "passed",
                "result": f"not verified ({skipped} skipped)" if status == "passed" and skipped else status,
                "errors": v.get("errors", 0),
                "warnings": v.get("warnings", 0),
                "skipped": skipped,
                "reasons": [],
                "finished_at": None,
                "host": None,
                "source": "metadata",
            }
    reports = bundle.path("validation")
    if reports.is_dir() and not reports.is_symlink():
        for path in sorted(reports.glob(f"*{REPORT_SUFFIX}")):
            report = _read_report(path)
            target = path.name[: -len(REPORT_SUFFIX)]
            verdict = verdict_of(report)
            env = (report or {}).get("environment", {})
            out[target] = {
                "status": verdict.status,
                "passed": verdict.passed,
                "result": verdict.describe(),
                "errors": len(verdict.errors),
                "warnings": len((report or {}).get("warnings", []) or []),
                "skipped": verdict.skipped,
                "reasons": list(verdict.reasons),
                "finished_at": (report or {}).get("finished_at"),
                "host": env.get("host") if isinstance(env, dict) else None,
                "source": f"validation/{path.name}",
            }
    return dict(sorted(out.items()))


def _read_report(path: Path) -> dict[str, Any] | None:
    """A report read with the project's JSON reader (size-bounded, shape-checked); None when unreadable."""
    from conv2d_bundle.errors import BundleIntegrityError
    from conv2d_bundle.schema import parse_json

    try:
        report = parse_json(path.read_bytes(), f"validation/{path.name}")
    except (OSError, BundleIntegrityError):
        return None
    return report if isinstance(report, dict) else None


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
