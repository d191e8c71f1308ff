"""The Markdown verdict ``verify`` appends to ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

from pathlib import Path

import pytest

from conv2d_bundle.verify import step_summary
from conv2d_bundle.verify.verdict import verdict_of


def _report(verdict: str, errors: list[str]) -> dict:
    return {
        "verdict": verdict,
        "complete": True,
        "errors": errors,
        "skipped": [],
        "reasons": [],
        "counts": {"passed": 3, "failed": len(errors), "skipped": 0},
    }


def test_appends_a_table_and_the_failures_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = {"onnx": _report("passed", []), "ios": _report("failed", ["test_x: `bad` output"])}
    verdicts = {name: verdict_of(r) for name, r in reports.items()}
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert step_summary.append("3f9a", verdicts, reports) is None
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert step_summary.append("3f9a", verdicts, reports) == target
    text = target.read_text()
    assert text.startswith("earlier step\n### conv2d-bundle verify `3f9a`")
    assert "| onnx | ✅ passed | 3 | 0 | 0 |" in text and "| ios | ❌ failed (1 error) | 3 | 1 | 0 |" in text
    assert "- `test_x: 'bad' output`" in text


def test_the_summary_names_the_content_it_is_about_and_an_unverified_target() -> None:
    from conv2d_bundle.verify.verdict import Verdict

    digest = "sha256:" + "ab" * 32
    reports = {"onnx": {**_report("passed", []), "content_digest": digest}}
    text = step_summary.render("3f9a", {"onnx": Verdict("unverified", False, ("stale report",))}, reports)
    assert f"content `{digest}`" in text
    assert "| onnx | ⚠️ not verified: stale report | 3 | 0 | 0 |" in text
