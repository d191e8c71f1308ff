"""``show``: one bundle's summary — formats with sizes and status, metrics, validation, provenance.

Reads metadata.json, metrics.json, MANIFEST.json and ``validation/*_validation.json``; loads no model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conv2d_bundle.bundle.store import Bundle

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
    """Per target, the verdict of the report on disk, counted only when it is about this bundle's bytes
    (:func:`conv2d_bundle.verify.verdict.bound_verdict`: its content digest, the target its file name says, the
    current schema; no symlinks followed). A report that is not is shown as ``unverified`` with the reason.

    The summary that ``create`` recorded in metadata.json at seal time is the bundle's own claim (whoever
    re-seals a bundle can write it): it is shown, labelled so, as ``unverified``, and never counts as a pass.
    Each entry: ``status`` (passed / failed / incomplete / unverified), ``result`` in words (``not verified
    (6 skipped)`` for a pass with skips), counts, reasons, the report's time and host, and ``source``."""
    from conv2d_bundle.verify.verdict import UNVERIFIED, Verdict, bound_verdict

    digest = bundle.content_digest_or_none()
    resized = _resized_files(bundle) if digest else []
    out: dict[str, dict[str, Any]] = {}
    recorded = bundle.metadata.get("validation", {})
    for target, v in sorted(recorded.items() if isinstance(recorded, dict) else []):
        if isinstance(v, dict):
            claim = "passed" if v.get("passed") is True else "failed"
            verdict = Verdict(
                UNVERIFIED, False, (f"seal-time claim in metadata.json ({claim}), not a report",)
            )
            out[target] = _entry(verdict, None, "metadata.json (the bundle's own claim)")
    reports = bundle.path("validation")
    if reports.is_dir() and not reports.is_symlink():
        for path in sorted(reports.glob(f"*{REPORT_SUFFIX}")):
            target = path.name[: -len(REPORT_SUFFIX)]
            if target == "all":  # a --target all run also writes each target's own report: those are listed
                continue
            report = None if path.is_symlink() else _read_report(path)
            if path.is_symlink():
                verdict = Verdict(UNVERIFIED, False, ("the report is a symlink (not followed)",))
            elif digest is None:
                verdict = Verdict(UNVERIFIED, False, ("MANIFEST.json is unreadable: no content to bind to",))
            elif resized:  # not the bytes MANIFEST.json lists, whatever a report about those says
                shown = ", ".join(resized[:3]) + (f" (+{len(resized) - 3} more)" if len(resized) > 3 else "")
                verdict = Verdict(
                    UNVERIFIED, False, (f"files differ from MANIFEST.json ({shown}): verify again",)
                )
            else:
                verdict = bound_verdict(
                    report, target=target, content_digest=digest, exp_hash=bundle.exp_hash
                )
                lacking = _format_missing(bundle, target) if verdict.passed else None
                if lacking:
                    verdict = Verdict(
                        UNVERIFIED, False, (f"a pass for a format the bundle lacks: {lacking}",)
                    )
            out[target] = _entry(verdict, report, f"validation/{path.name}")
    return dict(sorted(out.items()))


def _resized_files(bundle: Bundle) -> list[str]:
    """Sealed files that are missing or whose size is not the manifest's: a stat each, no hashing (show
    stays cheap; a same-size change is what verify's manifest check is for)."""
    out = []
    for rel, entry in sorted(bundle.manifest.files.items()):
        try:
            size = bundle.path(rel).stat().st_size
        except OSError:
            size = -1
        if size != entry.get("size"):
            out.append(rel)
    return out


def _entry(verdict: Any, report: dict[str, Any] | None, source: str) -> dict[str, Any]:
    counted = report if verdict.status != "unverified" else None  # figures of a report that does not count
    env = (counted or {}).get("environment", {})
    return {
        "status": verdict.status,
        "passed": verdict.passed,
        "result": verdict.describe(),
        "errors": len(verdict.errors),
        "warnings": len((counted or {}).get("warnings", []) or []),
        "skipped": verdict.skipped,
        "reasons": list(verdict.reasons),
        "finished_at": (report or {}).get("finished_at"),
        "host": env.get("host") if isinstance(env, dict) else None,
        "content_digest": (report or {}).get("content_digest"),
        "source": source,
    }


def _format_missing(bundle: Bundle, target: str) -> str | None:
    from conv2d_bundle.errors import BundleError
    from conv2d_bundle.targets import get_target

    if target in ("general", "all"):
        return None
    try:
        return get_target(target).missing(bundle)
    except BundleError:  # a report named for a target this installation does not know
        return f"no target {target!r} is installed here"


def _read_report(path: Path) -> dict[str, Any] | None:
    """A report read with the project's JSON reader (size-bounded, shape-checked); None when unreadable."""
    from conv2d_bundle.bundle.schema import parse_json
    from conv2d_bundle.errors import BundleIntegrityError

    try:
        report = parse_json(path.read_bytes(), f"validation/{path.name}")
    except (OSError, BundleIntegrityError):
        return None
    return report if isinstance(report, dict) else None


def show_bundle(bundle: Bundle, artifacts_dir: Path | None = None) -> dict[str, Any]:
    from conv2d_bundle.lifecycle import retention as lifecycle

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
        "content_digest": bundle.content_digest_or_none(),
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
