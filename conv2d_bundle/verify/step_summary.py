"""A Markdown verdict for a CI job page: ``conv2d pack verify`` appends it to ``$GITHUB_STEP_SUMMARY`` when
that variable names a file (GitHub Actions sets it for every step). Nothing is written otherwise."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conv2d_bundle.verify.verdict import Verdict

_MARK = {"passed": "✅", "failed": "❌", "incomplete": "⚠️", "unverified": "⚠️"}
_MAX_ERRORS = 10


def render(subject: str, verdicts: Mapping[str, Verdict], reports: Mapping[str, Mapping[str, Any]]) -> str:
    digests = sorted({str(r.get("content_digest") or "unknown") for r in reports.values()})
    lines = [
        f"### conv2d-bundle verify `{subject}`",
        "",
        f"content `{', '.join(digests) or 'unknown'}`",
        "",
        "| target | verdict | passed | failed | not verified |",
        "|---|---|---|---|---|",
    ]
    for name, verdict in verdicts.items():
        counts = reports[name].get("counts") or {}
        lines.append(
            f"| {name} | {_MARK.get(verdict.status, '')} {verdict.describe()} | {counts.get('passed', 0)} "
            f"| {counts.get('failed', 0)} | {counts.get('skipped', 0)} |"
        )
    errors = [e for v in verdicts.values() for e in v.errors]
    if errors:
        lines += ["", "<details><summary>failed checks</summary>", ""]
        lines += ["- `" + e.replace("`", "'") + "`" for e in errors[:_MAX_ERRORS]]
        if len(errors) > _MAX_ERRORS:
            lines.append(f"- ... and {len(errors) - _MAX_ERRORS} more")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n\n"


def append(
    subject: str, verdicts: Mapping[str, Verdict], reports: Mapping[str, Mapping[str, Any]]
) -> Path | None:
    """Append the summary to ``$GITHUB_STEP_SUMMARY``; the path written, or None when it is not set."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as f:
        f.write(render(subject, verdicts, reports))
    return Path(target)
