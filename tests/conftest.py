"""Shared fixtures for the project's own tests.

The example bundle is built once per test run and handed out read-only: the xdist workers share one
artifacts directory (``shared_artifacts``), where the first to get there builds it under the bundler's own
per-hash build lock and the other finds it, as two ``create``s of the same inputs do. Tests that break a
bundle take ``bundle_copy``, a private copy under its own hash name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = ROOT / "examples" / "dogs.yaml"
EXAMPLE_MODEL = ROOT / "examples" / "conv2d_fsq.pt"
# ../shared beside the clone; `make mutation` runs the tests from a copy (mutants/) and says where it is
SHARED = Path(os.environ.get("CONV2D_SHARED") or ROOT.parent / "shared")


def shared_artifacts(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str
) -> Path:
    """An artifacts directory that every xdist worker of this run sees (the workers' base temporary
    directories are siblings in the controller's), so a bundle built there once serves them all.

    Only for bundles built with ``ArtifactBundler.create_bundle``, which takes the per-hash build lock:
    a worker that comes second waits for the build and finds the bundle (``already_existed``). The bundle
    is shared, so it is for read-only use. One ``name`` per set of formats: the hash does not include them."""
    base = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker: its base is <controller's base>/<worker id>
        base = base.parent
    out = base / "run-shared" / name
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")
def example_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example bundle with every format this installation builds (read-only use; built once per run,
    shared by the xdist workers).

    ``$CONV2D_TEST_BUNDLE`` names one built beforehand: `make mutation` builds it once for thousands of
    short sessions (the bundle's own code is not what they mutate)."""
    from conv2d_bundle.lifecycle.create import ArtifactBundler

    prebuilt = os.environ.get("CONV2D_TEST_BUNDLE")
    if prebuilt:
        return Path(prebuilt)

    out = shared_artifacts(request, tmp_path_factory, "example-artifacts")
    return ArtifactBundler(out).create_bundle(EXAMPLE_CONFIG, EXAMPLE_MODEL, exp_name="dogs_v1").bundle_dir


@pytest.fixture(scope="session")
def all_formats_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example bundle with all four formats (ExecuTorch too, which ``example_bundle`` leaves out: it is
    built only when asked for): built once per run, shared by the xdist workers, read-only use. The ExecuTorch
    checks and the model zoo's built-in entry take it."""
    from conv2d_bundle.lifecycle.create import ArtifactBundler

    out = shared_artifacts(request, tmp_path_factory, "all-formats-artifacts")
    return (
        ArtifactBundler(out)
        .create_bundle(EXAMPLE_CONFIG, EXAMPLE_MODEL, formats="onnx,coreml,hailo,executorch")
        .bundle_dir
    )


@pytest.fixture
def bundle_copy(example_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the example bundle (same hash-named directory), without validation reports."""
    dst = tmp_path / "artifacts" / example_bundle.name
    shutil.copytree(example_bundle, dst, symlinks=True)
    shutil.rmtree(dst / "validation", ignore_errors=True)
    return dst


def reseal(bundle: Path, *relpaths: str) -> None:
    """Make MANIFEST.json agree with deliberately changed files (a tamperer who re-seals)."""
    from conv2d_bundle.bundle.manifest import BundleManifest

    BundleManifest.build(bundle).write(bundle)


def checks_subprocess(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``pytest checks ...`` from the repository root in a subprocess, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "checks"), "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


def create_args(out: Path, *extra: str, formats: str = "onnx") -> list[str]:
    """``pack create`` of the example into ``out`` (ONNX only unless told), for the CLI helpers."""
    return [
        "pack",
        "create",
        "--config",
        str(EXAMPLE_CONFIG),
        "--model",
        str(EXAMPLE_MODEL),
        "--output-dir",
        str(out),
        "--formats",
        formats,
        *extra,
    ]


@pytest.fixture
def run_checks() -> Callable[..., tuple[int, dict[str, Any] | None, str]]:
    """``pytest checks --bundle B --target T --check-profile quick``: (exit code, <target>_validation.json, output);
    in this process unless ``env`` is given (a test hiding a module from the checks needs its own process)."""

    def run(
        bundle: Path,
        target: str = "onnx",
        *extra: str,
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> tuple[int, dict[str, Any] | None, str]:
        shutil.rmtree(bundle / "validation", ignore_errors=True)
        if env is None and not os.environ.get("CONV2D_CHECKS_SUBPROCESS"):
            return _run_checks_in_process(bundle, target, extra)
        p = checks_subprocess(
            "--bundle",
            str(bundle),
            "--target",
            target,
            "--check-profile",
            "quick",
            *extra,
            env=env,
            timeout=timeout,
        )
        report_path = bundle / "validation" / f"{target}_validation.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        return p.returncode, report, p.stdout + p.stderr

    return run


def _run_checks_in_process(
    bundle: Path, target: str, extra: tuple[str, ...]
) -> tuple[int, dict[str, Any] | None, str]:
    """``run_checks`` without a subprocess: the verifier's own in-process runner (``BundleValidator``'s and
    create's), on the checks as installed, without this repository's pytest.ini. The worker has onnxruntime
    and coremltools imported already; a process per run paid them again (~2-7 s each, ~45 runs a suite).
    The checks' behaviour is what these tests are about; ``pytest checks`` as a user types it keeps its own tests
    (``checks_subprocess``), and ``CONV2D_CHECKS_SUBPROCESS=1`` runs every ``run_checks`` that way."""
    from conv2d_bundle.verify.runner import run_pytest

    run = run_pytest(bundle, target, profile="quick", extra=extra)
    report_path = bundle / "validation" / f"{target}_validation.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return run.exit_code, report, run.output


def conv2d(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The installed CLI in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "conv2d_bundle.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or ROOT,
        timeout=timeout,
    )


def last_json(text: str) -> Any:
    return json.loads(text.strip().splitlines()[-1])


def check_outcome(report: dict[str, Any], check: str) -> tuple[str, str]:
    """(outcome, message) of one check in a validation report; StopIteration if the check is not in it."""
    entry = next(c for c in report["checks"] if c["id"] == check)
    return entry["outcome"], entry["message"]


def run_one_check(
    run_checks: Callable[..., tuple[int, dict[str, Any] | None, str]], bundle: Path, target: str, check: str
) -> tuple[str, str, dict[str, Any]]:
    """Run only ``check`` (an id such as ``test_hailo.py::test_hef_architecture``; all its parameters) with
    ``-k``: (its outcome, its message, the report). The exit code is not asserted: ``-k`` is a selection."""
    name = check.split("::")[-1].split("[")[0]
    _, report, out = run_checks(bundle, target, "-k", name)
    assert report is not None, out[-2000:]
    return (*check_outcome(report, check), report)
