"""The pytest plugin's options and hooks, called in-process with stand-ins for pytest's objects: what a
session is configured with, which checks it keeps, how a missing format or --strict-targets shows in a check's
report, and how the checks are parametrized from the bundle's config."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.errors import BundleError
from conv2d_bundle.parity.tolerance import TolerancePolicy
from conv2d_bundle.verify import plugin
from conv2d_bundle.verify.fixtures import details_key, state_key
from conv2d_bundle.verify.plan import PYTEST_DEFAULTS
from conv2d_bundle.verify.report import ValidationReport


class FakePluginManager:
    def __init__(self) -> None:
        self.plugins: dict[str, Any] = {}
        self.blocked: set[str] = set()

    def is_blocked(self, name: str) -> bool:
        return name in self.blocked

    def register(self, obj: Any, name: str) -> None:
        self.plugins[name] = obj

    def get_plugin(self, name: str) -> Any:
        return self.plugins.get(name)

    def unregister(self, obj: Any, name: str) -> None:
        assert self.plugins.pop(name) is obj


class FakeConfig:
    def __init__(self, collectonly: bool = False, args: tuple[str, ...] = (), **options: Any) -> None:
        self.options = {
            "target": "general",
            "check_profile": "default",
            "strict_targets": False,
            "benchmark": False,
            **options,
        }
        bundle = options.get("bundle")
        if bundle and Path(bundle).is_dir() and not (Path(bundle) / "MANIFEST.json").exists():
            (Path(bundle) / "metadata.json").touch()  # what makes a directory a bundle to --bundle
        self.stash = pytest.Stash()
        self.pluginmanager = FakePluginManager()
        self.ini_lines: list[tuple[str, str]] = []
        self.cleanups: list[Any] = []
        self.option = SimpleNamespace(collectonly=collectonly)
        self.args = list(args)
        self.inipath: Path | None = None
        self.invocation_params = SimpleNamespace(dir=Path.cwd())  # the repository, outside tmp_path bundles
        self.rootpath = Path.cwd()
        self.ini: dict[str, list[str]] = dict(PYTEST_DEFAULTS)
        self.deselected: list[Any] = []
        self.hook = SimpleNamespace(pytest_deselected=lambda items: self.deselected.extend(items))

    def getoption(self, name: str, default: Any = None) -> Any:
        return self.options.get(name.removeprefix("conv2d_"), default)  # the plugin's dests are namespaced

    def getini(self, name: str) -> list[str]:
        return self.ini[name]

    def addinivalue_line(self, name: str, line: str) -> None:
        self.ini_lines.append((name, line))

    def add_cleanup(self, func: Any) -> None:
        self.cleanups.append(func)

    def cleanup(self) -> None:
        for func in self.cleanups:
            func()


def _state(targets: list[str], **kw: Any) -> Any:
    kw.setdefault("strict", False)
    return SimpleNamespace(targets=targets, **kw)


class FakeItem:
    def __init__(self, *marks: pytest.MarkDecorator, state: Any = None, name: str = "item") -> None:
        self.marks = {m.mark.name: m.mark for m in marks}
        self.config = FakeConfig()
        if state is not None:
            self.config.stash[state_key] = state
        self.stash = pytest.Stash()
        self.name = name

    def get_closest_marker(self, name: str) -> Any:
        return self.marks.get(name)

    def __repr__(self) -> str:
        return self.name


def onnx_mark() -> pytest.MarkDecorator:
    return pytest.mark.conv2d_target("onnx")


# -- options ------------------------------------------------------------------------------------------------


def test_target_option_parses_and_names_the_known_targets() -> None:
    assert plugin.parse_targets("onnx") == "onnx"
    assert plugin.parse_targets("ios,onnx") == "ios,onnx"
    with pytest.raises(argparse.ArgumentTypeError, match="nosuch") as info:
        plugin.parse_targets("nosuch")
    assert "onnx" in str(info.value)


def test_check_profile_option() -> None:
    for profile in ("quick", "default", "thorough", "seal"):
        assert plugin.parse_profile(profile) == profile
    with pytest.raises(argparse.ArgumentTypeError) as info:
        plugin.parse_profile("fast")
    assert str(info.value) == "unknown profile 'fast' (known: quick, default, thorough)"


#: every option the plugin adds, by dest, with the default a user gets
OPTION_DEFAULTS = {
    "conv2d_bundle": None,
    "conv2d_artifacts": None,
    "conv2d_target": "general",
    "conv2d_strict_targets": False,
    "conv2d_check_profile": "default",
    "conv2d_tolerance_policy": None,
    "conv2d_trusted_key": None,
    "conv2d_expect_hash": None,
    "conv2d_benchmark": False,
}
SHORT = ["bundle", "artifacts", "target", "strict-targets", "check-profile", "tolerance-policy", "trusted-key",
         "expect-hash", "benchmark"]  # fmt: skip


def test_the_options_and_their_defaults(request: pytest.FixtureRequest) -> None:
    """This very session has the plugin loaded without --bundle: its options are there, with their defaults
    (what each option says and accepts: the tests above, which call add_options themselves)."""
    config = request.config
    assert {name: config.getoption(name) for name in OPTION_DEFAULTS} == OPTION_DEFAULTS
    parser = config._parser
    group = next(g for g in parser._groups if g.name == "conv2d_bundle")
    assert group._arggroup.title == "conv2d-bundle: verify a deployment bundle"
    names = [opt.names()[0] for opt in group.options]
    # the namespaced names, then the short ones this session's conftests left free (all of them here)
    assert names == [f"--conv2d-{n}" for n in SHORT] + [f"--{n}" for n in SHORT]


class ArgparseGroup:
    """Stands in for pytest's option group: each option goes to a plain argparse parser (as pytest's do),
    and its help text is kept as written."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.argparser = argparse.ArgumentParser(exit_on_error=False)
        self.helps: dict[str, str] = {}
        self.options: list[Any] = []

    def addoption(self, *names: str, **attrs: Any) -> None:
        self.argparser.add_argument(*names, **attrs)
        self.helps[" ".join(names)] = attrs.get("help", "")
        self.options.append(SimpleNamespace(names=lambda: list(names)))


class RecordingParser:
    def __init__(self) -> None:
        self.groups: dict[str, ArgparseGroup] = {}
        self._anonymous = ArgparseGroup("custom options")

    @property
    def _groups(self) -> list[ArgparseGroup]:
        return list(self.groups.values())

    def getgroup(self, name: str, description: str = "") -> ArgparseGroup:
        return self.groups.setdefault(name, ArgparseGroup(description))


@pytest.fixture
def options() -> ArgparseGroup:
    parser = RecordingParser()
    plugin.add_options(parser)  # type: ignore[arg-type]
    assert plugin.add_short_names(parser) == [f"--{n}" for n in SHORT]  # type: ignore[arg-type]
    assert list(parser.groups) == ["conv2d_bundle"]  # one group, named after the plugin
    return parser.groups["conv2d_bundle"]


def test_the_option_group_and_its_help(options: ArgparseGroup) -> None:
    assert options.title == "conv2d-bundle: verify a deployment bundle"
    known = ", ".join(plugin.targets.target_names())
    helps = {
        "bundle": "bundle directory, or a hash prefix looked up in --artifacts",
        "artifacts": "artifacts directory for hash prefixes (default: $CONV2D_ARTIFACTS or ./artifacts)",
        "target": "deployment target(s) to verify, comma-separated: general, the installed targets "
        f"({known}) or all; general checks always run (default: general)",
        "strict-targets": "count every skipped check as failed (release pipelines that must verify everything)",
        "check-profile": "fuzzing budget of the property checks: quick, default (a few seconds) or thorough",
        "tolerance-policy": "the verifier's parity tolerances (YAML/JSON: per dtype and output, {atol, rtol}); "
        "a bundle may ask for tighter ones, never looser (default: the built-in policy)",
        "trusted-key": "Ed25519 public key (PEM): fail unless MANIFEST.json is signed by it",
        "benchmark": "record latency and throughput in the report",
    }
    assert options.helps == {
        **{f"--conv2d-{n}": f"{h} (short: --{n}, where free)" for n, h in helps.items()},
        "--conv2d-expect-hash": argparse.SUPPRESS,  # internal: pack create checks a bundle in staging
        **{f"--{n}": argparse.SUPPRESS for n in SHORT},  # listed once, under the namespaced name
    }


def test_option_defaults(options: ArgparseGroup) -> None:
    assert vars(options.argparser.parse_args([])) == OPTION_DEFAULTS


@pytest.mark.parametrize("prefix", ["--", "--conv2d-"])
def test_options_given(options: ArgparseGroup, prefix: str) -> None:
    given = options.argparser.parse_args(
        [
            f"{prefix}bundle=b",
            f"{prefix}artifacts=a",
            f"{prefix}target= ios, onnx,ios",
            f"{prefix}strict-targets",
            f"{prefix}check-profile=thorough",
            f"{prefix}tolerance-policy=p.yaml",
            f"{prefix}trusted-key=k.pem",
            f"{prefix}expect-hash=abc",
            f"{prefix}benchmark",
        ]
    )
    assert vars(given) == {
        "conv2d_bundle": "b",
        "conv2d_artifacts": "a",
        "conv2d_target": "ios,onnx",  # parsed: names stripped, each once
        "conv2d_strict_targets": True,
        "conv2d_check_profile": "thorough",
        "conv2d_tolerance_policy": "p.yaml",
        "conv2d_trusted_key": "k.pem",
        "conv2d_expect_hash": "abc",
        "conv2d_benchmark": True,
    }


def test_a_short_name_someone_else_has_stays_theirs() -> None:
    parser = RecordingParser()
    parser._anonymous.addoption("--target", dest="their_target")  # a conftest's own --target
    parser.getgroup("other").addoption("--benchmark", action="store_true")  # another plugin's
    plugin.add_options(parser)  # type: ignore[arg-type]
    added = plugin.add_short_names(parser)  # type: ignore[arg-type]
    assert "--target" not in added and "--benchmark" not in added and "--bundle" in added
    ours = parser.groups["conv2d_bundle"].argparser
    assert vars(ours.parse_args(["--conv2d-target", "onnx"]))["conv2d_target"] == "onnx"


@pytest.mark.parametrize(
    ("arg", "error"),
    [
        ("--target=nosuch", "argument --target: unknown target nosuch (known: general, "),
        ("--check-profile=fast", "argument --check-profile: unknown profile 'fast'"),
        ("--strict-targets=yes", "argument --strict-targets: ignored explicit argument 'yes'"),
        ("--benchmark=yes", "argument --benchmark: ignored explicit argument 'yes'"),
    ],
)
def test_bad_option_values_are_usage_errors(options: ArgparseGroup, arg: str, error: str) -> None:
    with pytest.raises(argparse.ArgumentError) as info:
        options.argparser.parse_args([arg])
    assert str(info.value).startswith(error)


# -- configure: the session's bundle, policy and report -------------------------------------------------------


def test_without_bundle_only_the_markers_are_registered() -> None:
    config = FakeConfig()
    plugin.pytest_configure(config)  # type: ignore[arg-type]
    assert [name for name, _ in config.ini_lines] == ["markers"] * 5
    assert [line.split(":")[0] for _, line in config.ini_lines] == [
        "conv2d_target(name)",
        "conv2d_per_target",
        "conv2d_format_check",
        "conv2d_needs_trusted_key",
        "conv2d_needs_benchmark",
    ]
    assert state_key not in config.stash and config.pluginmanager.plugins == {}


def test_a_bundle_directory_configures_the_session_and_its_report(tmp_path: Path) -> None:
    config = FakeConfig(bundle=str(tmp_path), target="onnx,ios", strict_targets=True, check_profile="quick")
    plugin.pytest_configure(config)  # type: ignore[arg-type]
    try:
        state = config.stash[state_key]
        assert state.bundle.bundle_dir == tmp_path.absolute()
        assert (state.targets, state.expect_hash, state.strict, state.profile) == (
            ["onnx", "ios"],
            tmp_path.name,
            True,
            "quick",
        )
        assert state.policy == TolerancePolicy()
        report = config.pluginmanager.plugins["conv2d_bundle_report"]
        assert isinstance(report, ValidationReport)
        assert (report.bundle_dir, report.exp_hash, report.targets) == (
            tmp_path.absolute(),
            tmp_path.name,
            ["onnx", "ios"],
        )
        assert report.strict is True and report.selection == ""
        assert report.wanted == plugin.Wanted(["onnx", "ios"], False, False)
        assert report.tolerance_policy == TolerancePolicy().as_dict()
        assert (report.profile, report.deviations) == ("quick", [])
        assert report.content_digest is None  # no MANIFEST.json here: a report without a digest never counts
        assert config.pluginmanager.plugins["conv2d_bundle_fixtures"] is plugin.check_fixtures
        assert len(config.cleanups) == 1
    finally:
        config.cleanup()
    plugin.pytest_unconfigure(config)  # type: ignore[arg-type]
    assert config.pluginmanager.plugins == {} and state_key not in config.stash
    plugin.pytest_unconfigure(config)  # type: ignore[arg-type]  # twice: nothing left to undo


def test_all_targets_add_an_all_report_and_options_reach_the_report(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("float32: {atol: 1.0e-6, rtol: 0}\n")
    config = FakeConfig(
        args=("checks/test_general.py",),
        bundle=str(tmp_path),
        target=plugin.parse_targets("all"),
        expect_hash="abc",
        trusted_key="key.pem",
        benchmark=True,
        tolerance_policy=str(policy),
    )
    config.options["target"] += ",all"
    plugin.pytest_configure(config)  # type: ignore[arg-type]
    try:
        state = config.stash[state_key]
        report = config.pluginmanager.plugins["conv2d_bundle_report"]
        assert report.targets == [*state.targets, "all"] and "onnx" in state.targets
        assert state.expect_hash == "abc" and report.exp_hash == "abc"
        assert report.wanted == plugin.Wanted(state.targets, True, True)
        assert report.selection == "checks/test_general.py"
        assert state.policy.caps["float32"] == (1e-6, 0.0)
        assert report.tolerance_policy["source"] == f"--tolerance-policy {policy}"
    finally:
        config.cleanup()


def test_the_report_is_bound_to_the_content_digest_and_names_deviations(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    BundleManifest.build(tmp_path).write(tmp_path)
    config = FakeConfig(bundle=str(tmp_path), target="onnx")
    config.ini["python_functions"] = ["test_[!p]*"]
    plugin.pytest_configure(config)  # type: ignore[arg-type]
    try:
        report = config.pluginmanager.plugins["conv2d_bundle_report"]
        assert report.content_digest == BundleManifest.load(tmp_path).content_digest
        assert report.content_digest.startswith("sha256:") and len(report.content_digest) == 71
        assert report.deviations == ["python_functions = test_[!p]*"]
    finally:
        config.cleanup()


def test_a_configuration_file_inside_the_bundle_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p helper\n")
    config = FakeConfig(bundle=str(tmp_path), target="onnx")
    config.inipath = tmp_path / "pytest.ini"
    with pytest.raises(pytest.UsageError, match=r"pytest.ini, inside the bundle under test"):
        plugin.pytest_configure(config)  # type: ignore[arg-type]
    assert state_key not in config.stash and config.pluginmanager.plugins == {}


def test_collecting_from_inside_the_bundle_is_refused(tmp_path: Path) -> None:
    config = FakeConfig(args=(str(tmp_path),), bundle=str(tmp_path), target="onnx")
    with pytest.raises(pytest.UsageError, match="lies inside the bundle under test"):
        plugin.pytest_configure(config)  # type: ignore[arg-type]
    config = FakeConfig(args=(str(tmp_path.parent / "elsewhere"),), bundle=str(tmp_path), target="onnx")
    config.inipath = tmp_path.parent / "pytest.ini"  # beside the bundle, not in it: the user's own
    plugin.pytest_configure(config)  # type: ignore[arg-type]
    config.cleanup()
    assert "conv2d_bundle_report" in config.pluginmanager.plugins


def test_blocking_the_report_plugin_removes_the_old_reports_and_refuses(tmp_path: Path) -> None:
    reports = tmp_path / "validation"
    reports.mkdir()
    for name in ("general", "onnx", "ios"):
        (reports / f"{name}_validation.json").write_text('{"passed": true}')
    config = FakeConfig(bundle=str(tmp_path), target="onnx")
    config.pluginmanager.blocked.add("conv2d_bundle_report")
    with pytest.raises(pytest.UsageError, match=r"removed: general_validation.json, onnx_validation.json"):
        plugin.pytest_configure(config)  # type: ignore[arg-type]
    assert sorted(p.name for p in reports.iterdir()) == ["ios_validation.json"]  # not this run's target


@pytest.mark.parametrize("kind", ["worker", "collectonly"])
def test_no_report_on_xdist_workers_or_with_collect_only(tmp_path: Path, kind: str) -> None:
    config = FakeConfig(collectonly=kind == "collectonly", bundle=str(tmp_path), target="onnx")
    if kind == "worker":
        config.workerinput = {}  # type: ignore[attr-defined]
    plugin.pytest_configure(config)  # type: ignore[arg-type]
    config.cleanup()
    assert state_key in config.stash
    assert list(config.pluginmanager.plugins) == ["conv2d_bundle_fixtures"]


def test_a_bundle_reference_that_is_not_found_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = FakeConfig(bundle="deadbeef", artifacts=str(tmp_path / "given"))
    with pytest.raises(pytest.UsageError) as info:
        plugin.pytest_configure(config)  # type: ignore[arg-type]
    missing = "--bundle deadbeef: no bundle deadbeef: artifacts directory {} does not exist"
    assert str(info.value) == missing.format(tmp_path / "given")
    monkeypatch.setenv("CONV2D_ARTIFACTS", str(tmp_path / "from-env"))
    with pytest.raises(pytest.UsageError) as info:
        plugin._resolve_bundle(FakeConfig(), "deadbeef")  # type: ignore[arg-type]
    assert str(info.value) == missing.format(tmp_path / "from-env")


def test_a_bundle_in_a_registry_is_checked_from_the_pull_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conv2d_bundle.oci import cache

    pulled: list[str] = []

    def pull(ref: str) -> Path:
        pulled.append(ref)
        if ref.endswith(":gone"):
            raise BundleError("registry.example/dogs:gone: manifest unknown")
        return tmp_path

    monkeypatch.setattr(cache, "pull_from_registry", pull)
    bundle = plugin._resolve_bundle(FakeConfig(), "oci://registry.example/dogs:v1")  # type: ignore[arg-type]
    assert bundle.bundle_dir == tmp_path.absolute()
    with pytest.raises(pytest.UsageError) as info:
        plugin._resolve_bundle(FakeConfig(), "oci://registry.example/dogs:gone")  # type: ignore[arg-type]
    assert str(info.value) == (
        "--bundle oci://registry.example/dogs:gone: registry.example/dogs:gone: manifest unknown"
    )
    assert pulled == ["oci://registry.example/dogs:v1", "oci://registry.example/dogs:gone"]


def test_a_malformed_tolerance_policy_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("float32: {atol: -1}\n")
    with pytest.raises(pytest.UsageError) as info:
        plugin._policy(FakeConfig(tolerance_policy=str(bad)))  # type: ignore[arg-type]
    assert (
        str(info.value)
        == f"--tolerance-policy: tolerance policy {bad}: float32.atol: expected a number >= 0, got -1"
    )


# -- which checks a session keeps --------------------------------------------------------------------------


def test_other_suites_items_are_left_alone_without_a_bundle() -> None:
    config = FakeConfig()
    items: list[Any] = [FakeItem(), FakeItem(pytest.mark.slow)]
    plugin.pytest_collection_modifyitems(config, items)  # type: ignore[arg-type]
    assert len(items) == 2 and config.deselected == []


@pytest.mark.parametrize("mark", [pytest.mark.conv2d_target("general"), pytest.mark.conv2d_per_target])
def test_bundle_checks_without_a_bundle_are_a_usage_error(mark: pytest.MarkDecorator) -> None:
    with pytest.raises(pytest.UsageError) as info:
        plugin.pytest_collection_modifyitems(FakeConfig(), [FakeItem(mark)])  # type: ignore[arg-type, list-item]
    assert (
        str(info.value)
        == "bundle checks need a bundle: pass --bundle DIR (or a hash prefix with --artifacts)"
    )


def test_only_the_wanted_checks_are_kept_and_the_rest_deselected() -> None:
    config = FakeConfig()
    config.stash[state_key] = _state(["onnx"])
    theirs = FakeItem(name="theirs")
    general = FakeItem(pytest.mark.conv2d_target("general"), name="general")
    onnx = FakeItem(onnx_mark(), name="onnx")
    ios = FakeItem(pytest.mark.conv2d_target("ios"), name="ios")
    signed = FakeItem(
        pytest.mark.conv2d_target("general"), pytest.mark.conv2d_needs_trusted_key, name="signed"
    )
    unparametrized = FakeItem(pytest.mark.conv2d_per_target, name="per-target without a target")
    items: list[Any] = [theirs, general, onnx, ios, signed, unparametrized]
    plugin.pytest_collection_modifyitems(config, items)  # type: ignore[arg-type]
    assert items == [theirs, general, onnx]
    assert config.deselected == [ios, signed, unparametrized]
    all_wanted: list[Any] = [theirs, general, onnx]
    plugin.pytest_collection_modifyitems(config, all_wanted)  # type: ignore[arg-type]
    assert all_wanted == [theirs, general, onnx] and len(config.deselected) == 3


# -- a missing format: one failure, the rest skipped -----------------------------------------------------------


def test_a_targets_checks_are_skipped_when_its_format_is_missing() -> None:
    state = _state(["onnx"], missing_formats={"onnx": "model.onnx is missing", "ios": None})
    with pytest.raises(pytest.skip.Exception) as info:
        plugin.pytest_runtest_setup(FakeItem(onnx_mark(), state=state))  # type: ignore[arg-type]
    assert (
        info.value.msg == "not checked: model.onnx is missing (see test_targets.py::test_format_built[onnx])"
    )
    for item in (
        FakeItem(onnx_mark(), pytest.mark.conv2d_format_check, state=state),  # the one check that says so
        FakeItem(pytest.mark.conv2d_target("ios"), state=state),  # its format is there
        FakeItem(pytest.mark.conv2d_target("general"), state=_state([], missing_formats={"general": "x"})),
        FakeItem(state=state),
        FakeItem(onnx_mark()),  # no bundle session
    ):
        assert plugin.pytest_runtest_setup(item) is None  # type: ignore[arg-type]


# -- what a check's report carries ---------------------------------------------------------------------------


def _raised(exc: BaseException) -> pytest.ExceptionInfo[BaseException]:
    with pytest.raises(BaseException) as info:
        raise exc
    return info


def _makereport(
    item: Any, when: str, outcome: str = "passed", excinfo: Any = None, longrepr: Any = None
) -> Any:
    report = pytest.TestReport("x.py::t", ("x.py", 1, "t"), {}, outcome, longrepr, when)  # type: ignore[arg-type]
    hook = plugin.pytest_runtest_makereport(item, SimpleNamespace(when=when, excinfo=excinfo))  # type: ignore[arg-type]
    next(hook)
    with pytest.raises(StopIteration):
        hook.send(SimpleNamespace(get_result=lambda: report))
    return report


def test_a_checks_report_carries_its_target_details_and_versions() -> None:
    item = FakeItem(onnx_mark(), state=_state(["onnx"]))
    item.stash[details_key] = {"max_abs_error": 1e-7}
    call = _makereport(item, "call")
    assert call.conv2d_target == "onnx" and call.conv2d_details == {"max_abs_error": 1e-7}
    assert not hasattr(call, "conv2d_versions") and not hasattr(call, "conv2d_message")
    teardown = _makereport(item, "teardown")
    assert teardown.conv2d_versions["python"] and teardown.conv2d_versions["pytest"] == pytest.__version__
    plain = _makereport(FakeItem(state=_state(["onnx"])), "call")
    assert not hasattr(plain, "conv2d_target")  # another suite's test


def test_a_failed_checks_report_carries_its_message() -> None:
    item = FakeItem(onnx_mark(), state=_state(["onnx"]))
    failed = _makereport(item, "call", "failed", _raised(AssertionError("parity off\nassert 1 == 2")))
    assert failed.conv2d_message == "parity off"
    assert not hasattr(failed, "conv2d_details")
    passed = _makereport(item, "call", "passed", _raised(AssertionError("x")))  # e.g. an xfail: not a failure
    assert not hasattr(passed, "conv2d_message")


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (pytest.fail.Exception("the check's own words"), "the check's own words"),
        (AssertionError("first part\nassert x\nmore\nassert y"), "first part"),
        (AssertionError("\nassert x"), "assertion failed"),
        (AssertionError(), "assertion failed"),
        (ValueError("bad value\nsecond line"), "ValueError: bad value"),
        (KeyError("k"), "KeyError: 'k'"),
        (RuntimeError(), "RuntimeError"),
        (RuntimeError("\nsecond line"), "RuntimeError"),
        (ValueError("expected one of: "), "ValueError: expected one of: "),  # the message as it is
    ],
)
def test_failure_messages(exc: BaseException, message: str) -> None:
    assert plugin._failure_message(_raised(exc)) == message


@pytest.mark.parametrize("when", ["setup", "call", "teardown"])
def test_strict_targets_turns_a_skip_into_a_failure(when: str) -> None:
    item = FakeItem(onnx_mark(), state=_state(["onnx"], strict=True))
    report = _makereport(item, when, "skipped", longrepr=("x.py", 1, "Skipped: no runtime"))
    assert report.outcome == "failed"
    assert report.longrepr == "--strict-targets: not verified: Skipped: no runtime"
    assert report.conv2d_message == "not verified (--strict-targets): no runtime"
    text = _makereport(item, when, "skipped", longrepr="skipped as text")
    assert text.longrepr == "--strict-targets: not verified: skipped as text"
    lenient = _makereport(
        FakeItem(onnx_mark(), state=_state(["onnx"])), when, "skipped", longrepr=("x", 1, "r")
    )
    assert lenient.outcome == "skipped"
    no_session = _makereport(FakeItem(onnx_mark()), when, "skipped", longrepr=("x", 1, "r"))
    assert no_session.outcome == "skipped" and not hasattr(no_session, "conv2d_target")


# -- parametrizing the checks from the bundle ------------------------------------------------------------------


class FakeMetafunc:
    def __init__(self, fixturenames: list[str], *marks: pytest.MarkDecorator, state: Any = None) -> None:
        self.config = FakeConfig()
        if state is not None:
            self.config.stash[state_key] = state
        self.definition = FakeItem(*marks)
        self.fixturenames = fixturenames
        self.calls: list[tuple[str, list[Any], dict[str, Any]]] = []

    def parametrize(self, name: str, values: list[Any], **kw: Any) -> None:
        self.calls.append((name, values, kw))


def _bundle(outputs: Any = ("confidence", "codes"), rows: Any = 64) -> Any:
    model = SimpleNamespace(output_names=outputs)
    return SimpleNamespace(config=SimpleNamespace(model=model, reference_options={"num_samples": rows}))


def test_checks_are_parametrized_per_target_output_and_batch_size() -> None:
    state = _state(["onnx", "ios"], bundle=_bundle(rows=5))
    metafunc = FakeMetafunc(
        ["target_name", "output_name", "batch_size"], pytest.mark.conv2d_per_target, state=state
    )
    plugin.pytest_generate_tests(metafunc)  # type: ignore[arg-type]
    (target, targets, kw), output, batch = metafunc.calls
    assert target == "target_name" and kw == {"scope": "session"}
    assert [(p.values, p.id, [m.args for m in p.marks]) for p in targets] == [
        (("onnx",), "onnx", [("onnx",)]),
        (("ios",), "ios", [("ios",)]),
    ]
    assert all(m.name == "conv2d_target" for p in targets for m in p.marks)
    assert output == ("output_name", ["confidence", "codes"], {})
    assert batch == ("batch_size", [1, 5], {})  # the sizes of this bundle: 5 golden windows


def test_a_target_check_gets_its_outputs_even_from_an_unreadable_config() -> None:
    class Unreadable:
        @property
        def config(self) -> Any:
            raise ValueError("config.yaml: bad")

    metafunc = FakeMetafunc(["output_name"], onnx_mark(), state=_state(["onnx"], bundle=Unreadable()))
    plugin.pytest_generate_tests(metafunc)  # type: ignore[arg-type]
    assert metafunc.calls == [("output_name", ["<config.yaml unreadable>"], {})]


@pytest.mark.parametrize("with_state", [True, False])
def test_other_tests_are_not_parametrized(with_state: bool) -> None:
    state = _state(["onnx"], bundle=_bundle()) if with_state else None
    unmarked = FakeMetafunc(["target_name", "output_name", "batch_size"], state=state)
    plugin.pytest_generate_tests(unmarked)  # type: ignore[arg-type]
    marked = FakeMetafunc(["target_name", "output_name", "batch_size"], onnx_mark(), state=None)
    plugin.pytest_generate_tests(marked)  # type: ignore[arg-type]
    assert unmarked.calls == [] and marked.calls == []


@pytest.mark.parametrize(
    ("rows", "sizes"),
    [
        (64, [1, 7, 64]),
        (100, [1, 7, 64]),
        (10, [1, 7, 10]),
        (7, [1, 7]),
        (3, [1, 3]),
        (1, [1]),
        ("bad", [1, 7, 64]),
    ],
)
def test_parity_batch_sizes_are_capped_at_the_golden_rows(rows: Any, sizes: list[int]) -> None:
    assert plugin.parity_batch_sizes(_bundle(rows=rows)) == sizes
    assert plugin.PARITY_BATCH_SIZES == (1, 7, 64)


def test_parity_batch_sizes_of_an_unreadable_config() -> None:
    assert plugin.parity_batch_sizes(SimpleNamespace()) == [1, 7, 64]


# -- the checks directory ------------------------------------------------------------------------------------


def test_only_the_checks_directory_of_a_bundle_session_is_ours(tmp_path: Path) -> None:
    with_state = SimpleNamespace(config=FakeConfig())
    with_state.config.stash[state_key] = _state(["onnx"])
    assert plugin.pytest_collect_directory(tmp_path, with_state) is None  # type: ignore[arg-type]
    without = SimpleNamespace(config=FakeConfig())
    assert plugin.pytest_collect_directory(plugin.CHECKS_DIR, without) is None  # type: ignore[arg-type]


def test_the_checks_package_adds_each_selected_targets_own_checks() -> None:
    """Each target's structural checks are made by pytest's module hook, with the checks package as their
    parent; a module that hook declines (None, e.g. ignored by a plugin) is left out."""
    made: list[tuple[Path, Path, Any]] = []

    class Session:
        def gethookproxy(self, fspath: Path) -> Any:
            def makemodule(module_path: Path, parent: Any) -> Any:
                made.append((fspath, module_path, parent))
                return None if module_path.name == "test_ios.py" else f"module {module_path.name}"

            return SimpleNamespace(pytest_pycollect_makemodule=makemodule)

    package = SimpleNamespace(config=FakeConfig(), session=Session())
    package.config.stash[state_key] = _state(["onnx", "ios"])
    modules = list(plugin.target_check_modules(package))  # type: ignore[arg-type]
    assert modules == ["module test_onnx.py"]
    paths = [plugin.targets.get_target(t).check_module_path for t in ("onnx", "ios")]
    assert made == [(p, p, package) for p in paths]


def test_all_is_every_target_the_bundle_was_built_for(tmp_path: Path) -> None:
    import json

    formats = {
        "onnx": {"status": "built"},
        "coreml": {"status": "built"},
        "hailo": {"status": "failed", "reason": "converter bug"},  # asked for: it stays, and fails
        "executorch": {"status": "not_requested", "reason": "built only when asked for"},
    }
    (tmp_path / "metadata.json").write_text(
        json.dumps({"exp_hash": "a" * 12, "created_at": "t", "formats": formats})
    )
    bundle = Bundle(tmp_path)
    assert plugin._session_targets(bundle, ["all"]) == ["onnx", "ios", "hailo"]
    assert plugin._session_targets(bundle, ["all", "executorch"]) == ["onnx", "ios", "hailo", "executorch"]
    assert plugin._session_targets(bundle, ["executorch"]) == ["executorch"]  # named: always runs
    (tmp_path / "metadata.json").write_text("{")  # unreadable: every target runs, the general checks fail
    assert plugin._session_targets(Bundle(tmp_path), ["all"]) == list(plugin.targets.target_names())
