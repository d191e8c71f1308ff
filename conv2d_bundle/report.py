"""The validation report: a class-based pytest plugin that records each check and writes JSON at the end.

Modelled on pytest's junitxml: record in ``pytest_runtest_logreport``, write in ``pytest_sessionfinish``.
Under pytest-xdist only the controller records (worker reports arrive there), so ``-n 2`` gives the same
report as a serial run. Files are written atomically: a killed verify never leaves a truncated report.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle import atomic
from conv2d_bundle.errors import BundleWarning

REPORT_SCHEMA_VERSION = 1
TARGETS = ("onnx", "ios", "hailo")


def check_id(nodeid: str) -> str:
    """``test_onnx.py::test_parity[confidence-7]``: the file name relative to the checks folder, whatever the cwd."""
    path, sep, rest = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


@dataclass
class CheckRecord:
    id: str
    target: str
    outcome: str = "passed"  # passed | failed | error | skipped
    duration_s: float = 0.0
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

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
    versions = {"python": platform.python_version()}
    for name in ("numpy", "onnx", "onnxruntime", "coremltools", "pytest"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


class ValidationReport:
    """Collects check outcomes and BundleWarnings; writes ``<target>_validation.json`` files."""

    def __init__(
        self, bundle_dir: Path, exp_hash: str, targets: Iterable[str], *, strict: bool, selection: str = ""
    ) -> None:
        self.bundle_dir = bundle_dir
        self.exp_hash = exp_hash
        self.targets = list(targets)
        self.strict = strict
        self.selection = selection  # "-k ..." / "-m ...": only some checks were chosen to run
        self.records: dict[str, CheckRecord] = {}
        self.warnings: dict[str, list[str]] = {}
        self.written: list[Path] = []
        self.summaries: dict[str, dict[str, Any]] = {}

    # -- recording --------------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        target = getattr(report, "conv2d_target", None)
        if target is None:
            return
        cid = check_id(report.nodeid)
        rec = self.records.setdefault(cid, CheckRecord(cid, target))
        rec.duration_s += report.duration
        details = getattr(report, "conv2d_details", None)
        if details:
            rec.details.update(details)
        if report.skipped and rec.outcome == "passed":
            rec.outcome, rec.message = "skipped", _skip_reason(report)
        elif report.failed:
            outcome = "failed" if report.when == "call" else "error"
            if rec.outcome not in ("failed", "error"):
                rec.outcome = outcome
                rec.message = getattr(report, "conv2d_message", "") or _first_line(report.longreprtext)

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str, location: Any) -> None:
        if issubclass(warning_message.category, BundleWarning) and nodeid:
            self.warnings.setdefault(check_id(nodeid), []).append(str(warning_message.message))

    # -- writing ----------------------------------------------------------------------------------
    def build(self, target: str, finished_at: str) -> dict[str, Any]:
        wanted = (
            {"general"} if target == "general" else {"general", *(TARGETS if target == "all" else [target])}
        )
        records = sorted((r for r in self.records.values() if r.target in wanted), key=lambda r: r.id)
        errors = [f"{r.id}: {r.message}" for r in records if r.outcome in ("failed", "error")]
        skipped = [{"id": r.id, "reason": r.message} for r in records if r.outcome == "skipped"]
        warnings = [
            f"{cid}: {msg}"
            for cid in sorted(self.warnings)
            for msg in self.warnings[cid]
            if cid in {r.id for r in records}
        ]
        ran = [r.id for r in records if r.outcome != "skipped"]
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "target": target,
            "exp_hash": self.exp_hash,
            "passed": not errors and bool(ran),
            "errors": errors,
            "warnings": warnings,
            "checks_run": ran,
            "skipped": skipped,
            "counts": {
                "passed": sum(r.outcome == "passed" for r in records),
                "failed": sum(r.outcome in ("failed", "error") for r in records),
                "skipped": len(skipped),
            },
            "checks": [r.as_dict() for r in records],
            "strict_targets": self.strict,
            "partial": bool(self.selection),
            "selection": self.selection,
            "finished_at": finished_at,
            "environment": {
                "versions": runtime_versions(),
                "platform": platform.platform(),
                "machine": platform.machine(),
                "system": platform.system(),
            },
        }

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        out = self.bundle_dir / "validation"
        writable = not out.is_symlink()  # a linked validation/ would let a verify write outside the bundle
        if not writable:
            session.config.issue_config_time_warning(
                pytest.PytestWarning(f"{out} is a symlink: reports not written (the verdict stands)"),
                stacklevel=2,
            )
        for target in ["general", *self.targets]:
            report = self.build(target, finished)
            if not report["checks"]:
                continue  # nothing of this target was selected (-k): keep the last real report
            self.summaries[target] = report
            path = out / f"{target}_validation.json"
            if not writable:
                continue
            try:
                atomic.write_json(path, report)
            except OSError as exc:  # a read-only bundle still gets its verdict, just not on disk
                session.config.issue_config_time_warning(
                    pytest.PytestWarning(f"cannot write {path}: {exc.strerror}"), stacklevel=2
                )
                continue
            self.written.append(path)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for path in self.written:
            terminalreporter.write_line(f"conv2d-bundle report: {path}")


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return _first_line(str(longrepr))


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
