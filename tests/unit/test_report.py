"""The validation report plugin, driven in-process with pytest's own report objects: what it records of each
check, the JSON it builds per target (verdict, reasons, lists, counts) and where it writes it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from conv2d_bundle.errors import BundleWarning
from conv2d_bundle.parity.tolerance import policy_digest
from conv2d_bundle.verify.plan import Expected, Wanted
from conv2d_bundle.verify.report import REPORT_SCHEMA_VERSION, CheckRecord, ValidationReport, runtime_versions

GENERAL = "checks/test_general.py::test_manifest"
PARITY = "checks/test_targets.py::test_parity[onnx-confidence-1]"
ONNX = "conv2d_bundle/targets/onnx/test_onnx.py::test_opset"


def _report(
    when: str,
    outcome: str = "passed",
    nodeid: str = GENERAL,
    *,
    target: str | None = "general",
    longrepr: Any = None,
    duration: float = 0.0,
    **extra: Any,
) -> pytest.TestReport:
    if target is not None:
        extra["conv2d_target"] = target
    return pytest.TestReport(
        nodeid,
        ("x", 1, "x"),
        {},
        outcome,
        longrepr,
        when,
        duration=duration,
        **extra,  # type: ignore[arg-type]
    )


def _run(plugin: ValidationReport, nodeid: str, target: str, call: str = "passed", **kw: Any) -> None:
    """One check's three phases as pytest reports them."""
    plugin.pytest_runtest_logreport(_report("setup", nodeid=nodeid, target=target))
    plugin.pytest_runtest_logreport(_report("call", call, nodeid=nodeid, target=target, **kw))
    plugin.pytest_runtest_logreport(_report("teardown", nodeid=nodeid, target=target))


def _plugin(tmp_path: Path, targets: tuple[str, ...] = ("onnx",), **kw: Any) -> ValidationReport:
    kw.setdefault("strict", False)
    return ValidationReport(tmp_path, "abc123", targets, wanted=Wanted(list(targets)), **kw)


def _expected(**ids: list[str]) -> Expected:
    return Expected(ids={"general": ["test_general.py::test_manifest"], **ids})


class FakeConfig:
    def __init__(self) -> None:
        self.stash = pytest.Stash()
        self.warned: list[str] = []

    def issue_config_time_warning(self, warning: Warning, stacklevel: int) -> None:
        self.warned.append(str(warning))


# -- one check's record -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phases", "outcome"),
    [
        ({"setup": "passed", "call": "passed", "teardown": "passed"}, "passed"),
        ({"setup": "passed", "call": "failed", "teardown": "passed"}, "failed"),
        ({"setup": "passed", "call": "failed"}, "failed"),
        ({"setup": "failed", "teardown": "passed"}, "error"),
        ({"setup": "passed", "call": "passed", "teardown": "failed"}, "error"),
        ({"setup": "skipped", "teardown": "passed"}, "skipped"),
        ({"setup": "passed", "call": "skipped", "teardown": "passed"}, "skipped"),
        ({"setup": "passed", "call": "passed"}, "not run"),  # interrupted before its teardown
        ({"setup": "passed", "teardown": "passed"}, "not run"),  # a call that never happened
        ({}, "not run"),
        ({"setup": "passed", "crash": "failed"}, "crashed"),
        ({"setup": "passed", "call": "failed", "teardown": "passed", "crash": "failed"}, "crashed"),
    ],
)
def test_a_record_earns_its_outcome_from_the_phases(phases: dict[str, str], outcome: str) -> None:
    assert CheckRecord("c", "onnx", phases=phases).outcome == outcome


def test_a_record_message_is_the_failure_or_the_skip_reason() -> None:
    rec = CheckRecord("c", "onnx", failure="boom", skip_reason="no runtime")
    assert rec.message == "no runtime"  # not run: no failure to show
    for phases in ({"call": "failed"}, {"setup": "failed"}, {"crash": "failed"}):
        assert CheckRecord("c", "onnx", phases=phases, failure="boom", skip_reason="x").message == "boom"
    skipped = CheckRecord(
        "c", "onnx", {"setup": "skipped", "teardown": "passed"}, failure="x", skip_reason="why"
    )
    assert skipped.message == "why"


def test_a_record_as_json() -> None:
    rec = CheckRecord("c", "onnx", {"setup": "passed", "call": "passed", "teardown": "passed"}, 0.12345678)
    assert rec.as_dict() == {
        "id": "c",
        "target": "onnx",
        "outcome": "passed",
        "duration_s": 0.123457,
        "message": "",
    }
    rec.details = {
        "figures": [np.float32(1.5), (float("nan"), float("-inf")), None, True, "s", 3],
        7: {"obj": Path("p")},
    }
    assert rec.as_dict()["details"] == {
        "figures": [1.5, ["nan", "-inf"], None, True, "s", 3],
        "7": {"obj": repr(Path("p"))},
    }
    json.dumps(rec.as_dict(), allow_nan=False)


def test_runtime_versions_name_the_imported_runtimes() -> None:
    versions = runtime_versions()
    assert versions["python"].count(".") == 2
    assert versions["numpy"] == np.__version__ and versions["pytest"] == pytest.__version__


def test_runtime_versions_of_a_module_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    modules = __import__("sys").modules
    monkeypatch.setitem(modules, "hypothesis", SimpleNamespace())  # no __version__: its distribution's
    monkeypatch.setitem(modules, "hailo_platform", SimpleNamespace())  # no distribution either (a fake)
    monkeypatch.setitem(modules, "executorch", SimpleNamespace(__version__=""))
    monkeypatch.delitem(modules, "coremltools", raising=False)
    versions = runtime_versions()
    assert versions["hypothesis"] == metadata.version("hypothesis")
    assert versions["hailo_platform"] == "unknown" and "coremltools" not in versions
    assert versions["executorch"] == metadata.version("executorch")


def test_runtime_versions_name_every_runtime_a_target_runs_a_model_with() -> None:
    from conv2d_bundle.verify.report import VERSIONED_MODULES

    assert {"torch", "executorch", "coremltools", "onnxruntime", "hailo_platform"} <= set(VERSIONED_MODULES)


# -- recording --------------------------------------------------------------------------------------------


def test_records_each_check_of_ours_with_its_duration(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    plugin.pytest_runtest_logreport(_report("setup", duration=0.5))
    plugin.pytest_runtest_logreport(
        _report("call", duration=0.25, conv2d_versions={"onnx": "1.0"}, conv2d_details={"a": 1})
    )
    plugin.pytest_runtest_logreport(_report("teardown", duration=0.125, conv2d_details={"b": 2}))
    plugin.pytest_runtest_logreport(_report("call", nodeid="tests/test_theirs.py::test_x", target=None))
    assert list(plugin.records) == ["test_general.py::test_manifest"]
    rec = plugin.records["test_general.py::test_manifest"]
    assert (rec.id, rec.target, rec.outcome, rec.duration_s) == (
        "test_general.py::test_manifest",
        "general",
        "passed",
        0.875,
    )
    assert rec.details == {"a": 1, "b": 2} and plugin.versions == {"onnx": "1.0"}


def test_records_the_first_failure_message(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    plugin.pytest_runtest_logreport(_report("setup"))
    plugin.pytest_runtest_logreport(_report("call", "failed", longrepr="\n  first line  \nsecond"))
    plugin.pytest_runtest_logreport(_report("teardown", "failed", longrepr="teardown broke"))
    rec = plugin.records["test_general.py::test_manifest"]
    assert (rec.outcome, rec.failure) == ("failed", "first line")
    _run(plugin, ONNX, "onnx", "failed", longrepr="long text", conv2d_message="what the check said")
    assert plugin.records["test_onnx.py::test_opset"].failure == "what the check said"
    _run(plugin, PARITY, "onnx", "failed", longrepr="\n\n")
    assert plugin.records["test_targets.py::test_parity[onnx-confidence-1]"].failure == ""


def test_records_the_skip_reason(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    _run(plugin, ONNX, "onnx", "skipped", longrepr=("f.py", 3, "Skipped: no onnxruntime"))
    _run(plugin, PARITY, "onnx", "skipped", longrepr="\nskipped as a string\nmore")
    assert plugin.records["test_onnx.py::test_opset"].message == "no onnxruntime"
    assert plugin.records["test_targets.py::test_parity[onnx-confidence-1]"].message == "skipped as a string"


def test_a_crashed_worker_is_recorded_against_the_target_of_its_id(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path, ("onnx", "ios"))
    plugin.pytest_runtest_logreport(_report("setup", nodeid=PARITY, target="onnx"))
    plugin.pytest_runtest_logreport(_report("???", "failed", nodeid=PARITY, target=None, longrepr="crash"))
    plugin.pytest_runtest_logreport(_report("???", "failed", nodeid=ONNX, target=None))
    plugin.pytest_runtest_logreport(_report("???", "failed", nodeid="tests/test_x.py::test_y", target=None))
    parity = plugin.records["test_targets.py::test_parity[onnx-confidence-1]"]
    assert (parity.target, parity.outcome, parity.failure) == ("onnx", "crashed", f"worker crashed: {PARITY}")
    assert parity.phases == {"setup": "passed", "crash": "failed"}
    assert plugin.records["test_onnx.py::test_opset"].target == "onnx"
    assert set(plugin.records) == {
        "test_targets.py::test_parity[onnx-confidence-1]",
        "test_onnx.py::test_opset",
    }


def test_collection_errors_are_kept_per_module(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    bad = "E   ImportError: no module named onnx\nE   second E line: the last wins"
    plugin.pytest_collectreport(
        pytest.CollectReport("checks/test_general.py", "failed", f"trace\n{bad}\n", None)
    )
    plugin.pytest_collectreport(pytest.CollectReport("checks/test_general.py", "failed", "later", None))
    plugin.pytest_collectreport(
        pytest.CollectReport("x/test_onnx.py::Class", "failed", "  plain text  \n", None)
    )
    plugin.pytest_collectreport(pytest.CollectReport("", "failed", "", None))
    plugin.pytest_collectreport(pytest.CollectReport("checks/test_targets.py", "passed", None, []))
    plugin.pytest_collectreport(pytest.CollectReport("deep", "failed", "E   " + "x" * 400, None))
    assert plugin.collection_errors == {
        "test_general.py": "second E line: the last wins",
        "test_onnx.py": "plain text",
        "session": "collection failed",
        "deep": "x" * 300,
    }


def _raised(exc: BaseException) -> pytest.ExceptionInfo[BaseException]:
    with pytest.raises(BaseException) as info:
        raise exc
    return info


def test_an_interrupt_is_recorded_with_what_ended_the_session(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    plugin.pytest_keyboard_interrupt(_raised(KeyboardInterrupt()))
    assert plugin.interrupted == "interrupted"
    plugin.pytest_keyboard_interrupt(_raised(pytest.exit.Exception("\nstop: why\n")))
    assert plugin.interrupted == "interrupted: stop: why"
    plugin.pytest_keyboard_interrupt(_raised(pytest.exit.Exception("")))
    assert plugin.interrupted == "interrupted: pytest.exit()"


def test_bundle_warnings_are_kept_per_check(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)

    def warned(category: type[Warning], message: str, nodeid: str) -> None:
        w = warnings.WarningMessage(category(message), category, "f.py", 1)
        plugin.pytest_warning_recorded(w, "runtest", nodeid, None)

    warned(BundleWarning, "first", ONNX)
    warned(BundleWarning, "second", ONNX)
    warned(UserWarning, "not ours", ONNX)
    warned(BundleWarning, "no check", "")
    assert plugin.warnings == {"test_onnx.py::test_opset": ["first", "second"]}


def test_whole_modules_are_remembered_for_the_plan(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    config = SimpleNamespace(args=["checks"], getoption=lambda name, default=None: default)
    item = SimpleNamespace(path=tmp_path / "test_a.py")
    plugin.pytest_collection_modifyitems(config, [item])  # type: ignore[arg-type]
    assert plugin.seen == {(tmp_path / "test_a.py").resolve(): [item]}


# -- building the report ----------------------------------------------------------------------------------


def test_a_complete_passing_run(tmp_path: Path) -> None:
    digest = "sha256:" + "0f" * 32
    plugin = _plugin(
        tmp_path, tolerance_policy={"source": "built-in policy"}, content_digest=digest, profile="quick"
    )
    _run(plugin, GENERAL, "general")
    _run(plugin, ONNX, "onnx", conv2d_details={"x": 1.0})
    _run(plugin, "conv2d_bundle/targets/ios/test_ios.py::test_spec", "ios")  # another target's check
    report = plugin.build("onnx", "2026-01-01T00:00:00Z", _expected(onnx=["test_onnx.py::test_opset"]), 0)
    environment = report.pop("environment")
    assert report == {
        "schema_version": REPORT_SCHEMA_VERSION,
        "target": "onnx",
        "exp_hash": "abc123",
        "verdict": "passed",
        "passed": True,
        "complete": True,
        "reasons": [],
        "errors": [],
        "warnings": [],
        "checks_run": ["test_general.py::test_manifest", "test_onnx.py::test_opset"],
        "skipped": [],
        "not_run": [],
        "counts": {"expected": 2, "passed": 2, "failed": 0, "skipped": 0, "not_run": 0},
        "checks": [
            {
                "id": "test_general.py::test_manifest",
                "target": "general",
                "outcome": "passed",
                "duration_s": 0.0,
                "message": "",
            },
            {
                "id": "test_onnx.py::test_opset",
                "target": "onnx",
                "outcome": "passed",
                "duration_s": 0.0,
                "message": "",
                "details": {"x": 1.0},
            },
        ],
        "strict_targets": False,
        "partial": False,
        "selection": "",
        "pytest_exit_status": 0,
        "tolerance_policy": {"source": "built-in policy"},
        "tolerance_policy_digest": policy_digest({"source": "built-in policy"}),
        "check_profile": "quick",
        "golden_coverage": None,  # a bundle whose metadata records no golden-set coverage
        "content_digest": digest,
        "finished_at": "2026-01-01T00:00:00Z",
    }
    assert REPORT_SCHEMA_VERSION == 3
    assert set(environment) == {"versions", "host", "platform", "machine", "system"}
    assert environment["versions"]["python"] == runtime_versions()["python"]
    assert report["schema_version"] == 3


def test_versions_reported_by_workers_win(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    _run(plugin, GENERAL, "general", conv2d_versions={"numpy": "0.0-worker", "onnxruntime": "9"})
    report = plugin.build("general", "t", _expected(), 0)
    assert report["environment"]["versions"]["numpy"] == "0.0-worker"
    assert report["environment"]["versions"]["onnxruntime"] == "9"


def test_failures_skips_and_warnings_in_the_report(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    _run(plugin, GENERAL, "general", "failed", longrepr="manifest is wrong")
    _run(plugin, ONNX, "onnx", "skipped", longrepr=("f", 1, "Skipped: no runtime"))
    _run(plugin, "conv2d_bundle/targets/ios/test_ios.py::test_spec", "ios", "failed", longrepr="ios broke")
    plugin.warnings = {"test_onnx.py::test_opset": ["w1", "w2"], "test_ios.py::test_spec": ["elsewhere"]}
    report = plugin.build("onnx", "t", _expected(onnx=["test_onnx.py::test_opset"]), 1)
    assert (report["verdict"], report["passed"], report["complete"]) == ("failed", False, True)
    assert report["errors"] == ["test_general.py::test_manifest: manifest is wrong"]
    assert report["skipped"] == [{"id": "test_onnx.py::test_opset", "reason": "no runtime"}]
    assert report["warnings"] == ["test_onnx.py::test_opset: w1", "test_onnx.py::test_opset: w2"]
    assert report["checks_run"] == ["test_general.py::test_manifest"]
    assert report["counts"] == {"expected": 2, "passed": 0, "failed": 1, "skipped": 1, "not_run": 0}


def test_golden_coverage_in_every_report_and_a_warning_when_degenerate(tmp_path: Path) -> None:
    """metadata.json's golden-set coverage is copied into each report; a degenerate one is the first warning of
    each (the general report's too), before the checks' own."""
    coverage = {
        "source": {"kind": "random", "description": "random normal, seed 0"},
        "windows": 64,
        "codes": {
            "behavioral_codes": {"distinct": 2, "of": 800, "largest_share": 0.9531, "most_common": 500}
        },
        "degenerate": ["behavioral_codes: code 500 is 61 of 64 windows (95%)"],
    }
    plugin = _plugin(tmp_path, golden_coverage=coverage)
    plugin.warnings = {"test_onnx.py::test_opset": ["w1"]}
    _run(plugin, GENERAL, "general")
    _run(plugin, ONNX, "onnx")
    expected = _expected(onnx=["test_onnx.py::test_opset"])
    line = (
        "golden set coverage is degenerate (64 windows, random normal, seed 0): behavioral_codes: code 500 is "
        "61 of 64 windows (95%); agreement on it proves little (give real windows: export.reference.inputs)"
    )
    onnx, general = plugin.build("onnx", "t", expected, 0), plugin.build("general", "t", expected, 0)
    assert onnx["golden_coverage"] == general["golden_coverage"] == coverage
    assert onnx["warnings"] == [line, "test_onnx.py::test_opset: w1"] and general["warnings"] == [line]
    assert onnx["passed"] is True  # a warning, not a failure

    healthy = _plugin(tmp_path, golden_coverage={**coverage, "degenerate": []})
    _run(healthy, GENERAL, "general")
    assert healthy.build("general", "t", expected, 0)["warnings"] == []


def test_an_error_in_setup_is_an_error_of_the_report(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    plugin.pytest_runtest_logreport(_report("setup", "failed", longrepr="fixture broke"))
    plugin.pytest_runtest_logreport(_report("teardown"))
    report = plugin.build("general", "t", _expected(), 1)
    assert report["errors"] == ["test_general.py::test_manifest: fixture broke"]
    assert report["checks_run"] == ["test_general.py::test_manifest"]


def test_another_targets_failure_explains_exit_status_1(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path, ("onnx", "ios"))
    _run(plugin, GENERAL, "general")
    _run(plugin, ONNX, "onnx")
    _run(plugin, "conv2d_bundle/targets/ios/test_ios.py::test_spec", "ios", "failed", longrepr="x")
    report = plugin.build("onnx", "t", _expected(onnx=["test_onnx.py::test_opset"]), 1)
    assert report["verdict"] == "passed" and report["reasons"] == []
    plugin.records["test_ios.py::test_spec"].phases = {"setup": "passed", "crash": "failed"}
    crashed = plugin.build("onnx", "t", _expected(onnx=["test_onnx.py::test_opset"]), 1)
    assert crashed["verdict"] == "passed"  # a crash elsewhere also explains it
    plugin.records["test_ios.py::test_spec"].phases = {"setup": "failed", "teardown": "passed"}
    errored = plugin.build("onnx", "t", _expected(onnx=["test_onnx.py::test_opset"]), 1)
    assert errored["verdict"] == "passed"  # and so does an error in another target's setup
    plugin.records["test_ios.py::test_spec"].phases = {"setup": "skipped", "teardown": "passed"}
    unexplained = plugin.build("onnx", "t", _expected(onnx=["test_onnx.py::test_opset"]), 1)
    assert unexplained["reasons"] == ["pytest exit status 1 (tests failed)"]


def test_a_check_that_did_not_run_is_listed_and_makes_it_incomplete(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    _run(plugin, GENERAL, "general")
    plugin.pytest_runtest_logreport(_report("setup", nodeid=ONNX, target="onnx"))
    expected = _expected(onnx=["test_onnx.py::test_opset", "test_onnx.py::test_graph"])
    report = plugin.build("onnx", "t", expected, 0)
    assert (report["verdict"], report["complete"]) == ("incomplete", False)
    assert report["not_run"] == ["test_onnx.py::test_graph", "test_onnx.py::test_opset"]
    assert report["reasons"] == ["2 of 3 checks did not run"]
    assert report["partial"] is False


def test_a_selection_says_how_many_of_the_checks_ran(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path, selection="-k opset")
    _run(plugin, GENERAL, "general")
    _run(plugin, ONNX, "onnx")
    expected = _expected(onnx=["test_onnx.py::test_opset", "test_onnx.py::test_graph"])
    report = plugin.build("onnx", "t", expected, 0)
    assert report["reasons"] == ["selected: -k opset (2 of 3 checks)"]
    assert (report["verdict"], report["partial"], report["selection"]) == ("incomplete", True, "-k opset")
    complete = plugin.build("onnx", "t", _expected(onnx=["test_onnx.py::test_opset"]), 0)
    assert complete["reasons"] == [] and complete["partial"] is False and complete["verdict"] == "passed"


def test_interrupt_and_collection_errors_are_the_reasons(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path, selection="-k opset")
    _run(plugin, GENERAL, "general")
    plugin.interrupted = "interrupted"
    plugin.collection_errors = {"test_b.py": "b", "test_a.py": "a"}
    expected = _expected(onnx=["test_onnx.py::test_opset"])
    expected.errors = {"test_onnx.py": "no onnx", "test_ios.py": "no coremltools", "test_a.py": "dup"}
    expected.owners = {"test_onnx.py": ["onnx"], "test_ios.py": ["ios"], "test_a.py": ["onnx"]}
    report = plugin.build("onnx", "t", expected, 2)
    assert report["reasons"] == [
        "interrupted",
        "collection error: test_a.py: a",
        "collection error: test_b.py: b",
        "collection error: test_onnx.py: no onnx",
    ]
    assert report["verdict"] == "incomplete"


def test_all_covers_every_target_of_the_session(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path, ("onnx", "ios", "all"))
    assert plugin.all_targets == ["onnx", "ios"]
    _run(plugin, GENERAL, "general")
    _run(plugin, ONNX, "onnx")
    _run(plugin, "conv2d_bundle/targets/ios/test_ios.py::test_spec", "ios")
    _run(plugin, "conv2d_bundle/targets/hailo/test_hailo.py::test_hef", "hailo")
    expected = _expected(onnx=["test_onnx.py::test_opset"], ios=["test_ios.py::test_spec"])
    report = plugin.build("all", "t", expected, 0)
    assert report["checks_run"] == [
        "test_general.py::test_manifest",
        "test_ios.py::test_spec",
        "test_onnx.py::test_opset",
    ]
    assert report["counts"]["expected"] == 3 and report["verdict"] == "passed"
    general = plugin.build("general", "t", expected, 0)
    assert general["checks_run"] == ["test_general.py::test_manifest"]


def test_a_module_skipped_whole_is_one_not_verified_record_per_target(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path, ("onnx", "ios"))
    _run(plugin, GENERAL, "general")
    expected = _expected(onnx=[], ios=[])
    expected.skipped = {"test_targets.py": "no golden outputs", "test_onnx.py": "no onnx"}
    expected.owners = {"test_targets.py": ["onnx", "ios"], "test_onnx.py": ["onnx"]}
    assert plugin._add_module_skips(expected) is False
    onnx = plugin.build("onnx", "t", expected, 0)
    assert onnx["skipped"] == [
        {"id": "test_onnx.py", "reason": "no onnx"},
        {"id": "test_targets.py[onnx]", "reason": "no golden outputs"},
    ]
    assert onnx["verdict"] == "passed" and onnx["counts"]["expected"] == 3 and onnx["not_run"] == []
    assert plugin.records["test_targets.py[ios]"].target == "ios"
    no_owner = _plugin(tmp_path)
    no_owner._add_module_skips(Expected(skipped={"test_x.py": "why"}))
    assert no_owner.records["test_x.py"].target == "general"


def test_a_module_skipped_whole_fails_with_strict_targets(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path, strict=True)
    expected = _expected(onnx=[])
    expected.skipped, expected.owners = {"test_onnx.py": "no onnx"}, {"test_onnx.py": ["onnx"]}
    assert plugin._add_module_skips(expected) is True
    rec = plugin.records["test_onnx.py"]
    assert (rec.outcome, rec.message) == ("error", "not verified (--strict-targets): module skipped: no onnx")
    report = plugin.build("onnx", "t", expected, 1)
    assert report["verdict"] == "failed" and report["strict_targets"] is True
    assert report["errors"] == ["test_onnx.py: not verified (--strict-targets): module skipped: no onnx"]


# -- session end: judging, writing, junit ------------------------------------------------------------------


def _finish(
    monkeypatch: pytest.MonkeyPatch, plugin: ValidationReport, expected: Expected, exitstatus: int
) -> SimpleNamespace:
    monkeypatch.setattr(
        "conv2d_bundle.verify.report.collect_expected", lambda session, wanted, seen: expected
    )
    session = SimpleNamespace(exitstatus=exitstatus, config=FakeConfig())
    plugin.pytest_sessionfinish(session)  # type: ignore[arg-type]
    return session


def test_session_end_writes_one_report_per_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = _plugin(tmp_path)
    _run(plugin, GENERAL, "general")
    _run(plugin, ONNX, "onnx")
    session = _finish(monkeypatch, plugin, _expected(onnx=["test_onnx.py::test_opset"]), 0)
    assert session.exitstatus == 0
    assert plugin.written == [
        tmp_path / "validation" / "general_validation.json",
        tmp_path / "validation" / "onnx_validation.json",
    ]
    onnx = json.loads((tmp_path / "validation" / "onnx_validation.json").read_text())
    assert onnx["verdict"] == "passed" and onnx["target"] == "onnx" and onnx == plugin.summaries["onnx"]
    assert onnx["finished_at"].endswith("Z") and len(onnx["finished_at"]) == 20
    assert (
        json.loads((tmp_path / "validation" / "general_validation.json").read_text())["target"] == "general"
    )


def test_a_strict_module_skip_fails_the_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = _plugin(tmp_path, strict=True)
    _run(plugin, GENERAL, "general")
    expected = _expected(onnx=[])
    expected.skipped, expected.owners = {"test_onnx.py": "no onnx"}, {"test_onnx.py": ["onnx"]}
    session = _finish(monkeypatch, plugin, expected, 0)
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert plugin.summaries["onnx"]["verdict"] == "failed"
    assert plugin.summaries["onnx"]["pytest_exit_status"] == 1
    interrupted = _finish(monkeypatch, _plugin(tmp_path, strict=True), expected, 2)
    assert interrupted.exitstatus == 2  # a worse status stays


def test_a_symlinked_validation_dir_is_not_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "validation").symlink_to(elsewhere)
    plugin = _plugin(bundle)
    _run(plugin, GENERAL, "general")
    session = _finish(monkeypatch, plugin, _expected(onnx=[]), 0)
    assert list(elsewhere.iterdir()) == [] and plugin.written == []
    assert session.config.warned == [
        f"{bundle / 'validation'} is a symlink: reports not written (the verdict stands)"
    ]
    assert plugin.summaries["general"]["verdict"] == "passed"


def test_a_report_that_cannot_be_written_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: Path, data: Any) -> None:
        if path.name.startswith("general"):
            raise PermissionError(13, "Permission denied")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))

    monkeypatch.setattr("conv2d_bundle.bundle.atomic.write_json", refuse)
    plugin = _plugin(tmp_path)
    _run(plugin, GENERAL, "general")
    session = _finish(monkeypatch, plugin, _expected(onnx=[]), 0)
    path = tmp_path / "validation" / "general_validation.json"
    assert session.config.warned == [f"cannot write {path}: Permission denied"]
    assert plugin.written == [
        tmp_path / "validation" / "onnx_validation.json"
    ]  # the others are still written


class FakeXml:
    def __init__(self) -> None:
        self.properties: list[tuple[str, str]] = []

    def add_global_property(self, name: str, value: str) -> None:
        self.properties.append((name, value))


def test_the_verdict_goes_into_junitxml(tmp_path: Path) -> None:
    from _pytest.junitxml import xml_key

    plugin = _plugin(tmp_path, content_digest="sha256:" + "ab" * 32, profile="thorough", strict=True)
    plugin.summaries = {
        "general": {
            "verdict": "passed",
            "complete": True,
            "reasons": [],
            "environment": {"versions": {"python": "3", "a": "1"}},
        },
        "onnx": {"verdict": "incomplete", "complete": False, "reasons": ["r1", "r2"]},
    }
    config = FakeConfig()
    plugin._record_junit_properties(config)  # type: ignore[arg-type]  # no junitxml: nothing to do
    xml = FakeXml()
    config.stash[xml_key] = xml  # type: ignore[assignment]
    plugin._record_junit_properties(config)  # type: ignore[arg-type]
    assert xml.properties == [
        ("conv2d.exp_hash", "abc123"),
        ("conv2d.content_digest", "sha256:" + "ab" * 32),
        ("conv2d.check_profile", "thorough"),
        ("conv2d.strict_targets", "true"),
        ("conv2d.general.verdict", "passed"),
        ("conv2d.general.result", "passed"),
        ("conv2d.general.complete", "true"),
        ("conv2d.onnx.verdict", "incomplete"),
        ("conv2d.onnx.result", "incomplete: r1; r2"),
        ("conv2d.onnx.complete", "false"),
        ("conv2d.onnx.reasons", "r1; r2"),
        ("conv2d.targets", "general,onnx"),
        ("conv2d.version.a", "1"),
        ("conv2d.version.python", "3"),
    ]
    empty = FakeXml()
    config.stash[xml_key] = empty  # type: ignore[assignment]
    _plugin(tmp_path)._record_junit_properties(config)  # type: ignore[arg-type]
    assert empty.properties == [
        ("conv2d.exp_hash", "abc123"),
        ("conv2d.content_digest", "unknown"),
        ("conv2d.check_profile", "default"),
        ("conv2d.strict_targets", "false"),
        ("conv2d.targets", ""),
    ]


def test_the_terminal_summary_names_incomplete_targets_and_the_files(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path)
    plugin.summaries = {
        "general": {"verdict": "passed", "complete": True, "reasons": []},
        "onnx": {"verdict": "incomplete", "complete": False, "reasons": ["interrupted", "x"]},
        "ios": {"verdict": "failed", "complete": False, "reasons": ["interrupted"]},
    }
    plugin.written = [tmp_path / "general_validation.json"]
    lines: list[tuple[str, dict[str, Any]]] = []
    plugin.pytest_terminal_summary(SimpleNamespace(write_line=lambda line, **kw: lines.append((line, kw))))
    assert lines == [
        ("conv2d-bundle onnx: INCOMPLETE (interrupted; x)", {"yellow": True}),
        (f"conv2d-bundle report: {tmp_path / 'general_validation.json'}", {}),
    ]
