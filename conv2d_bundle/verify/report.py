"""The validation report: a class-based pytest plugin that records each check and writes JSON at the end.

Modelled on pytest's junitxml: record in ``pytest_runtest_logreport``, write in ``pytest_sessionfinish``.
Under pytest-xdist only the controller records (worker reports arrive there, crash reports included), so
``-n 2`` gives the same report as a serial run. A check starts as *not run* and earns *passed* only when its
teardown is reported with nothing failed; the verdict (``conv2d_bundle.verify.verdict``) also weighs what should
have run but did not, interrupts, collection errors and pytest's exit status. Files are written
atomically: a killed verify never leaves a truncated report.
"""

from __future__ import annotations

import math
import platform
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.bundle import atomic
from conv2d_bundle.bundle.reference import describe_degenerate
from conv2d_bundle.errors import BundleWarning
from conv2d_bundle.parity.tolerance import policy_digest
from conv2d_bundle.verify.plan import (
    Expected,
    Wanted,
    check_id,
    collect_expected,
    module_of,
    module_paths,
    target_of_id,
    whole_modules,
)
from conv2d_bundle.verify.verdict import EXIT_OK, FINISHED, RAN, REPORT_SCHEMA_VERSION, judge, verdict_of

PHASES = ("setup", "call", "teardown")
#: module -> distribution, for every runtime a check may run a model with (and the harness itself)
VERSIONED_MODULES = {
    "numpy": "numpy",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "coremltools": "coremltools",
    "torch": "torch",
    "executorch": "executorch",
    "hailo_platform": "hailort",
    "hailo_sdk_client": "hailo_dataflow_compiler",
    "pytest": "pytest",
    "hypothesis": "hypothesis",
}


@dataclass
class CheckRecord:
    id: str
    target: str
    phases: dict[str, str] = field(default_factory=dict)  # setup/call/teardown/crash -> pytest's outcome
    duration_s: float = 0.0
    failure: str = ""  # the first failure's message (call, setup or teardown), or the crash
    skip_reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.failure if self.outcome in ("failed", "error", "crashed") else self.skip_reason

    @property
    def outcome(self) -> str:
        """passed | failed | error | skipped | crashed | not run: earned from the phases, never assumed."""
        if self.phases.get("crash"):
            return "crashed"
        if self.phases.get("call") == "failed":
            return "failed"
        if "failed" in self.phases.values():
            return "error"  # setup or teardown failed
        if "teardown" not in self.phases:
            return "not run"  # interrupted, or never reached its end
        if "skipped" in self.phases.values():
            return "skipped"
        return "passed" if self.phases.get("call") == "passed" else "not run"

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "target": self.target,
            "outcome": self.outcome,
            "duration_s": round(self.duration_s, 6),
            "message": self.message,
        }
        if self.details:
            d["details"] = _json_safe(self.details)
        return d


def _json_safe(value: Any) -> Any:
    """Figures a check recorded, made JSON: non-finite floats as strings, unknown objects as their repr."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return repr(value)


def runtime_versions() -> dict[str, str]:
    """The versions of the runtimes this process has imported (what actually ran the checks): a module's
    ``__version__``, else its distribution's (executorch has none of its own)."""
    versions = {"python": platform.python_version()}
    for name, dist in VERSIONED_MODULES.items():
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = str(getattr(module, "__version__", None) or _dist_version(dist))
    return versions


def _dist_version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # a fake or vendored module: it ran, its version is unknown
        return "unknown"


class ValidationReport:
    """Collects check outcomes and BundleWarnings; writes ``<target>_validation.json`` files."""

    def __init__(
        self,
        bundle_dir: Path,
        exp_hash: str,
        targets: Iterable[str],
        *,
        strict: bool,
        wanted: Wanted,
        selection: str = "",
        tolerance_policy: Mapping[str, Any] | None = None,
        content_digest: str | None = None,
        profile: str = "default",
        deviations: Iterable[str] = (),
        golden_coverage: Mapping[str, Any] | None = None,
    ) -> None:
        self.bundle_dir = bundle_dir
        self.exp_hash = exp_hash
        self.content_digest = content_digest  # what the verdict is about: the bytes MANIFEST.json lists
        self.profile = profile
        self.deviations = list(deviations)  # collection settings that differ from pytest's defaults
        # what the golden set exercises (metadata.json model.reference.coverage): in every report, and a warning
        # in each when agreement on it proves little
        self.golden_coverage = dict(golden_coverage) if isinstance(golden_coverage, Mapping) else None
        self.coverage_warning = describe_degenerate(self.golden_coverage) if self.golden_coverage else None
        self.targets = list(targets)
        self.all_targets = [t for t in self.targets if t != "all"]  # what "all" covers in this session
        self.strict = strict
        self.wanted = wanted
        self.selection = selection  # file / node id / -k / -m / --deselect / --lf: only some checks chosen
        self.tolerance_policy = dict(tolerance_policy or {})
        self.records: dict[str, CheckRecord] = {}
        self.warnings: dict[str, list[str]] = {}
        self.collection_errors: dict[str, str] = {}
        self.interrupted = ""
        self.seen: dict[Path, list[pytest.Item]] = {}  # modules this run collected whole (serial runs)
        # modules of the run skipped whole: their path (or name) -> (file name, reason)
        self.module_skips: dict[str, tuple[str, str]] = {}
        self.rootpath: Path | None = None
        self.versions: dict[str, str] = {}
        self.written: list[Path] = []
        self.summaries: dict[str, dict[str, Any]] = {}

    # -- recording --------------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        target = getattr(report, "conv2d_target", None)
        crash = report.when not in PHASES  # xdist's report for an item whose worker died ("???")
        if target is None and crash:
            target = target_of_id(check_id(report.nodeid))  # crash reports carry no attributes of ours
        if target is None:
            return
        cid = check_id(report.nodeid)
        rec = self.records.setdefault(cid, CheckRecord(cid, target))
        rec.duration_s += report.duration
        rec.phases["crash" if crash else report.when] = report.outcome
        self.versions.update(getattr(report, "conv2d_versions", None) or {})
        details = getattr(report, "conv2d_details", None)
        if details:
            rec.details.update(details)
        if crash:
            rec.failure = f"worker crashed: {report.nodeid}"
        elif report.failed and not rec.failure:
            rec.failure = getattr(report, "conv2d_message", "") or _first_line(report.longreprtext)
        elif report.skipped:
            rec.skip_reason = _skip_reason(report)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.rootpath = session.config.rootpath  # node ids are relative to it

    @pytest.hookimpl(tryfirst=True)  # before -k/-m/--deselect: the items as collected
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        self.seen = whole_modules(config, items)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            where = module_of(report.nodeid) or report.nodeid or "session"
            self.collection_errors.setdefault(where, _collect_error_line(report))
        elif report.skipped:  # a module of the run skipped as a whole (importorskip)
            name, where = _skipped_module(report, self.rootpath)
            if name:
                self.module_skips.setdefault(where or name, (name, _skip_reason(report)))

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        if isinstance(excinfo.value, KeyboardInterrupt):
            self.interrupted = "interrupted"
        else:  # pytest.exit(): a plugin or check ended the session early
            self.interrupted = f"interrupted: {_first_line(str(excinfo.value)) or 'pytest.exit()'}"

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str, location: Any) -> None:
        if issubclass(warning_message.category, BundleWarning) and nodeid:
            self.warnings.setdefault(check_id(nodeid), []).append(str(warning_message.message))

    # -- judging and writing ----------------------------------------------------------------------
    def _add_module_skips(self, expected: Expected) -> bool:
        """A module skipped as a whole is one not-verified record per target it serves (a failure with
        --strict-targets). A module of the run that is not one of the package's (a user's own check module
        given on the command line) may serve any target of the run: it counts for each of them."""
        ours = {str(p.resolve()) for paths in module_paths(self.all_targets).values() for p in paths}
        for where, (name, reason) in self.module_skips.items():
            if where in ours or (name in expected.owners and where == name):
                continue  # one of the package's modules: collect_expected has it
            cid = name if name not in expected.owners else where  # a user's test_onnx.py is not ours
            expected.skipped.setdefault(cid, reason)
            expected.owners[cid] = list(self.all_targets) or ["general"]
        converted = False
        for name, reason in sorted(expected.skipped.items()):
            owners = expected.owners.get(name, ["general"])
            for target in owners:
                cid = name if len(owners) == 1 else f"{name}[{target}]"
                rec = self.records.setdefault(cid, CheckRecord(cid, target))
                rec.phases = {"setup": "skipped", "teardown": "passed"}
                rec.skip_reason = reason
                if self.strict:
                    rec.phases["setup"] = "failed"
                    rec.failure = f"not verified (--strict-targets): module skipped: {reason}"
                    converted = True
        return converted

    def build(
        self, target: str, finished_at: str, expected: Expected, exit_status: int | None
    ) -> dict[str, Any]:
        wanted = {"general", *(self.all_targets if target == "all" else [target])}
        records = sorted((r for r in self.records.values() if r.target in wanted), key=lambda r: r.id)
        module_skips = {r.id for r in records if r.id.split("[", 1)[0] in expected.skipped}
        expected_ids = sorted({i for t in wanted for i in expected.ids.get(t, [])} | module_skips)
        outcomes = {r.id: r.outcome for r in records}
        errors = [f"{r.id}: {r.message}" for r in records if r.outcome in ("failed", "error")]
        reasons = [self.interrupted] if self.interrupted else []
        reasons += [
            f"collection error: {where}: {msg}" for where, msg in sorted(self.collection_errors.items())
        ]
        reasons += [
            f"collection error: {name}: {msg}"
            for name, msg in sorted(expected.errors.items())
            if set(expected.owners.get(name, [])) & wanted and name not in self.collection_errors
        ]
        finished = [i for i in expected_ids if outcomes.get(i) in FINISHED]
        if len(finished) < len(expected_ids) and not reasons:
            shown = f"({len(finished)} of {len(expected_ids)} checks)"
            if self.deviations:
                reasons.append(
                    f"collection settings differ from pytest's defaults: {'; '.join(self.deviations)} {shown}"
                )
            if self.selection:
                reasons.append(f"selected: {self.selection} {shown}")
        failures_elsewhere = any(r.outcome in ("failed", "error", "crashed") for r in self.records.values())
        verdict = judge(
            outcomes=outcomes,
            errors=errors,
            expected=expected_ids,
            reasons=reasons,
            exit_status=exit_status,
            failures_elsewhere=failures_elsewhere,
        )
        skipped = [{"id": r.id, "reason": r.message} for r in records if r.outcome == "skipped"]
        warnings = [self.coverage_warning] if self.coverage_warning else []
        warnings += [
            f"{cid}: {msg}" for cid in sorted(self.warnings) for msg in self.warnings[cid] if cid in outcomes
        ]
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "target": target,
            "exp_hash": self.exp_hash,
            "verdict": verdict.status,
            "passed": verdict.passed,
            "complete": verdict.complete,
            "reasons": list(verdict.reasons),
            "errors": errors,
            "warnings": warnings,
            "checks_run": [r.id for r in records if r.outcome in RAN],
            "skipped": skipped,
            "not_run": [i for i in expected_ids if outcomes.get(i) not in FINISHED],
            "counts": dict(verdict.counts),
            "checks": [r.as_dict() for r in records],
            "strict_targets": self.strict,
            "partial": bool(self.selection) and not verdict.complete,
            "selection": self.selection,
            "pytest_exit_status": exit_status,
            "tolerance_policy": self.tolerance_policy,
            "tolerance_policy_digest": policy_digest(self.tolerance_policy)
            if self.tolerance_policy
            else None,
            "check_profile": self.profile,
            "golden_coverage": _json_safe(self.golden_coverage),
            "content_digest": self.content_digest,
            "finished_at": finished_at,
            "environment": {
                "versions": {**runtime_versions(), **self.versions},
                "host": socket.gethostname(),
                "platform": platform.platform(),
                "machine": platform.machine(),
                "system": platform.system(),
            },
        }

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes its file: the verdict goes into it
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        expected = collect_expected(session, self.wanted, self.seen)
        if self._add_module_skips(expected) and session.exitstatus == EXIT_OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a strict module-level skip fails the run
        status = int(session.exitstatus)
        for target in ["general", *self.targets]:
            self.summaries[target] = self.build(target, finished, expected, status)
        shrunk = any(r["verdict"] == "incomplete" for r in self.summaries.values()) and self.deviations
        if shrunk and session.exitstatus == EXIT_OK:
            # checks hidden by the collection settings: pytest saw nothing fail, the verdict is incomplete
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self._record_junit_properties(session.config)
        self._write(session.config)

    def _write(self, config: pytest.Config) -> None:
        out = self.bundle_dir / "validation"
        if out.is_symlink():  # a linked validation/ would let a verify write outside the bundle
            config.issue_config_time_warning(
                pytest.PytestWarning(f"{out} is a symlink: reports not written (the verdict stands)"),
                stacklevel=2,
            )
            return
        for target, report in self.summaries.items():
            path = out / f"{target}_validation.json"
            try:  # always written, whatever it says: a run that could not verify replaces a stale pass
                atomic.write_json(path, report)
            except OSError as exc:  # a read-only bundle still gets its verdict, just not on disk
                config.issue_config_time_warning(
                    pytest.PytestWarning(f"cannot write {path}: {exc.strerror}"), stacklevel=2
                )
                continue
            self.written.append(path)

    def _record_junit_properties(self, config: pytest.Config) -> None:
        """exp_hash, target, verdict, completeness and runtime versions as ``<testsuite>`` properties.

        ``record_testsuite_property`` is a fixture and does not work under xdist (pytest issue 7767), while
        the verdict exists only here, on the controller, at session end: so this adds the properties to the
        same junitxml writer that fixture uses, before it writes its file.
        """
        try:
            from _pytest.junitxml import xml_key  # the key record_testsuite_property reads
        except ImportError:  # pragma: no cover - a pytest without junitxml
            return
        xml = config.stash.get(xml_key, None)
        if xml is None:
            return
        xml.add_global_property("conv2d.exp_hash", self.exp_hash)
        xml.add_global_property("conv2d.content_digest", self.content_digest or "unknown")
        xml.add_global_property("conv2d.check_profile", self.profile)
        xml.add_global_property("conv2d.strict_targets", str(self.strict).lower())
        for target, report in self.summaries.items():
            xml.add_global_property(f"conv2d.{target}.verdict", report["verdict"])
            xml.add_global_property(f"conv2d.{target}.result", verdict_of(report).describe())
            xml.add_global_property(f"conv2d.{target}.complete", str(report["complete"]).lower())
            if report["reasons"]:
                xml.add_global_property(f"conv2d.{target}.reasons", "; ".join(report["reasons"]))
        xml.add_global_property("conv2d.targets", ",".join(self.summaries))
        any_report = next(iter(self.summaries.values()), None)
        for name, version in sorted((any_report or {}).get("environment", {}).get("versions", {}).items()):
            xml.add_global_property(f"conv2d.version.{name}", version)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.coverage_warning:
            terminalreporter.write_line(f"conv2d-bundle: {self.coverage_warning}", yellow=True)
        for target, report in self.summaries.items():
            if not report["complete"] and report["verdict"] != "failed":
                terminalreporter.write_line(
                    f"conv2d-bundle {target}: INCOMPLETE ({'; '.join(report['reasons'])})", yellow=True
                )
        for path in self.written:
            terminalreporter.write_line(f"conv2d-bundle report: {path}")


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return _first_line(str(longrepr))


def _skipped_module(report: pytest.CollectReport, rootpath: Path | None) -> tuple[str, str]:
    """(file name, resolved path) of a module skipped while collected; the path is "" where it is not known.
    Its node id names it relative to the rootdir; a module outside the rootdir gets an empty node id, and then
    the skip's location (the module itself, for an ``importorskip`` at its top) names the file."""
    if report.nodeid:
        relpath = report.nodeid.split("::", 1)[0]
        where = str((rootpath / relpath).resolve()) if rootpath is not None else ""
        return module_of(report.nodeid), where
    longrepr = report.longrepr
    path = Path(str(longrepr[0])) if isinstance(longrepr, tuple) and len(longrepr) == 3 else None
    where = str(path.resolve()) if path is not None and path.is_absolute() else ""
    return (path.name if path is not None else ""), where


def _collect_error_line(report: pytest.CollectReport) -> str:
    lines = [ln.strip() for ln in report.longreprtext.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("E ")]  # pytest's "E   ImportError: ..." lines
    return (
        errors[-1].removeprefix("E").strip() if errors else (lines[-1] if lines else "collection failed")
    )[:300]


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
