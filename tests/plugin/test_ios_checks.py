"""`pytest checks --bundle B --target ios`: a good bundle passes with predict() parity reported as not verified
off macOS (the ML Program's parity executes through the reference interpreter: test_ios_program_parity.py);
every breakage fails, named; verifying never writes into the bundle; iOS13 and a missing coremltools work."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL, ROOT, conv2d, last_json, reseal, run_one_check

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("coremltools") is None, reason="coremltools not installed"
)

PACKAGE = "models/coreml.mlpackage"
SPEC = f"{PACKAGE}/Data/com.apple.CoreML/model.mlmodel"
PARITY_IDS = {
    f"test_targets.py::test_parity[ios-{o}-{n}]"
    for o in ("behavioral_codes", "confidence")
    for n in (1, 7, 64)
}
PROGRAM_PARITY_IDS = {
    f"test_ios.py::test_coreml_program_parity[{o}-{n}]"
    for o in ("behavioral_codes", "confidence")
    for n in (1, 7, 64)
}
Snapshot = dict[str, tuple[str, int]]


def snapshot(bundle: Path) -> Snapshot:
    """sha256 and mtime of every file outside validation/ (the only place a verify may write)."""
    return {
        p.relative_to(bundle).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(bundle.rglob("*"))
        if p.is_file() and p.relative_to(bundle).parts[0] != "validation"
    }


def _load_spec(path: Path) -> Any:
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString(path.read_bytes())
    return spec


def _edit_spec(edit: Callable[[Any], None]) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        spec = _load_spec(bundle / SPEC)
        edit(spec)
        (bundle / SPEC).write_bytes(spec.SerializeToString(deterministic=True))
        reseal(bundle)

    return apply


def _truncate(bundle: Path) -> None:
    f = bundle / SPEC
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    reseal(bundle)


def _drop_manifest(bundle: Path) -> None:
    (bundle / PACKAGE / "Manifest.json").unlink()
    reseal(bundle)


def _input_double(spec: Any) -> None:
    spec.description.input[0].type.multiArrayType.dataType = type(
        spec.description.input[0].type.multiArrayType
    ).DOUBLE


def _rename_output(spec: Any) -> None:
    spec.description.output[0].name = "codes"


@pytest.mark.skipif(platform.system() == "Darwin", reason="asserts the off-macOS behaviour")
def test_good_bundle_passes_parity_not_verified(bundle_copy: Path, run_checks: Any) -> None:
    before = snapshot(bundle_copy)
    rc, report, out = run_checks(bundle_copy, "ios")
    assert rc == 0, out
    assert report is not None and report["passed"] is True and report["errors"] == []
    assert snapshot(bundle_copy) == before, "verify --target ios changed files of the bundle"
    run = set(report["checks_run"])
    assert {
        "test_ios.py::test_coreml_loads",
        "test_ios.py::test_input_type",
        "test_ios.py::test_package_structure",
    } <= run
    assert not PARITY_IDS & run
    assert PROGRAM_PARITY_IDS <= run  # the interpreter's items ran (and passed: report["passed"])
    skipped = {s["id"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == PARITY_IDS
    assert set(skipped.values()) == {"Core ML prediction needs macOS"}
    details = {c["id"]: c.get("details") or {} for c in report["checks"]}
    assert details["test_ios.py::test_output_type[behavioral_codes]"]["coreml_dtype"] == "int32"
    assert details["test_ios.py::test_specification_version"]["specification_version"] == 6


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        pytest.param(_truncate, "model.mlmodel cannot be parsed", id="spec-truncated"),
        pytest.param(
            _edit_spec(_input_double),
            "input imu_input of models/coreml.mlpackage is float64, expected float32",
            id="input-double",
        ),
        pytest.param(_edit_spec(_rename_output), "has no output behavioral_codes", id="output-renamed"),
        pytest.param(_drop_manifest, "coreml.mlpackage/Manifest.json is missing", id="manifest-deleted"),
    ],
)
def test_breakage_fails_named(
    bundle_copy: Path, run_checks: Any, breakage: Callable[[Path], None], expected: str
) -> None:
    breakage(bundle_copy)
    rc, report, out = run_checks(bundle_copy, "ios")
    assert rc == 1, out
    assert report is not None and report["passed"] is False
    assert any(e.startswith("test_ios.py::") and expected in e for e in report["errors"]), report["errors"]


def test_specification_version_above_the_minimum_ios_fails(bundle_copy: Path, run_checks: Any) -> None:
    """specificationVersion 7 (iOS 16) in a bundle declaring iOS 15, metadata.json agreeing with the spec:
    the model would not load on the iOS 15 devices it claims. Guards against a check that accepts one
    version above what the minimum iOS allows."""

    def one_above(spec: Any) -> None:
        spec.specificationVersion += 1

    _edit_spec(one_above)(bundle_copy)
    meta = json.loads((bundle_copy / "metadata.json").read_text())
    meta["formats"]["coreml"]["specification_version"] = 7
    (bundle_copy / "metadata.json").write_text(json.dumps(meta))
    reseal(bundle_copy)
    outcome, message, _ = run_one_check(
        run_checks, bundle_copy, "ios", "test_ios.py::test_specification_version"
    )
    assert outcome == "failed"
    assert message == f"{PACKAGE} specificationVersion 7 != 6 (a mlprogram model for minimum iOS15)"


def test_read_only_bundle(bundle_copy: Path, run_checks: Any) -> None:
    """chmod a-w on everything but validation/: the checks pass and no byte or mtime changes. Root ignores
    write bits, so the snapshot is what proves that nothing is written (coremltools would touch the mtime of
    Manifest.json, as the control at the end shows)."""
    (bundle_copy / "validation").mkdir()
    for p in [bundle_copy, *bundle_copy.rglob("*")]:
        if "validation" not in p.relative_to(bundle_copy).parts:
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = snapshot(bundle_copy)
    rc, report, out = run_checks(bundle_copy, "ios")
    assert rc == 0, out
    assert report is not None and report["passed"] is True
    assert snapshot(bundle_copy) == before
    assert not (bundle_copy / PACKAGE / "Manifest.json").stat().st_mode & stat.S_IWUSR
    import coremltools as ct

    ct.models.MLModel(str(bundle_copy / PACKAGE), skip_model_load=True)  # control: opening in place writes
    assert snapshot(bundle_copy)[f"{PACKAGE}/Manifest.json"] != before[f"{PACKAGE}/Manifest.json"]


def test_ios13_gives_a_neuralnetwork_model_that_passes(tmp_path: Path) -> None:
    """create runs the iOS checks before sealing (and refuses a bundle that fails them): their report is read."""
    from conv2d_bundle.lifecycle.create import ArtifactBundler

    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["export"]["coreml"]["minimum_deployment_target"] = "iOS13"
    config = tmp_path / "dogs_ios13.yaml"
    config.write_text(yaml.safe_dump(data))
    bundle = (
        ArtifactBundler(tmp_path / "artifacts")
        .create_bundle(config, EXAMPLE_MODEL, formats="onnx,coreml")
        .bundle_dir
    )
    metadata = json.loads((bundle / "metadata.json").read_text())
    info = metadata["formats"]["coreml"]
    assert info["file"] == "models/coreml.mlmodel" and (bundle / info["file"]).is_file()
    assert not (bundle / PACKAGE).exists()
    assert (info["model_format"], info["specification_version"], info["codes_dtype"]) == (
        "neuralnetwork",
        4,
        "float32",
    )
    assert info["minimum_ios_version"] == "13.0"
    report = json.loads((bundle / "validation" / "ios_validation.json").read_text())  # the seal-time run's
    assert report["passed"] is True and "test_ios.py::test_input_shape" in report["checks_run"]
    details = {c["id"]: c.get("details") or {} for c in report["checks"]}
    assert details["test_ios.py::test_package_structure"]["layout"] == "mlmodel file"
    assert details["test_ios.py::test_specification_version"]["specification_version"] == 4
    assert details["test_ios.py::test_output_type[behavioral_codes]"]["coreml_dtype"] == "float32"
    skipped = {s["id"]: s["reason"] for s in report["skipped"]}  # the interpreter runs ML Programs only
    assert {skipped.get(i) for i in PROGRAM_PARITY_IDS} == {
        "not verified: models/coreml.mlmodel is a neuralnetwork model, not an ML Program: the reference "
        "interpreter runs ML Programs only (its parity needs predict() on macOS)"
    }


def _tree(package: Path) -> dict[str, bytes]:
    return {
        p.relative_to(package).as_posix(): p.read_bytes() for p in sorted(package.rglob("*")) if p.is_file()
    }


def test_two_creates_give_identical_packages(example_bundle: Path, tmp_path: Path) -> None:
    """Two processes (a fresh CLI one and the test worker that built the shared example), two directories:
    the .mlpackage trees are identical to the byte, and the CLI's stderr holds no converter noise."""
    p = conv2d(
        *("pack", "create", "--config", str(EXAMPLE_CONFIG), "--model", str(EXAMPLE_MODEL)),
        *("--name", "dogs_v1", "--formats", "onnx,coreml", "--output-dir", str(tmp_path / "a"), "--json"),
    )
    assert p.returncode == 0, p.stderr
    assert not any(noise in p.stderr for noise in ("has not been tested", "Running MIL", "Failed to load")), (
        p.stderr
    )
    fresh = _tree(Path(last_json(p.stdout)["bundle_dir"]) / PACKAGE)
    assert set(fresh) == {
        "Manifest.json",
        "Data/com.apple.CoreML/model.mlmodel",
        "Data/com.apple.CoreML/weights/weight.bin",
    }
    assert fresh == _tree(example_bundle / PACKAGE)


def _hide_coremltools(tmp_path: Path) -> dict[str, str]:
    hide = tmp_path / "hide"
    (hide / "coremltools").mkdir(parents=True)
    (hide / "coremltools" / "__init__.py").write_text(
        "raise ImportError('coremltools is hidden in this test')\n"
    )
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), str(ROOT)])}


def test_without_coremltools_create_skips_and_ios_fails(tmp_path: Path, run_checks: Any) -> None:
    env = _hide_coremltools(tmp_path)
    p = conv2d(
        *("pack", "create", "--config", str(EXAMPLE_CONFIG), "--model", str(EXAMPLE_MODEL)),
        *("--name", "dogs_v1", "--output-dir", str(tmp_path / "artifacts"), "--json"),
        env=env,
    )
    assert p.returncode == 0, p.stderr
    bundle = Path(last_json(p.stdout)["bundle_dir"])
    info = json.loads((bundle / "metadata.json").read_text())["formats"]["coreml"]
    assert info["status"] == "skipped" and "conv2d-bundle[coreml]" in info["reason"]
    assert not (bundle / PACKAGE).exists()
    rc, report, out = run_checks(bundle, "ios", env=env)
    assert rc == 1, out
    assert report is not None and report["passed"] is False
    # one failure that says why, not one per check (the others are not run, saying the same)
    assert report["errors"] == [
        "test_targets.py::test_format_built[ios]: formats.coreml is 'skipped': Core ML export needs coremltools: "
        "pip install 'conv2d-bundle[coreml]'"
    ]


def test_verifying_host_without_coremltools(bundle_copy: Path, run_checks: Any, tmp_path: Path) -> None:
    """A good bundle on a host without coremltools: file checks pass, the others are skipped, saying why."""
    rc, report, out = run_checks(bundle_copy, "ios", env=_hide_coremltools(tmp_path))
    assert rc == 0, out
    assert report is not None and report["passed"] is True
    assert {"test_ios.py::test_package_structure", "test_ios.py::test_size"} <= set(report["checks_run"])
    skipped = {s["id"]: s["reason"] for s in report["skipped"]}
    assert (
        skipped["test_ios.py::test_input_type"]
        == "coremltools not installed (pip install 'conv2d-bundle[coreml]')"
    )
    assert skipped["test_ios.py::test_coreml_loads"] == skipped["test_ios.py::test_input_type"]
    assert {skipped[i] for i in PROGRAM_PARITY_IDS} == {skipped["test_ios.py::test_input_type"]}
