"""The plugin and the report plugin at the edges the other unit tests leave out: option metavars, a user's
own module skipped whole at collection, several collection deviations, reports removed for several targets,
bundles without recorded formats and the EXP_HASH a bundle must state.

Written for survivors of the 2026-12-05 mutation run (tests/README.md); the stand-ins are
tests/unit/test_plugin_unit.py's and tests/unit/test_report.py's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from conv2d_bundle.verify import plugin
from tests.unit.test_plugin_unit import SHORT, FakeConfig, RecordingParser
from tests.unit.test_report import GENERAL, _expected, _plugin, _run


def test_each_option_shows_its_metavar() -> None:
    parser = RecordingParser()
    plugin.add_options(parser)  # type: ignore[arg-type]
    assert plugin.add_short_names(parser) == [f"--{n}" for n in SHORT]  # type: ignore[arg-type]
    usage = " ".join(parser.groups["conv2d_bundle"].argparser.format_usage().split())
    for option, metavar in [
        ("bundle", "DIR"),
        ("artifacts", "DIR"),
        ("target", "TARGETS"),
        ("check-profile", "PROFILE"),
        ("tolerance-policy", "FILE"),
        ("trusted-key", "PEM"),
    ]:
        assert f"[--conv2d-{option} {metavar}]" in usage  # the short names are left out of the help


# -- a module skipped whole while the run collected it -------------------------------------------------------


def _skipped(nodeid: str, path: str, reason: str) -> pytest.CollectReport:
    return pytest.CollectReport(nodeid, "skipped", (path, 1, f"Skipped: {reason}"), [])


def test_a_users_own_module_skipped_at_collection_is_not_verified_for_every_target(tmp_path: Path) -> None:
    from conv2d_bundle.verify.plan import CHECKS_DIR

    plugin_ = _plugin(tmp_path, ("onnx", "ios"))
    plugin_.rootpath = Path("/x")  # what pytest_sessionstart records: node ids are relative to it
    _run(plugin_, GENERAL, "general")
    # the package's own module, skipped by a helper elsewhere (the skip's location is not the module)
    ours = CHECKS_DIR / "test_targets.py"
    plugin_.rootpath = ours.parent
    plugin_.pytest_collectreport(_skipped("test_targets.py", "/elsewhere/helper.py", "no numpy"))
    plugin_.rootpath = Path("/x")
    plugin_.pytest_collectreport(_skipped("mine/test_own.py", "/x/mine/test_own.py", "no scipy"))
    plugin_.pytest_collectreport(_skipped("", "/elsewhere/test_outside.py", "no torch"))  # outside rootdir
    plugin_.pytest_collectreport(_skipped("", "<unknown>", "x"))  # no location: not a module of ours
    plugin_.pytest_collectreport(_skipped("mine/test_own.py", "/x/mine/test_own.py", "later"))  # first wins
    plugin_.pytest_collectreport(_skipped("test_onnx.py", "/pkg/test_onnx.py", "no onnxruntime"))
    assert plugin_.module_skips == {  # by path (the node id's, else the skip's): two files may share a name
        str(ours.resolve()): ("test_targets.py", "no numpy"),
        "/x/mine/test_own.py": ("test_own.py", "no scipy"),
        "/elsewhere/test_outside.py": ("test_outside.py", "no torch"),
        "<unknown>": ("<unknown>", "x"),
        "/x/test_onnx.py": ("test_onnx.py", "no onnxruntime"),
    }
    expected = _expected(onnx=[], ios=[])
    expected.owners = {"test_onnx.py": ["onnx"], "test_targets.py": ["onnx", "ios"]}  # the package's
    plugin_._add_module_skips(expected)
    assert expected.skipped == {  # a user's test_onnx.py is not the package's: named by its path
        "test_own.py": "no scipy",
        "test_outside.py": "no torch",
        "<unknown>": "x",
        "/x/test_onnx.py": "no onnxruntime",
    }
    assert expected.owners["test_own.py"] == ["onnx", "ios"] and expected.owners["test_onnx.py"] == ["onnx"]
    onnx = plugin_.build("onnx", "t", expected, 0)
    assert onnx["skipped"] == [
        {"id": "/x/test_onnx.py[onnx]", "reason": "no onnxruntime"},
        {"id": "<unknown>[onnx]", "reason": "x"},
        {"id": "test_outside.py[onnx]", "reason": "no torch"},
        {"id": "test_own.py[onnx]", "reason": "no scipy"},
    ]
    general_only = _plugin(tmp_path, ())
    general_only.pytest_collectreport(_skipped("test_own.py", "/x/test_own.py", "no scipy"))
    expected = _expected()
    general_only._add_module_skips(expected)
    assert expected.owners["test_own.py"] == ["general"]
    assert general_only.records["test_own.py"].target == "general"


def test_every_collection_deviation_is_named_in_the_reason(tmp_path: Path) -> None:
    report = _plugin(tmp_path, deviations=["python_files = check_*.py", "python_functions = check_*"])
    _run(report, GENERAL, "general")
    expected = _expected(onnx=["test_onnx.py::test_opset"])
    assert report.build("onnx", "t", expected, 0)["reasons"] == [
        "collection settings differ from pytest's defaults: python_files = check_*.py; python_functions = "
        "check_* (1 of 2 checks)"
    ]


# -- configure ------------------------------------------------------------------------------------------------


def test_blocking_the_report_plugin_removes_every_targets_report(tmp_path: Path) -> None:
    reports = tmp_path / "validation"
    reports.mkdir()
    for name in ("general", "onnx", "ios", "hailo"):
        (reports / f"{name}_validation.json").write_text("{}")
    config = FakeConfig(bundle=str(tmp_path), target="onnx,ios")
    config.pluginmanager.blocked.add("conv2d_bundle_report")
    with pytest.raises(pytest.UsageError) as info:
        plugin.pytest_configure(config)  # type: ignore[arg-type]
    assert str(info.value).endswith(
        "(removed: general_validation.json, onnx_validation.json, ios_validation.json)"
    )
    assert [p.name for p in reports.iterdir()] == ["hailo_validation.json"]


def test_blocking_the_report_plugin_with_no_report_to_remove(tmp_path: Path) -> None:
    config = FakeConfig(bundle=str(tmp_path), target="onnx")
    config.pluginmanager.blocked.add("conv2d_bundle_report")
    with pytest.raises(pytest.UsageError) as info:
        plugin.pytest_configure(config)  # type: ignore[arg-type]
    assert str(info.value) == (
        "-p no:conv2d_bundle_report: the bundle checks' verdict is written by that plugin; a run without it "
        "would leave an older report standing"
    )


def test_a_symlinked_validation_directory_is_not_emptied(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "general_validation.json").write_text("{}")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "validation").symlink_to(elsewhere)
    assert plugin._remove_reports(bundle, ["general"]) == ""
    assert (elsewhere / "general_validation.json").exists()


def test_a_directory_that_is_no_bundle_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(pytest.UsageError) as info:
        plugin._resolve_bundle(FakeConfig(), str(tmp_path))  # type: ignore[arg-type]
    assert str(info.value) == f"--bundle {tmp_path}: not a bundle (no metadata.json or MANIFEST.json)"


def test_all_of_a_bundle_that_records_no_formats_is_no_target() -> None:
    """A bundle from before formats were recorded: ``all`` runs none of them, a named target still runs."""
    old = SimpleNamespace(metadata={"exp_hash": "a" * 12, "created_at": "t"})
    assert plugin._session_targets(old, ["all"]) == []
    assert plugin._session_targets(old, ["all", "onnx"]) == ["onnx"]


@pytest.mark.parametrize(
    ("name", "exp_hash", "expected"),
    [
        ("0123456789ab", "ffffffffffff", "0123456789ab"),  # the artifacts layout: the directory's name
        ("my-copy", "ffffffffffff", "ffffffffffff"),  # a copy under another name: its own
        ("my-copy", "", "my-copy"),
    ],
)
def test_the_exp_hash_a_bundle_must_state(name: str, exp_hash: str, expected: str) -> None:
    bundle = SimpleNamespace(bundle_dir=Path("/x") / name, metadata={"exp_hash": exp_hash})
    assert plugin._expected_hash(bundle) == expected


def test_a_deviation_with_several_values_shows_each() -> None:
    from conv2d_bundle.verify.plan import collection_deviations

    config = FakeConfig()
    config.ini["python_files"] = ["test_*.py", "check_*.py"]
    assert collection_deviations(config) == ["python_files = test_*.py check_*.py"]  # type: ignore[arg-type]


def test_a_runtimes_own_version_wins_over_its_distributions(monkeypatch: pytest.MonkeyPatch) -> None:
    from conv2d_bundle.verify.report import runtime_versions

    monkeypatch.setitem(sys.modules, "numpy", SimpleNamespace(__version__="0.0.0+patched"))
    assert runtime_versions()["numpy"] == "0.0.0+patched"


def test_a_report_without_a_tolerance_policy_has_no_policy_digest(tmp_path: Path) -> None:
    report = _plugin(tmp_path)
    _run(report, GENERAL, "general")
    built = report.build("general", "t", _expected(), 0)
    assert (built["tolerance_policy"], built["tolerance_policy_digest"]) == ({}, None)
