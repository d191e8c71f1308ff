"""The fixtures the bundle checks use: the bundle, its metadata, golden data, runtime sessions, tolerances.

Registered as a plugin by ``pytest_plugin`` only when ``--bundle`` is given, so that a project that merely has
this package installed keeps its own ``bundle``, ``metadata`` or ``manifest`` fixtures untouched. Nothing here
imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.tolerance import TolerancePolicy

PROFILES = {"seal": 8, "quick": 12, "default": 25, "thorough": 500}  # hypothesis examples per fuzz check
state_key = pytest.StashKey["BundleSession"]()
details_key = pytest.StashKey[dict]()


@dataclass(frozen=True)
class BundleSession:
    """What one pytest session verifies: the bundle, the selected targets, the options."""

    bundle: Any
    targets: list[str]
    expect_hash: str
    strict: bool
    profile: str
    policy: TolerancePolicy

    @property
    def fuzz_examples(self) -> int:
        return PROFILES[self.profile]


def _state(request: pytest.FixtureRequest) -> BundleSession:
    state = request.config.stash.get(state_key, None)
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

    try:
        return np.load(bundle.path("reference/inputs.npy"), allow_pickle=False)
    except (OSError, ValueError) as exc:  # missing, truncated, pickled or not .npy at all
        pytest.fail(f"reference/inputs.npy cannot be read: {_first_line(exc)}")


@pytest.fixture(scope="session")
def reference_outputs(bundle: Any) -> Any:
    import zipfile

    import numpy as np

    try:
        with np.load(bundle.path("reference/outputs.npz"), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        pytest.fail(f"reference/outputs.npz cannot be read: {_first_line(exc)}")


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
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's Fail/InvalidGraph/...: the export does not load, a failure
        pytest.fail(f"onnxruntime cannot load models/model.onnx: {_first_line(exc)}")


@pytest.fixture
def check_details(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A dict a check fills with figures (errors, tolerances); they go into the JSON report, not JUnit."""
    details: dict[str, Any] = {}
    request.node.stash[details_key] = details
    return details


@pytest.fixture(scope="session")
def tolerance_policy(bundle_session: BundleSession) -> TolerancePolicy:
    """The verifier's tolerance policy (built in, or ``--tolerance-policy FILE``): never the bundle's."""
    return bundle_session.policy


@pytest.fixture
def compare_output(
    tolerance_policy: TolerancePolicy, model_spec: Any, check_details: dict[str, Any]
) -> Callable[[str, Any, Any], Any]:
    """Compare one output with its golden values under the verifier's policy; figures go into the report.

    A bundle that asks for a looser tolerance than the policy's cap fails here, naming output, ask and cap.
    """
    from conv2d_bundle.parity import compare

    def run(output_name: str, actual: Any, expected: Any) -> Any:
        __tracebackhide__ = True
        tolerance = tolerance_policy.resolve(model_spec.output(output_name))
        check_details["tolerance"] = tolerance.as_dict()
        if tolerance.violation:
            pytest.fail(tolerance.violation)
        stats = compare(
            output_name,
            actual,
            expected,
            integer=tolerance.exact,
            atol=tolerance.atol,
            rtol=tolerance.rtol,
        )
        check_details.update(stats.as_dict())
        return stats

    return run


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


def golden_rows(reference_inputs: Any, batch_size: int) -> None:
    """A parity item compares exactly the rows its id names: fewer golden windows is a failure."""
    __tracebackhide__ = True
    if reference_inputs.shape[0] < batch_size:
        pytest.fail(
            f"reference/inputs.npy holds {reference_inputs.shape[0]} windows; parity at batch {batch_size} "
            f"needs {batch_size}"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
