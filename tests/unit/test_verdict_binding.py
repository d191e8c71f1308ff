"""How an unverified verdict names its reasons and the digests a stale report is about.

Written for survivors of the 2026-12-05 mutation run (tests/README.md): a report's recorded content digest is
untrusted text, so its short form must hold for any text, not only ``sha256:<64 hex>``.
"""

from __future__ import annotations

import pytest

from conv2d_bundle.verify.verdict import Verdict, binding_problem

NOW = "sha256:" + "1a" * 32


def _stale(recorded: str) -> str | None:
    report = {"schema_version": 3, "target": "onnx", "content_digest": recorded}
    return binding_problem(report, target="onnx", content_digest=NOW)


@pytest.mark.parametrize(
    ("recorded", "shown"),
    [
        # an algorithm name not 6 letters long: 12 hex digits still
        ("sha1:" + "ab" * 20, "sha1:abababababab"),
        # no algorithm: the first 19 characters
        ("not-a-digest-but-longer-than-twenty", "not-a-digest-but-lo"),
        # split at the first colon
        ("sha256:abc:" + "d" * 20, "sha256:abc:dddddddd"),
    ],
    ids=["other-algorithm", "no-colon", "two-colons"],
)
def test_a_stale_report_names_any_recorded_digest_in_short(recorded: str, shown: str) -> None:
    assert (
        _stale(recorded)
        == f"stale report: it is about content {shown}, the bundle is now sha256:1a1a1a1a1a1a"
    )


def test_an_unverified_verdict_joins_its_reasons_with_semicolons() -> None:
    v = Verdict("unverified", False, ("stale report", "foreign report"))
    assert v.describe() == "not verified: stale report; foreign report"


@pytest.mark.parametrize("report", [None, [], "passed"])
def test_a_report_that_is_no_mapping_is_unreadable(report: object) -> None:
    assert binding_problem(report, target="onnx", content_digest=NOW) == "unreadable report"
