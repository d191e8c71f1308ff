"""The fixtures the bundle checks use: the bundle, its metadata, golden data, runtime sessions, tolerances.

Registered as a plugin by ``pytest_plugin`` only when ``--bundle`` is given, so that a project that merely has
this package installed keeps its own ``bundle``, ``metadata`` or ``manifest`` fixtures untouched. Nothing here
imports torch.
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.parity.tolerance import TolerancePolicy

#: hypothesis examples drawn per fuzz check; the fuzz checks first run fixed examples (every valid input kind,
#: every invalid case: parity/fuzzing.py), so every kind is covered at any budget. ``seal`` (create's checks
#: before sealing) draws none: the checks are deterministic there, and hypothesis is not imported; exploring
#: batch sizes is verify's. The default is sized to bench row 3 (all the ONNX checks within 3x the parity-only
#: run; each drawn batch holds up to 256 windows): more belongs to ``thorough``
PROFILES = {"seal": 0, "quick": 4, "default": 6, "thorough": 500}

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

    @functools.cached_property
    def missing_formats(self) -> dict[str, str | None]:
        """Per selected target, what of its format the bundle lacks (None: present)."""
        from conv2d_bundle.errors import BundleError
        from conv2d_bundle.targets import get_target

        out: dict[str, str | None] = {}
        for name in self.targets:
            try:
                out[name] = get_target(name).missing(self.bundle)
            except BundleError:  # unreadable metadata: the general checks say so; the target's checks run
                out[name] = None
        return out


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
    """The bundle under test: a read-only :class:`conv2d_bundle.bundle.store.Bundle`."""
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


@pytest.fixture(scope="session")
def trusted_key(request: pytest.FixtureRequest) -> Path | None:
    value = request.config.getoption("conv2d_trusted_key")
    return Path(value) if value else None


@pytest.fixture(scope="session")
def benchmark_enabled(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("conv2d_benchmark"))


@pytest.fixture
def fuzz_counterexamples(request: pytest.FixtureRequest, bundle: Any) -> Any:
    """The saved counterexamples of the requesting fuzz check (:class:`conv2d_bundle.parity.fuzzing.Counterexamples`)
    and the command that replays them."""
    from conv2d_bundle.parity.fuzzing import Counterexamples
    from conv2d_bundle.verify.plan import check_id, target_of

    item = request.node
    target = target_of(item) or "general"
    name = getattr(item, "originalname", None) or item.name
    where = shlex.quote(str(bundle.bundle_dir))
    replay = f"pytest --pyargs conv2d_bundle.checks --bundle {where} --target {target} -k {name}"
    return Counterexamples(Path(bundle.bundle_dir), check_id(item.nodeid), replay)


@pytest.fixture(scope="session")
def fuzz_examples(bundle_session: BundleSession) -> int:
    return bundle_session.fuzz_examples


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
