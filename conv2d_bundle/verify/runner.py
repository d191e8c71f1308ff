"""Run the bundle checks in-process and read back their report: ``BundleValidator`` and ``conv2d pack verify``.

There is one implementation of every check (``conv2d_bundle/checks``); this module only drives pytest
over them and reads the JSON the report plugin wrote, so a library user, the CLI and ``pytest checks``
see the same verdict.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.errors import BundleError
from conv2d_bundle.verify.plan import CHECKS_DIR
from conv2d_bundle.verify.verdict import Verdict, bound_verdict, verdict_of

log = logging.getLogger(__name__)
ADDOPTS_ENV = "PYTEST_ADDOPTS"
AUTOLOAD_ENV = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
_XDIST_ARG = re.compile(r"-n(\d+|auto|logical)|--numprocesses(=.*)?|--dist(=.*)?")
_INTERACTIVE_PLUGINS = ("debugging", "doctest", "pastebin", "setuponly", "setupplan", "stepwise")


@dataclass
class ValidationResult:
    """The result of validating a bundle for one target, filled from a ``<target>_validation.json`` report and its verdict."""

    passed: bool
    errors: list[str]
    warnings: list[str]
    checks_run: list[str]
    target: str | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    report_path: Path | None = None
    verdict: str = "incomplete"  # passed | failed | incomplete (conv2d_bundle.verify.verdict)
    complete: bool = False
    reasons: list[str] = field(default_factory=list)

    def add_error(self, message: str) -> None:
        self.errors.append(message)
        self.passed = False
        self.verdict = "failed"

    def add_warning(self, message: str) -> None:
        self.warnings.append(message)

    @classmethod
    def from_report(
        cls,
        report: dict[str, Any],
        path: Path | None = None,
        exit_code: int | None = None,
        content_digest: str | None = None,
        target: str | None = None,
    ) -> ValidationResult:
        """The result a report states; with ``content_digest``, only if the report is about those bytes and
        the ``target`` asked for."""
        verdict = (
            verdict_of(report, exit_code)
            if content_digest is None
            else bound_verdict(
                report,
                target=target or str(report.get("target")),
                content_digest=content_digest,
                exit_code=exit_code,
            )
        )
        return cls(
            passed=verdict.passed,
            errors=list(report["errors"]),
            warnings=list(report["warnings"]),
            checks_run=list(report["checks_run"]),
            target=report["target"],
            skipped=list(report.get("skipped", [])),
            report_path=path,
            verdict=verdict.status,
            complete=verdict.complete,
            reasons=list(verdict.reasons),
        )


@dataclass(frozen=True)
class CheckRun:
    exit_code: int
    reports: dict[str, dict[str, Any]]
    output: str

    @property
    def interrupted(self) -> bool:
        """The run was stopped by Ctrl-C (pytest catches it and reports; callers should stop too)."""
        return any("interrupted" in r.get("reasons", []) for r in self.reports.values())

    def verdict(self, target: str, content_digest: str | None = None) -> Verdict:
        """The target's verdict: its report's, never more favourable than pytest's exit status; with
        ``content_digest``, counted only if the report is about those bytes (``bound_verdict``)."""
        if content_digest is None:
            return verdict_of(self.reports.get(target), self.exit_code)
        return bound_verdict(
            self.reports.get(target), target=target, content_digest=content_digest, exit_code=self.exit_code
        )


def pytest_args(
    bundle_dir: Path,
    target: str,
    *,
    expect_hash: str | None = None,
    profile: str = "default",
    extra: Sequence[str] = (),
) -> list[str]:
    args = [  # the plugin's namespaced option names: the short ones may belong to another plugin
        str(CHECKS_DIR),
        "--conv2d-bundle",
        str(bundle_dir),
        "--conv2d-target",
        target,
        "--conv2d-check-profile",
        profile,
        "-p",
        "no:cacheprovider",
        # the run loads no plugin by entry point (``run_pytest`` sets PYTEST_DISABLE_PLUGIN_AUTOLOAD): only ours,
        # named here, and xdist when ``-n`` asks for it. A plugin installed in the environment cannot change
        # what the checks do (PYTEST_PLUGINS, an explicit opt-in, is still honoured), and none costs start-up:
        # hypothesis's imported all of hypothesis (~0.5 s) for no check (``@given`` inside a check body needs no
        # plugin), hydra's hydra and omegaconf (~0.7 s of CPU, with the executorch extra), anyio's looked for
        # async backends (0.1-0.4 s); pytest also stops rewriting the assertions of every plugin's distribution
        "-p",
        "conv2d_bundle",
        # and not pytest's own plugins for interactive runs: --pdb (which imports pdb and readline, ~15 ms),
        # doctests, pastebin, --setup-only/--setup-plan, --stepwise (needs the cache, off above). unittest and
        # legacypath stay: another package's target checks may be TestCase classes or ask for ``tmpdir``
        *(arg for name in _INTERACTIVE_PLUGINS for arg in ("-p", f"no:{name}")),
        "--rootdir",
        str(CHECKS_DIR.parent),  # the package: the targets' check modules sit under it too
        # no configuration file: not the working directory's (which may be the bundle's own), not a parent's
        "-c",
        os.devnull,
        "-o",
        "addopts=",
        "-o",
        "testpaths=",
        "-q",
        "--no-header",
    ]
    if expect_hash:
        args += ["--conv2d-expect-hash", expect_hash]
    if any(a == "-n" or _XDIST_ARG.fullmatch(a) for a in extra):
        args += ["-p", "xdist"]  # not autoloaded: named where workers are asked for
    return [*args, *extra]


def run_pytest(
    bundle_dir: Path,
    target: str,
    *,
    expect_hash: str | None = None,
    profile: str = "default",
    extra: Sequence[str] = (),
    echo: bool = False,
) -> CheckRun:
    """``pytest <checks> --bundle DIR --target T`` in this process; the reports come back from disk."""
    args = pytest_args(bundle_dir.absolute(), target, expect_hash=expect_hash, profile=profile, extra=extra)
    buf = io.StringIO()
    sink = _ReportSink()
    redirect = contextlib.nullcontext() if echo else contextlib.redirect_stdout(buf)
    # started from the package's directory, not the caller's (which may be the bundle: pytest would read its
    # conftest.py there); every path in ``args`` is absolute
    if os.environ.get(ADDOPTS_ENV):
        log.info("%s=%r is not applied to the bundle checks", ADDOPTS_ENV, os.environ[ADDOPTS_ENV])
    # the verifier's own options only: PYTEST_ADDOPTS (``-o python_functions=...``, ``-p no:...``) is set aside,
    # and no plugin is loaded by entry point (``pytest_args``)
    environment = {ADDOPTS_ENV: None, AUTOLOAD_ENV: "1"}
    with redirect, _env(environment), contextlib.chdir(CHECKS_DIR.parent):
        code = int(pytest.main(args, plugins=[sink]))
    log.debug("pytest %s -> %s\n%s", " ".join(args), code, buf.getvalue())
    return CheckRun(code, sink.reports, buf.getvalue())


@contextlib.contextmanager
def _env(settings: dict[str, str | None]) -> Iterator[None]:
    """The environment the run sees: each name set to its value, or unset for None; put back as it was after.
    xdist's workers start inside the run and inherit it."""
    saved = {name: os.environ.get(name) for name in settings}
    for name, value in settings.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _ReportSink:
    """Takes the reports from the report plugin at session end: the verdict does not depend on being able
    to write ``validation/`` (a bundle on a device may be read-only)."""

    def __init__(self) -> None:
        self.reports: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        report = session.config.pluginmanager.get_plugin("conv2d_bundle_report")
        if report is not None:
            self.reports = dict(report.summaries)


def run_checks(
    bundle_dir: Path, targets: Sequence[str], *, expect_hash: str | None = None, profile: str = "default"
) -> CheckRun:
    """Run the general checks plus each target's in one pytest session (judge with ``CheckRun.verdict``)."""
    unique = sorted(set(targets) - {"general"})
    target = ",".join(unique) or "general"  # only these: a kit-only Hailo format is not checked at seal time
    run = run_pytest(bundle_dir, target, expect_hash=expect_hash, profile=profile)
    if run.interrupted:
        raise KeyboardInterrupt  # pytest caught the Ctrl-C to write its reports; the caller is interrupted too
    missing = [t for t in ["general", *unique] if t not in run.reports]
    if missing:
        raise BundleError(
            f"the checks could not run (pytest exit {run.exit_code}), no report for {missing}: "
            f"{run.output.strip()[-500:]}"
        )
    return run


class BundleValidator:
    """Validate bundles from Python. It runs the same pytest checks as ``pytest checks`` and ``conv2d pack verify``."""

    def __init__(self, profile: str = "default") -> None:
        self.profile = profile

    def validate(self, bundle: Any) -> ValidationResult:
        return self.validate_for_target(bundle, "general")

    def validate_for_target(self, bundle: Any, target: str) -> ValidationResult:
        from conv2d_bundle.targets import parse_target_list

        if len(parse_target_list(target)) != 1:  # BundleError for an unknown name
            raise BundleError(f"validate_for_target takes one target, got {target!r}")
        bundle_dir = Path(getattr(bundle, "bundle_dir", bundle))
        run = run_pytest(bundle_dir, target, profile=self.profile)
        report = run.reports.get(target)
        if report is None:
            raise BundleError(f"the checks wrote no {target} report (pytest exit {run.exit_code})")
        path = bundle_dir / "validation" / f"{target}_validation.json"
        from conv2d_bundle.bundle.store import Bundle

        digest = Bundle(bundle_dir).content_digest_or_none()
        return ValidationResult.from_report(report, path, run.exit_code, digest, target)
