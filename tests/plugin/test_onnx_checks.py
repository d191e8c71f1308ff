"""`pytest checks --bundle B --target onnx`: a good bundle passes; every breakage fails, named; reports hold."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from tests.conftest import ROOT, checks_subprocess, conv2d, reseal

pytest_plugins = ["pytester"]


def _ids_outcomes(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["id"], c["outcome"]) for c in report["checks"]]


def test_good_bundle_passes_and_reports(bundle_copy: Path, run_checks: Any) -> None:
    rc, report, out = run_checks(bundle_copy, "onnx")
    assert rc == 0, out
    assert report is not None and report["passed"] is True and report["errors"] == []
    assert report["target"] == "onnx" and report["schema_version"] == 1
    assert "test_onnx.py::test_parity[confidence-7]" in report["checks_run"]
    assert "test_general.py::test_manifest_verifies" in report["checks_run"]
    assert all(c["outcome"] == "passed" and c["duration_s"] >= 0 for c in report["checks"])
    assert {"python", "onnx", "onnxruntime", "numpy"} <= set(report["environment"]["versions"])
    parity = next(c for c in report["checks"] if c["id"] == "test_onnx.py::test_parity[confidence-64]")
    assert parity["details"]["max_abs_error"] < 1e-5 and "cosine_similarity" in parity["details"]
    general = json.loads((bundle_copy / "validation" / "general_validation.json").read_text())
    assert general["passed"] and all(i.startswith("test_general.py::") for i in general["checks_run"])


def test_same_results_with_xdist(bundle_copy: Path, run_checks: Any) -> None:
    rc1, serial, _ = run_checks(bundle_copy, "onnx")
    rc2, parallel, out = run_checks(bundle_copy, "onnx", "-n", "2")
    assert rc1 == rc2 == 0, out
    assert _ids_outcomes(serial) == _ids_outcomes(parallel)
    details = {c["id"]: c.get("details") for c in parallel["checks"]}
    assert (
        details["test_onnx.py::test_parity[behavioral_codes-64]"]["mismatches"] == 0
    )  # figures cross workers


def test_checks_run_without_torch(bundle_copy: Path, run_checks: Any, tmp_path: Path) -> None:
    hide = tmp_path / "hide"
    (hide / "torch").mkdir(parents=True)
    (hide / "torch" / "__init__.py").write_text("raise ImportError('torch is hidden in this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), str(ROOT)])}
    rc, report, out = run_checks(bundle_copy, "onnx", env=env)
    assert rc == 0, out
    assert report["counts"]["skipped"] == 0 and report["counts"]["passed"] >= 40


def _flip_byte(b: Path) -> None:
    f = b / "models/model.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))


def _edit_onnx(edit: Any) -> Any:
    def apply(b: Path) -> None:
        m = onnx.load(str(b / "models/model.onnx"))
        edit(m)
        onnx.save(m, str(b / "models/model.onnx"))
        reseal(b)

    return apply


def _short_input(m: Any) -> None:
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 50


def _dynamic_time_axis(m: Any) -> None:
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "time"


def _golden_row(b: Path) -> None:
    ref = dict(np.load(b / "reference/outputs.npz"))
    ref["behavioral_codes"][3] = (ref["behavioral_codes"][3] + 1) % 800
    np.savez(b / "reference/outputs.npz", **ref)
    reseal(b)


def _phantom_format(b: Path) -> None:
    meta = json.loads((b / "metadata.json").read_text())
    meta["formats"]["coreml"] = {"status": "built", "file": "models/coreml.mlpackage", "size_bytes": 10}
    shutil.rmtree(b / "models/coreml.mlpackage", ignore_errors=True)
    (b / "metadata.json").write_text(json.dumps(meta))
    reseal(b)


def _broken_config(b: Path) -> None:
    (b / "config.yaml").write_text("model: [unclosed\n")
    reseal(b)


def _golden_rows_dropped(b: Path) -> None:
    ref = {k: v[:32] for k, v in np.load(b / "reference/outputs.npz").items()}
    np.savez(b / "reference/outputs.npz", **ref)
    reseal(b)


BREAKAGES = {
    "flipped byte in model.onnx": (_flip_byte, "models/model.onnx"),
    "label_map.json deleted": (lambda b: (b / "label_map.json").unlink(), "label_map.json"),
    "extra file": (lambda b: (b / "models" / "notes.txt").write_text("added\n"), "notes.txt"),
    "input [N,9,2,50], resealed": (_edit_onnx(_short_input), "50"),
    "format listed but absent": (_phantom_format, "coreml"),
    "golden codes differ in one row": (_golden_row, "behavioral_codes"),
    "time axis made dynamic": (_edit_onnx(_dynamic_time_axis), "accepted invalid inputs"),
    "config.yaml unreadable": (_broken_config, "config"),
    "golden outputs with fewer rows": (_golden_rows_dropped, "shape"),
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_breakage_fails_with_named_error(bundle_copy: Path, run_checks: Any, name: str) -> None:
    breakage, words = BREAKAGES[name]
    breakage(bundle_copy)
    rc, report, out = run_checks(bundle_copy, "onnx")
    assert rc == 1, f"{name}: exit {rc}\n{out[-2000:]}"
    assert report is not None and report["passed"] is False
    assert any(words in e for e in report["errors"]), report["errors"]


def test_unknown_target_is_a_usage_error(example_bundle: Path) -> None:
    p = checks_subprocess("--bundle", str(example_bundle), "--target", "android")
    assert p.returncode == 4 and "onnx" in p.stderr and "hailo" in p.stderr


def test_missing_bundle_is_a_usage_error(tmp_path: Path) -> None:
    p = checks_subprocess("--artifacts", str(tmp_path), "--bundle", "abcd")
    assert p.returncode == 4 and "no bundle" in (p.stdout + p.stderr)
    p = checks_subprocess()
    assert p.returncode == 4 and "--bundle" in (p.stdout + p.stderr)


def test_bundle_by_hash_prefix(example_bundle: Path, tmp_path: Path) -> None:
    shutil.copytree(example_bundle, tmp_path / example_bundle.name)
    p = checks_subprocess(
        "--artifacts", str(tmp_path), "--bundle", example_bundle.name[:6], "--check-profile", "quick"
    )
    assert p.returncode == 0, p.stdout[-1000:]
    assert (tmp_path / example_bundle.name / "validation" / "general_validation.json").exists()


SKIPPING_CHECK = """
import warnings
import pytest
from conv2d_bundle.errors import BundleWarning

pytestmark = pytest.mark.target("onnx")

def test_needs_device():
    pytest.skip("needs the device")

def test_warns():
    warnings.warn(BundleWarning("model is large"))

@pytest.mark.target("hailo")
def test_other_target():
    raise AssertionError("deselected, never run")
"""


def test_skips_warnings_deselection_and_strict(pytester: pytest.Pytester, bundle_copy: Path) -> None:
    pytester.makepyfile(test_custom=SKIPPING_CHECK)
    result = pytester.runpytest("--bundle", str(bundle_copy), "--target", "onnx", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1, deselected=1)
    report = json.loads((bundle_copy / "validation" / "onnx_validation.json").read_text())
    assert report["passed"] is True
    assert report["skipped"] == [{"id": "test_custom.py::test_needs_device", "reason": "needs the device"}]
    assert "test_custom.py::test_needs_device" not in report["checks_run"]
    assert report["warnings"] == ["test_custom.py::test_warns: model is large"]

    strict = pytester.runpytest(
        "--bundle", str(bundle_copy), "--target", "onnx", "--strict-targets", "-p", "no:cacheprovider"
    )
    assert strict.ret == 1
    report = json.loads((bundle_copy / "validation" / "onnx_validation.json").read_text())
    assert report["passed"] is False and "not verified" in report["errors"][0]


def test_validator_api_and_verify_cli(bundle_copy: Path, tmp_path: Path) -> None:
    from conv2d_bundle.bundle import Bundle
    from conv2d_bundle.validation import BundleValidator

    result = BundleValidator(profile="quick").validate_for_target(Bundle(bundle_copy), "onnx")
    assert result.passed and result.target == "onnx" and len(result.checks_run) >= 40 and not result.errors

    junit = tmp_path / "junit.xml"
    p = conv2d(
        "pack",
        "verify",
        bundle_copy.name[:5],
        "--output-dir",
        str(bundle_copy.parent),
        "--target",
        "onnx",
        "--junitxml",
        str(junit),
        "--profile",
        "quick",
    )
    assert p.returncode == 0, p.stderr
    assert "PASSED" in p.stdout and "onnx_validation.json" in p.stdout
    assert "<testsuite" in junit.read_text()

    (bundle_copy / "label_map.json").unlink()
    p = conv2d("pack", "verify", str(bundle_copy), "--target", "onnx", "--profile", "quick")
    assert p.returncode == 1 and "FAILED" in p.stdout and "label_map.json" in p.stdout
    p = conv2d("pack", "verify", "ffff", "--output-dir", str(tmp_path))
    assert p.returncode == 2 and "no bundle" in p.stderr


def test_root_conftest_registers_plugin_once(example_bundle: Path, tmp_path: Path) -> None:
    """With autoload off the root conftest registers the plugin; with it on, it must not register it twice."""
    shutil.copytree(example_bundle, tmp_path / example_bundle.name)
    for autoload_off in ("1", ""):
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": autoload_off}
        p = checks_subprocess("--bundle", str(tmp_path / example_bundle.name), env=env)
        assert p.returncode == 0, p.stdout[-1500:] + p.stderr[-1500:]


def test_verify_with_plugin_autoload_off(bundle_copy: Path) -> None:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    p = conv2d("pack", "verify", str(bundle_copy), "--target", "onnx", "-k", "test_parity", env=env)
    assert p.returncode == 0, p.stderr
    report = json.loads((bundle_copy / "validation" / "onnx_validation.json").read_text())
    assert report["partial"] is True and report["selection"] == "-k test_parity"


def test_check_profile_offers_only_the_documented_budgets(bundle_copy: Path) -> None:
    """``seal`` is create's own budget at seal time: accepted, not offered."""
    import re
    import subprocess
    import sys

    help_text = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    ).stdout  # fmt: skip
    option = re.search(r"--check-profile.*?(?=\n  --)", help_text, flags=re.S)
    assert option is not None, help_text
    assert "quick" in option[0] and "thorough" in option[0] and "seal" not in option[0]
    bad = checks_subprocess("--bundle", str(bundle_copy), "--check-profile", "bogus", "--co")
    assert bad.returncode == 4 and "quick, default, thorough" in bad.stderr and "seal" not in bad.stderr
    seal = checks_subprocess("--bundle", str(bundle_copy), "--check-profile", "seal", "--co")
    assert seal.returncode == 0, seal.stdout + seal.stderr
