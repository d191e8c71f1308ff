"""The pytest plugin behind ``pytest checks --bundle B --target T``: options, fixtures and hooks only.

Registered by the ``pytest11`` entry point ``conv2d_bundle`` (so ``-p no:conv2d_bundle`` works) and, for a
source checkout without the entry point, by the root ``conftest.py``. Logic lives in the library; the
report is :class:`conv2d_bundle.report.ValidationReport`. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle import hypothesis_storage
from conv2d_bundle.report import TARGETS, ValidationReport

KNOWN_TARGETS = ("general", *TARGETS, "all")
PROFILES = {"seal": 8, "quick": 12, "default": 25, "thorough": 500}  # hypothesis examples per fuzz check
_state_key = pytest.StashKey["BundleSession"]()
_details_key = pytest.StashKey[dict]()


class BundleSession:
    """What one pytest session verifies: the bundle, the selected targets, the options."""

    def __init__(self, bundle: Any, targets: list[str], expect_hash: str, strict: bool, profile: str) -> None:
        self.bundle = bundle
        self.targets = targets
        self.expect_hash = expect_hash
        self.strict = strict
        self.fuzz_examples = PROFILES[profile]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conv2d_bundle", "conv2d-bundle: verify a deployment bundle")
    group.addoption("--bundle", help="bundle directory, or a hash prefix looked up in --artifacts")
    group.addoption(
        "--artifacts",
        help="artifacts directory for hash prefixes (default: $CONV2D_ARTIFACTS or ./artifacts)",
    )
    group.addoption(
        "--target",
        default="general",
        type=parse_targets,
        help=f"deployment target(s) to verify, comma-separated: {', '.join(KNOWN_TARGETS)}; general checks "
        "always run (default: general)",
    )
    group.addoption(
        "--strict-targets",
        action="store_true",
        help="count every skipped check as failed (release pipelines that must verify everything)",
    )
    group.addoption(
        "--check-profile",
        default="default",
        type=parse_profile,  # not choices=: "seal" (create's, at seal time) works but is not offered
        help="fuzzing budget of the property checks: quick, default (a few seconds) or thorough",
    )
    group.addoption(
        "--trusted-key", help="Ed25519 public key (PEM): fail unless MANIFEST.json is signed by it"
    )
    group.addoption("--expect-hash", help=argparse_suppress(), default=None)
    group.addoption("--benchmark", action="store_true", help="record latency and throughput in the report")


def parse_targets(value: str) -> str:
    """``onnx``, ``ios,hailo`` or ``all``: each name known, or a usage error listing the known ones."""
    import argparse

    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in KNOWN_TARGETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown target {', '.join(unknown) or repr(value)} (known: {', '.join(KNOWN_TARGETS)})"
        )
    return ",".join(dict.fromkeys(names))


def parse_profile(value: str) -> str:
    import argparse

    if value not in PROFILES:
        raise argparse.ArgumentTypeError(f"unknown profile {value!r} (known: quick, default, thorough)")
    return value


def selected_targets(value: str) -> list[str]:
    """The targets whose checks run besides the general ones, in a stable order."""
    names = value.split(",")
    if "all" in names:
        return list(TARGETS)
    return [t for t in TARGETS if t in names]


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


def _resolve_bundle(config: pytest.Config, ref: str) -> Any:
    from conv2d_bundle.bundle import Bundle, default_artifacts_dir, get_bundle
    from conv2d_bundle.errors import BundleError

    path = Path(ref)
    if path.is_dir():
        return Bundle(path)
    artifacts = Path(config.getoption("artifacts") or default_artifacts_dir())
    try:
        return get_bundle(artifacts, ref)
    except BundleError as exc:
        raise pytest.UsageError(f"--bundle {ref}: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "target(name): the deployment target a bundle check belongs to")
    config.addinivalue_line("markers", "needs_trusted_key: runs only with --trusted-key")
    config.addinivalue_line("markers", "needs_benchmark: runs only with --benchmark")
    ref = config.getoption("bundle", None)
    if not ref:
        return
    bundle = _resolve_bundle(config, ref)
    config.add_cleanup(hypothesis_storage.isolate())  # no .hypothesis/ in the working directory
    target = config.getoption("target")
    targets = selected_targets(target)
    state = BundleSession(
        bundle,
        targets,
        config.getoption("expect_hash") or bundle.bundle_dir.name,
        config.getoption("strict_targets"),
        config.getoption("check_profile"),
    )
    config.stash[_state_key] = state
    if not hasattr(config, "workerinput"):  # xdist workers send their results to the controller
        report_targets = targets + (["all"] if "all" in target.split(",") else [])
        config.pluginmanager.register(
            ValidationReport(
                bundle.bundle_dir,
                state.expect_hash,
                report_targets,
                strict=state.strict,
                selection=_selection(config),
            ),
            "conv2d_bundle_report",
        )


def _selection(config: pytest.Config) -> str:
    """The -k / -m expressions of this run, if any: its reports then cover only some checks."""
    parts = [
        f"-k {config.getoption('keyword')}" if config.getoption("keyword") else "",
        f"-m {config.getoption('markexpr')}" if config.getoption("markexpr") else "",
    ]
    return " ".join(p for p in parts if p)


def _target_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("target")
    return str(marker.args[0]) if marker and marker.args else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    checks = [item for item in items if _target_of(item)]
    if not checks:
        return
    state = config.stash.get(_state_key, None)
    if state is None:
        raise pytest.UsageError(
            "bundle checks need a bundle: pass --bundle DIR (or a hash prefix with --artifacts)"
        )
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    signed = bool(config.getoption("trusted_key"))
    for item in items:
        t = _target_of(item)
        selected = t is None or t == "general" or t in state.targets
        if item.get_closest_marker("needs_trusted_key") and not signed:
            selected = False  # signatures are checked when a trusted key is given, as with gpg --verify
        if item.get_closest_marker("needs_benchmark") and not config.getoption("benchmark"):
            selected = False  # timings are recorded only when asked for: they slow every verify down
        (keep if selected else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    target = _target_of(item)
    if target is None:
        return
    report = outcome.get_result()
    report.conv2d_target = target
    details = item.stash.get(_details_key, None)
    if details:
        report.conv2d_details = dict(details)
    if call.excinfo is not None and report.failed:
        report.conv2d_message = _failure_message(call.excinfo)
    state = item.config.stash.get(_state_key, None)
    if report.skipped and state is not None and state.strict:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"--strict-targets: not verified: {reason}"
        report.conv2d_message = f"not verified (--strict-targets): {str(reason).removeprefix('Skipped: ')}"


def _failure_message(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    exc = excinfo.value
    if isinstance(exc, pytest.fail.Exception):
        return str(exc.msg)
    text = str(exc)
    if isinstance(exc, AssertionError):
        return text.split("\nassert ", 1)[0].strip() or "assertion failed"
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


# -- fixtures --------------------------------------------------------------------------------------
def _state(request: pytest.FixtureRequest) -> BundleSession:
    state = request.config.stash.get(_state_key, None)
    if state is None:
        pytest.fail("no bundle selected: pass --bundle")
    return state


@pytest.fixture(scope="session")
def bundle_session(request: pytest.FixtureRequest) -> BundleSession:
    return _state(request)


@pytest.fixture(scope="session")
def bundle(bundle_session: BundleSession) -> Any:
    """The bundle under test: a read-only :class:`conv2d_bundle.bundle.Bundle`."""
    return bundle_session.bundle


@pytest.fixture(scope="session")
def metadata(bundle: Any) -> Any:
    return bundle.metadata


@pytest.fixture(scope="session")
def manifest(bundle: Any) -> Any:
    return bundle.manifest


@pytest.fixture(scope="session")
def model_spec(bundle: Any) -> Any:
    """The validated model section of the bundle's config.yaml."""
    return bundle.config.model


@pytest.fixture(scope="session")
def reference_inputs(bundle: Any) -> Any:
    import numpy as np

    return np.load(bundle.path("reference/inputs.npy"), allow_pickle=False)


@pytest.fixture(scope="session")
def reference_outputs(bundle: Any) -> Any:
    import numpy as np

    with np.load(bundle.path("reference/outputs.npz"), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="session")
def onnx_model(bundle: Any) -> Any:
    """The parsed ``models/model.onnx`` (onnx ModelProto), loaded once."""
    import onnx

    path = bundle.path("models/model.onnx")
    if not path.is_file():
        pytest.fail(f"models/model.onnx is missing ({bundle.format_info('onnx').get('reason', 'not built')})")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and others for a damaged file
        pytest.fail(f"models/model.onnx cannot be parsed: {type(exc).__name__}: {exc}")


@pytest.fixture(scope="session")
def onnx_session(bundle: Any) -> Any:
    """One onnxruntime session on ``models/model.onnx`` for the whole pytest session."""
    import onnxruntime as ort

    path = bundle.path("models/model.onnx")
    if not path.is_file():
        pytest.fail(f"models/model.onnx is missing ({bundle.format_info('onnx').get('reason', 'not built')})")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture
def check_details(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A dict a check fills with figures (errors, tolerances); they go into the JSON report, not JUnit."""
    details: dict[str, Any] = {}
    request.node.stash[_details_key] = details
    return details


@pytest.fixture(scope="session")
def trusted_key(request: pytest.FixtureRequest) -> Path | None:
    value = request.config.getoption("trusted_key")
    return Path(value) if value else None


@pytest.fixture(scope="session")
def benchmark_enabled(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("benchmark"))


@pytest.fixture(scope="session")
def fuzz_examples(bundle_session: BundleSession) -> int:
    return bundle_session.fuzz_examples


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize from the bundle's config: one item per output, so a report names the output at fault.

    If the config cannot be read the items still exist (named after the error) and fail when they run:
    a broken bundle shows as failed checks, never as a collection error.
    """
    if "output_name" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash.get(_state_key, None)
    names: list[str]
    try:
        names = list(state.bundle.config.model.output_names) if state else []
    except Exception:  # any unreadable config: the check itself reports it
        names = ["<config.yaml unreadable>"]
    metafunc.parametrize("output_name", names or ["<no bundle>"])
