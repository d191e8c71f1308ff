"""The verdict rules, as pure functions: judge() at session end, verdict_of() for any report read back."""

from __future__ import annotations

from typing import Any

import pytest

from conv2d_bundle.verify.verdict import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TESTS_FAILED,
    Verdict,
    judge,
    verdict_of,
)


def _judge(**kw: Any) -> Verdict:
    args: dict[str, Any] = {
        "outcomes": {"a": "passed", "b": "passed"},
        "errors": [],
        "expected": ["a", "b"],
        "reasons": [],
        "exit_status": EXIT_OK,
    }
    args.update(kw)
    return judge(**args)


def test_complete_run_with_every_check_passed_is_passed() -> None:
    v = _judge()
    assert (v.status, v.passed, v.complete, v.reasons, v.errors) == ("passed", True, True, (), ())
    assert v.counts == {"expected": 2, "passed": 2, "failed": 0, "skipped": 0, "not_run": 0}
    assert v.describe() == "passed"


def test_skips_are_not_verified_but_complete() -> None:
    v = _judge(outcomes={"a": "passed", "b": "skipped"})
    assert v.passed and v.complete and v.skipped == 1
    assert v.describe() == "not verified (1 skipped)"
    assert v.counts["skipped"] == 1 and v.counts["passed"] == 1


def test_a_failure_fails_whatever_else_happened() -> None:
    v = _judge(outcomes={"a": "failed", "b": "passed"}, errors=["a: broke"], exit_status=EXIT_TESTS_FAILED)
    assert v.status == "failed" and not v.passed and v.complete
    assert v.describe() == "failed (1 error)" and v.counts["failed"] == 1
    two = _judge(outcomes={"a": "failed", "b": "error"}, errors=["a: x", "b: y"], exit_status=1)
    assert two.describe() == "failed (2 errors)" and two.counts["failed"] == 2
    assert Verdict("failed", True).describe() == "failed"


def test_a_check_that_did_not_run_makes_it_incomplete() -> None:
    v = _judge(outcomes={"a": "passed"})
    assert v.status == "incomplete" and not v.complete
    assert v.reasons == ("1 of 2 checks did not run",) and v.counts["not_run"] == 1
    assert v.describe() == "incomplete: 1 of 2 checks did not run"
    interrupted = _judge(outcomes={"a": "passed", "b": "not run"}, reasons=["interrupted"], exit_status=2)
    assert interrupted.reasons == ("interrupted",)  # the known reason replaces the generic one


def test_a_crash_is_incomplete_and_named() -> None:
    v = _judge(outcomes={"a": "passed", "b": "crashed"}, exit_status=EXIT_TESTS_FAILED)
    assert v.status == "incomplete" and v.reasons == ("worker crashed: b",)
    assert v.counts["not_run"] == 1 and v.counts["passed"] == 1


def test_never_better_than_pytest_exit_status() -> None:
    v = _judge(exit_status=EXIT_INTERRUPTED)
    assert v.status == "incomplete" and v.reasons == ("pytest exit status 2 (interrupted)",)
    unexplained = _judge(exit_status=EXIT_TESTS_FAILED)
    assert unexplained.reasons == ("pytest exit status 1 (tests failed)",)
    explained = _judge(exit_status=EXIT_TESTS_FAILED, failures_elsewhere=True)
    assert explained.passed  # another target's failure is why pytest exited 1
    odd = _judge(exit_status=9)
    assert odd.reasons == ("pytest exit status 9 (unknown)",)
    assert _judge(exit_status=None).passed


def test_nothing_ran_is_not_a_pass() -> None:
    v = _judge(outcomes={}, expected=[])
    assert v.status == "incomplete" and v.reasons == ("no check ran",)
    skipped_only = _judge(outcomes={"a": "skipped"}, expected=["a"])
    assert skipped_only.reasons == ("no check ran",)


def test_reasons_are_listed_once_in_order() -> None:
    v = _judge(reasons=["interrupted", "collection error: x.py: y", "interrupted"], exit_status=2)
    assert v.reasons == ("interrupted", "collection error: x.py: y")


def _report(**kw: Any) -> dict[str, Any]:
    return {
        "verdict": "passed",
        "complete": True,
        "errors": [],
        "reasons": [],
        "skipped": [],
        "counts": {"passed": 3},
        "pytest_exit_status": 0,
        **kw,
    }


def test_describe_lists_every_reason() -> None:
    assert Verdict("incomplete", False, ("a", "b")).describe() == "incomplete: a; b"
    assert Verdict("incomplete", False).describe() == "incomplete: unknown reason"


def test_verdict_of_a_passed_report() -> None:
    v = verdict_of(_report())
    assert v.passed and v.complete and v.counts == {"passed": 3} and v.skipped == 0
    assert verdict_of(_report(skipped=[{"id": "x"}])).skipped == 1


@pytest.mark.parametrize(
    ("report", "status", "reasons"),
    [
        (_report(errors=["a: b"]), "failed", ()),
        (_report(complete=False), "incomplete", ()),
        (_report(complete="yes"), "incomplete", ()),  # only a real true is complete
        (_report(verdict="failed", errors=["a: b"]), "failed", ()),
        (
            _report(verdict="incomplete", complete=False, reasons=["interrupted"]),
            "incomplete",
            ("interrupted",),
        ),
        (_report(verdict="fine"), "incomplete", ("unknown verdict 'fine'",)),
        (_report(errors=7), "incomplete", ("malformed report: errors is not a list",)),
        (_report(reasons="x"), "incomplete", ("malformed report: reasons is not a list",)),
        (_report(skipped={"a": 1}), "incomplete", ("malformed report: skipped is not a list",)),
        (_report(counts=[1]), "passed", ()),
    ],
)
def test_verdict_of_reports_that_are_not_a_pass(
    report: dict[str, Any], status: str, reasons: tuple[str, ...]
) -> None:
    v = verdict_of(report)
    assert (v.status, v.reasons) == (status, reasons)
    assert v.passed is (status == "passed")


def test_verdict_of_keeps_the_errors() -> None:
    v = verdict_of(_report(errors=["a: broke", 3]))
    assert v.errors == ("a: broke", "3")


def test_verdict_of_a_malformed_report_with_errors_fails() -> None:
    v = verdict_of(_report(errors=["a: b"], skipped=5))
    assert (
        v.status == "failed" and not v.complete and v.reasons == ("malformed report: skipped is not a list",)
    )


def test_verdict_of_no_report() -> None:
    v = verdict_of(None)
    assert (v.status, v.complete, v.reasons) == ("incomplete", False, ("no report was written",))
    assert verdict_of("not a mapping").reasons == ("no report was written",)  # type: ignore[arg-type]


def test_verdict_of_against_a_worse_exit_status() -> None:
    v = verdict_of(_report(), EXIT_INTERRUPTED)
    assert v.status == "incomplete" and not v.complete
    assert v.reasons == ("pytest exit status 2 (interrupted)",)
    assert verdict_of(_report(), 7).reasons == ("pytest exit status 7 (unknown)",)
    # the status the report was judged against at session end is not held against it a second time
    assert verdict_of(_report(pytest_exit_status=1), 1).passed
    assert verdict_of(_report(), 0).passed and verdict_of(_report(), None).passed
    assert verdict_of(_report(errors=["a: b"]), 2).status == "failed"  # a failure stays a failure


@pytest.mark.parametrize(
    ("report", "status", "complete", "reasons"),
    [
        ({"passed": True, "errors": []}, "passed", True, ()),
        (
            {"passed": True, "errors": [], "partial": True, "selection": "-k x"},
            "incomplete",
            False,
            ("selected: -k x",),
        ),
        ({"passed": True, "errors": [], "partial": True}, "incomplete", False, ("selected: some checks",)),
        ({"passed": False, "errors": []}, "failed", True, ()),
        ({"passed": "yes", "errors": []}, "failed", True, ()),
        ({"passed": True, "errors": ["a: b"]}, "failed", True, ()),
    ],
)
def test_verdict_of_schema_1_reports(
    report: dict[str, Any], status: str, complete: bool, reasons: tuple[str, ...]
) -> None:
    v = verdict_of(report)
    assert (v.status, v.complete, v.reasons) == (status, complete, reasons)


# -- a report read back counts only for the bytes it verified ------------------------------------------

DIGEST = "sha256:" + "1a" * 32


def _bound_report(**changes: Any) -> dict[str, Any]:
    from conv2d_bundle.verify.verdict import REPORT_SCHEMA_VERSION

    report: dict[str, Any] = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "target": "onnx",
        "exp_hash": "7bda82d7df9d",
        "content_digest": DIGEST,
        "verdict": "passed",
        "complete": True,
        "reasons": [],
        "errors": [],
        "skipped": [],
        "pytest_exit_status": 0,
    }
    report.update(changes)
    return {k: v for k, v in report.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"content_digest": "sha256:" + "2b" * 32},
            "stale report: it is about content sha256:2b2b2b2b2b2b, the bundle is now sha256:1a1a1a1a1a1a",
        ),
        ({"content_digest": None}, "the report records no content digest"),
        ({"content_digest": ""}, "the report records no content digest"),
        ({"exp_hash": "000000000000"}, "foreign report: it is for bundle '000000000000', not 7bda82d7df9d"),
        ({"target": "ios"}, "the report is for target 'ios', not 'onnx'"),
        ({"schema_version": 2}, "report schema 2 is not the current 3: verify again"),
        ({"schema_version": None}, "report schema None is not the current 3: verify again"),
    ],
)
def test_a_report_about_other_bytes_or_another_target_is_unverified(changes: dict, reason: str) -> None:
    from conv2d_bundle.verify.verdict import bound_verdict

    v = bound_verdict(_bound_report(**changes), target="onnx", content_digest=DIGEST, exp_hash="7bda82d7df9d")
    assert (v.status, v.passed, v.complete, v.reasons) == ("unverified", False, False, (reason,))
    assert v.describe() == f"not verified: {reason}"


@pytest.mark.parametrize("report", [None, [], "passed", {"target": "onnx", "passed": True}])
def test_a_bare_or_unreadable_report_is_unverified(report: Any) -> None:
    from conv2d_bundle.verify.verdict import bound_verdict

    v = bound_verdict(report, target="onnx", content_digest=DIGEST)
    assert v.status == "unverified" and not v.passed


def test_a_report_bound_to_these_bytes_has_its_own_verdict() -> None:
    from conv2d_bundle.verify.verdict import binding_problem, bound_verdict

    assert (
        binding_problem(_bound_report(), target="onnx", content_digest=DIGEST, exp_hash="7bda82d7df9d")
        is None
    )
    assert bound_verdict(_bound_report(), target="onnx", content_digest=DIGEST).status == "passed"
    assert (
        bound_verdict(_bound_report(), target="onnx", content_digest=DIGEST, exit_code=1).status
        == "incomplete"
    )
    failed = _bound_report(verdict="failed", errors=["x: broke"])
    assert bound_verdict(failed, target="onnx", content_digest=DIGEST).status == "failed"
    # without an exp_hash to compare, any experiment's report for these bytes counts (the bytes decide)
    assert bound_verdict(_bound_report(exp_hash="000000000000"), target="onnx", content_digest=DIGEST).passed


def test_an_unverified_verdict_without_reasons_still_says_why_not() -> None:
    assert Verdict("unverified", False).describe() == "not verified: no usable report"
