"""The verdict: one function turns a validation report into passed / failed / incomplete.

Every path that says whether a bundle passed (``pytest checks``' report, ``conv2d pack verify``, deploy,
``BundleValidator``, the seal-time checks of ``create``, ``show``) asks :func:`verdict_of`. The rules:

- A target's report is **complete** only when every check that should run for that target on this bundle
  (the set collected before any selection) ran to its end (its teardown was reported).
- It is **passed** only when complete, at least one check ran, and no check failed or errored in any phase.
- Otherwise it is **failed** (a check failed) or **incomplete** (nothing failed, but something did not run:
  ``interrupted``, ``worker crashed: <id>``, ``collection error: <file>: <message>``,
  ``selected: <how> (<n> of <m> checks)``), with the reasons.
- A verdict is never more favourable than pytest's own exit status.

Skipped checks are *not verified*: a passed report with skips is shown as "not verified (n skipped)".
Nothing here imports pytest: a report read back from JSON on any host is judged the same way.

A report is about *bytes*: it records the bundle's content digest (``sha256`` of its canonical MANIFEST.json,
:attr:`conv2d_bundle.bundle.manifest.BundleManifest.content_digest`). A report read back from disk or from a
registry counts only through :func:`bound_verdict`: for the bundle's current content digest, the target its
file name says and the current report schema. Anything else is **unverified** (stale, foreign, unreadable),
with the reason: never a pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PASSED, FAILED, INCOMPLETE = "passed", "failed", "incomplete"
#: a report that is not about this bundle's bytes, this target or this schema: it says nothing
UNVERIFIED = "unverified"
#: the report format: 3 added content_digest, check_profile and the tolerance policy's digest
REPORT_SCHEMA_VERSION = 3
#: the outcomes of a check that ran to its end (the others: "crashed", "not run")
FINISHED = ("passed", "failed", "error", "skipped")
RAN = ("passed", "failed", "error")
#: pytest's exit codes (``pytest.ExitCode``), named here so that this module imports no pytest
EXIT_OK, EXIT_TESTS_FAILED, EXIT_INTERRUPTED, EXIT_INTERNAL_ERROR, EXIT_USAGE, EXIT_NO_TESTS = range(6)
_EXIT_MEANING = {
    EXIT_TESTS_FAILED: "tests failed",
    EXIT_INTERRUPTED: "interrupted",
    EXIT_INTERNAL_ERROR: "internal error",
    EXIT_USAGE: "usage error",
    EXIT_NO_TESTS: "no tests collected",
}


@dataclass(frozen=True)
class Verdict:
    status: str  # passed | failed | incomplete | unverified (a report not about these bytes: bound_verdict)
    complete: bool
    reasons: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    skipped: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def describe(self) -> str:
        """One phrase: ``passed``, ``not verified (6 skipped)``, ``failed (2 errors)``, ``incomplete: ...``."""
        if self.status == PASSED:
            return f"not verified ({self.skipped} skipped)" if self.skipped else PASSED
        if self.status == FAILED:
            n = len(self.errors)
            return f"failed ({n} error{'s' if n != 1 else ''})" if n else FAILED
        if self.status == UNVERIFIED:
            return f"not verified: {'; '.join(self.reasons) or 'no usable report'}"
        return f"incomplete: {'; '.join(self.reasons) or 'unknown reason'}"


def judge(
    *,
    outcomes: Mapping[str, str],
    errors: list[str],
    expected: list[str],
    reasons: list[str],
    exit_status: int | None,
    failures_elsewhere: bool = False,
) -> Verdict:
    """The verdict of one target from what the report plugin recorded.

    ``outcomes``: check id -> passed | failed | error | skipped | crashed | not run (each check of the run);
    ``expected``: the ids that should have run; ``reasons``: why the run as a whole is incomplete (interrupt,
    collection error); ``failures_elsewhere``: another target's check failed or crashed, which explains a
    pytest exit status of 1 for a report whose own checks all passed.
    """
    why = list(reasons)
    crashed = sorted(i for i, o in outcomes.items() if o == "crashed")
    why += [f"worker crashed: {i}" for i in crashed]
    finished = {i for i, o in outcomes.items() if o in FINISHED}
    missing = [i for i in expected if i not in finished and i not in crashed]
    if missing and not why:
        why.append(f"{len(missing)} of {len(expected)} checks did not run")
    ran = [i for i, o in outcomes.items() if o in RAN]
    explained = why or (exit_status == EXIT_TESTS_FAILED and (errors or failures_elsewhere))
    if exit_status not in (None, EXIT_OK) and not explained:
        meaning = _EXIT_MEANING.get(exit_status, "unknown")
        why.append(f"pytest exit status {exit_status} ({meaning})")
    if not ran and not why:
        why.append("no check ran")
    complete = not why
    status = FAILED if errors else (PASSED if complete else INCOMPLETE)
    counts = {
        "expected": len(expected),
        "passed": sum(o == "passed" for o in outcomes.values()),
        "failed": sum(o in ("failed", "error") for o in outcomes.values()),
        "skipped": sum(o == "skipped" for o in outcomes.values()),
        "not_run": len(missing) + len(crashed),
    }
    return Verdict(status, complete, tuple(dict.fromkeys(why)), tuple(errors), counts["skipped"], counts)


def verdict_of(report: Mapping[str, Any] | None, exit_code: int | None = None) -> Verdict:
    """The verdict a report states, never more favourable than ``exit_code`` (pytest's, when known).

    Reads reports of every schema version: version 1 (before verdicts) had only ``passed`` and ``partial``,
    so its passes count as complete only when not partial.
    """
    if not isinstance(report, Mapping):
        return Verdict(INCOMPLETE, False, ("no report was written",))
    malformed = [
        f"malformed report: {k} is not a list"
        for k in ("errors", "skipped", "reasons")
        if not _is_list(report.get(k))
    ]
    errors = tuple(str(e) for e in _list(report.get("errors")))
    skipped = len(_list(report.get("skipped")))
    raw_counts = report.get("counts")
    counts = {str(k): v for k, v in raw_counts.items()} if isinstance(raw_counts, Mapping) else {}
    if "verdict" in report:
        status = str(report["verdict"])
        reasons = tuple(str(r) for r in _list(report.get("reasons")))
        complete = report.get("complete") is True
    else:  # schema 1
        partial = bool(report.get("partial"))
        complete = not partial
        reasons = (f"selected: {report.get('selection') or 'some checks'}",) if partial else ()
        status = FAILED if errors or report.get("passed") is not True else PASSED  # partial: see below
    if malformed:
        status, complete, reasons = (FAILED if errors else INCOMPLETE), False, (*reasons, *malformed)
    if status not in (PASSED, FAILED, INCOMPLETE):
        status, reasons = INCOMPLETE, (*reasons, f"unknown verdict {status!r}")
    if status == PASSED and (errors or not complete):  # a report that contradicts itself is not a pass
        status = FAILED if errors else INCOMPLETE
    judged = report.get("pytest_exit_status")  # the status the report was judged against at session end
    if exit_code not in (None, EXIT_OK, judged) and status == PASSED:
        meaning = _EXIT_MEANING.get(exit_code, "unknown")
        status, complete = INCOMPLETE, False
        reasons = (*reasons, f"pytest exit status {exit_code} ({meaning})")
    return Verdict(status, complete, reasons, errors, skipped, counts)


def binding_problem(
    report: Any, *, target: str, content_digest: str, exp_hash: str | None = None
) -> str | None:
    """Why ``report`` is not a report about this bundle's bytes for ``target`` (None when it is): unreadable,
    an older schema, another target, another experiment, no content digest, or other content (stale)."""
    if not isinstance(report, Mapping):
        return "unreadable report"
    schema = report.get("schema_version")
    if schema != REPORT_SCHEMA_VERSION:
        return f"report schema {schema!r} is not the current {REPORT_SCHEMA_VERSION}: verify again"
    if report.get("target") != target:
        return f"the report is for target {report.get('target')!r}, not {target!r}"
    if exp_hash is not None and report.get("exp_hash") != exp_hash:
        return f"foreign report: it is for bundle {report.get('exp_hash')!r}, not {exp_hash}"
    recorded = report.get("content_digest")
    if not isinstance(recorded, str) or not recorded:
        return "the report records no content digest"
    if recorded != content_digest:
        return f"stale report: it is about content {_short(recorded)}, the bundle is now {_short(content_digest)}"
    return None


def bound_verdict(
    report: Any,
    *,
    target: str,
    content_digest: str,
    exp_hash: str | None = None,
    exit_code: int | None = None,
) -> Verdict:
    """The verdict of a report read back from somewhere, for the bundle whose content digest is
    ``content_digest``: :func:`verdict_of` when the report is bound to it, else :data:`UNVERIFIED` with why."""
    problem = binding_problem(report, target=target, content_digest=content_digest, exp_hash=exp_hash)
    if problem is not None:
        return Verdict(UNVERIFIED, False, (problem,))
    return verdict_of(report, exit_code)


def _short(digest: str) -> str:
    """``sha256:1a2b3c4d5e6f``: enough of a digest to tell two apart in one line."""
    algorithm, sep, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}" if sep else digest[:19]


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _is_list(value: Any) -> bool:
    """A report read from disk is untrusted: a field of the wrong type makes it malformed, never a pass."""
    return value is None or isinstance(value, list)
