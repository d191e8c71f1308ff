"""The verdict cannot lie: each way a run of the checks was seen to say PASSED when it must not.

Each test here failed on the code before the verdict rules (conv2d_bundle/verify/verdict.py): a killed xdist worker,
Ctrl-C, a selection by file / node id / --deselect / --lf, a collection error, a module-level skip, empty
golden data, a bundle asking for its own loose tolerance, an export whose floats drift slightly. Each must end
in a report that is not passed, says why, and that ``conv2d pack show`` repeats.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import helper, numpy_helper

from tests.conftest import ROOT, check_outcome, checks_subprocess, conv2d, reseal, run_one_check

FAULTS = "tests.plugin.faults"


def _env(fault: str = "", **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTEST_PLUGINS": FAULTS, "CONV2D_FAULT": fault, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _report(bundle: Path, target: str = "onnx") -> dict[str, Any]:
    return json.loads((bundle / "validation" / f"{target}_validation.json").read_text())


def _shown(bundle: Path, target: str = "onnx") -> dict[str, Any]:
    p = conv2d("pack", "show", str(bundle), "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["validation"][target]


def _checks(bundle: Path, *args: str, fault: str = "") -> subprocess.CompletedProcess[str]:
    return checks_subprocess(
        "--bundle", str(bundle), "--check-profile", "quick", *args, env=_env(fault), timeout=600
    )


# -- 1. a crashed worker ---------------------------------------------------------------------------
def test_killed_xdist_worker_is_incomplete_not_passed(bundle_copy: Path) -> None:
    p = _checks(bundle_copy, "--target", "onnx", "-n", "2", fault="crash:test_onnx.py::test_opset")
    assert p.returncode == 1, p.stdout[-2000:]
    report = _report(bundle_copy)
    assert report["verdict"] == "incomplete" and report["passed"] is False and report["complete"] is False
    assert report["reasons"] == ["worker crashed: test_onnx.py::test_opset"]
    assert "test_onnx.py::test_opset" in report["not_run"]
    assert _shown(bundle_copy)["status"] == "incomplete"

    v = conv2d(
        "pack", "verify", str(bundle_copy), "--target", "onnx", "-n", "2", "--profile", "quick",
        env=_env("crash:test_onnx.py::test_opset"),
    )  # fmt: skip
    assert v.returncode == 1, v.stdout + v.stderr
    assert "--target onnx: incomplete: worker crashed: test_onnx.py::test_opset" in v.stdout
    assert "passed\n" not in v.stdout


# -- 2. Ctrl-C ----------------------------------------------------------------------------------------
def test_ctrl_c_during_fuzzing_is_incomplete(bundle_copy: Path) -> None:
    fuzz = "test_onnx.py::test_fuzz_valid_inputs"
    p = _checks(bundle_copy, "--target", "onnx", fault=f"sigint:{fuzz}")
    assert p.returncode == 2, p.stdout[-2000:]
    report = _report(bundle_copy)
    assert report["verdict"] == "incomplete" and report["reasons"] == ["interrupted"]
    assert fuzz in report["not_run"] and fuzz not in report["checks_run"]
    assert "test_onnx.py::test_fuzz_invalid_inputs" in report["not_run"]  # the next check never ran
    assert _shown(bundle_copy)["status"] == "incomplete"

    v = conv2d(
        "pack",
        "verify",
        str(bundle_copy),
        "--target",
        "onnx",
        "--profile",
        "quick",
        env=_env(f"sigint:{fuzz}"),
    )
    assert v.returncode == 130 and "--target onnx: incomplete: interrupted" in v.stdout, v.stdout + v.stderr


# -- 3. selections other than -k/-m -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("how", "args"),
    [
        ("a file", [str(ROOT / "checks" / "test_general.py")]),
        ("a node id", [f"{ROOT / 'conv2d_bundle' / 'targets' / 'onnx' / 'test_onnx.py'}::test_opset"]),
        (
            "--deselect",
            [str(ROOT / "checks"), "--deselect", "conv2d_bundle/targets/onnx/test_onnx.py::test_opset"],
        ),
    ],
)
def test_partial_selection_is_incomplete(bundle_copy: Path, how: str, args: list[str]) -> None:
    options = ["-q", "-p", "no:cacheprovider", "--check-profile", "quick", "--target", "onnx"]
    p = subprocess.run(
        [sys.executable, "-m", "pytest", *args, *options, "--bundle", str(bundle_copy)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-2000:]  # pytest passed what it ran; the target is not verified
    report = _report(bundle_copy)
    assert report["verdict"] == "incomplete" and report["passed"] is False, how
    expected = report["counts"]["expected"]
    assert report["reasons"][0].startswith("selected: ") and f" of {expected} checks)" in report["reasons"][0]
    assert report["not_run"]
    assert _shown(bundle_copy)["status"] == "incomplete"


def test_last_failed_rerun_is_incomplete(bundle_copy: Path, tmp_path: Path) -> None:
    cache = ["-o", f"cache_dir={tmp_path / 'cache'}"]
    base = [sys.executable, "-m", "pytest", str(ROOT / "checks"), "-q", "--check-profile", "quick", *cache]
    base += ["--bundle", str(bundle_copy), "--target", "onnx"]
    labels = (bundle_copy / "label_map.json").read_bytes()
    (bundle_copy / "label_map.json").unlink()
    first = subprocess.run(base, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert first.returncode == 1, first.stdout[-1500:]
    (bundle_copy / "label_map.json").write_bytes(labels)
    again = subprocess.run([*base, "--lf"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert again.returncode == 0, again.stdout[-1500:]
    report = _report(bundle_copy)
    assert report["verdict"] == "incomplete" and report["reasons"][0].startswith("selected: --lf (")


# -- 7. a collection error replaces a stale pass; show tells what was not verified ---------------------
def test_collection_error_replaces_the_previous_pass(bundle_copy: Path) -> None:
    assert _checks(bundle_copy, "--target", "onnx").returncode == 0
    assert _report(bundle_copy)["verdict"] == "passed"
    p = _checks(bundle_copy, "--target", "onnx", fault="collect-error:test_onnx.py")
    assert p.returncode == 2, p.stdout[-1500:]
    report = _report(bundle_copy)
    assert report["verdict"] == "incomplete"
    assert any(
        r.startswith("collection error: test_onnx.py: ") and "simulated" in r for r in report["reasons"]
    )
    shown = _shown(bundle_copy)
    assert shown["status"] == "incomplete" and "collection error" in shown["result"]
    assert _shown(bundle_copy, "general")["status"] == "incomplete"  # the run as a whole did not happen


# -- 8. --strict-targets: module-level skips ---------------------------------------------------------
def test_module_level_skip_is_recorded_and_strict_fails_it(bundle_copy: Path) -> None:
    p = _checks(bundle_copy, "--target", "ios", fault="module-skip:test_ios.py")
    assert p.returncode == 0, p.stdout[-1500:]
    report = _report(bundle_copy, "ios")
    assert {"id": "test_ios.py", "reason": "needs a runtime this host lacks"} in report["skipped"]
    assert report["verdict"] == "passed"  # the module, and the 6 parity items off macOS, are not verified:
    assert _shown(bundle_copy, "ios")["result"] == "not verified (7 skipped)"

    strict = _checks(bundle_copy, "--target", "ios", "--strict-targets", fault="module-skip:test_ios.py")
    assert strict.returncode == 1, strict.stdout[-1500:]
    report = _report(bundle_copy, "ios")
    assert report["verdict"] == "failed"
    assert (
        "test_ios.py: not verified (--strict-targets): module skipped: needs a runtime this host lacks"
        in (report["errors"])
    )


def test_setup_phase_skip_fails_under_strict(bundle_copy: Path, tmp_path: Path) -> None:
    """With coremltools hidden the iOS checks skip in their fixtures' setup: strict turns each into a failure."""
    hide = tmp_path / "hide" / "coremltools"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('coremltools is hidden in this test')\n")
    env = _env(PYTHONPATH=str(tmp_path / "hide"))
    p = checks_subprocess(
        "--bundle",
        str(bundle_copy),
        "--target",
        "ios",
        "--strict-targets",
        "--check-profile",
        "quick",
        env=env,
    )
    assert p.returncode == 1, p.stdout[-1500:]
    report = _report(bundle_copy, "ios")
    outcome, message = check_outcome(report, "test_ios.py::test_coreml_loads")
    assert outcome == "error" and message.startswith(
        "not verified (--strict-targets): coremltools not installed"
    )


# -- 4. empty evidence ------------------------------------------------------------------------------
def test_zero_golden_rows_fail(bundle_copy: Path) -> None:
    inputs = np.load(bundle_copy / "reference/inputs.npy")
    np.save(bundle_copy / "reference/inputs.npy", inputs[:0])
    outputs = dict(np.load(bundle_copy / "reference/outputs.npz"))
    np.savez(bundle_copy / "reference/outputs.npz", **{k: v[:0] for k, v in outputs.items()})
    reseal(bundle_copy)
    p = _checks(bundle_copy, "--target", "onnx")
    assert p.returncode == 1
    report = _report(bundle_copy)
    assert report["verdict"] == "failed"
    parity = [c for c in report["checks"] if c["id"].startswith("test_targets.py::test_parity[onnx-")]
    assert len(parity) == 6 and all(c["outcome"] == "failed" for c in parity)
    assert all("holds 0 windows" in c["message"] for c in parity)
    assert "holds 0 windows" in check_outcome(report, "test_general.py::test_reference_inputs")[1]


def test_golden_inputs_unreadable_is_a_setup_error_and_fails(bundle_copy: Path, run_checks: Any) -> None:
    """reference/inputs.npy replaced by garbage and re-sealed: the reference_inputs fixture raises in setup.
    Guards against a report that ignores setup errors (records them as not run, or leaves them out of
    ``errors``): without --strict-targets, the one way the other tests reach a setup failure."""
    (bundle_copy / "reference/inputs.npy").write_bytes(b"not an array, just garbage bytes\n" * 8)
    reseal(bundle_copy)
    outcome, message, report = run_one_check(
        run_checks, bundle_copy, "general", "test_general.py::test_reference_inputs"
    )
    assert outcome == "error" and message.startswith("reference/inputs.npy cannot be read: "), message
    assert f"test_general.py::test_reference_inputs: {message}" in report["errors"]
    assert report["verdict"] == "failed" and report["passed"] is False


def test_compare_of_nothing_is_not_a_pass() -> None:
    from conv2d_bundle.parity.figures import compare

    stats = compare("confidence", np.zeros((0, 4)), np.zeros((0, 4)), integer=False)
    assert not stats.passed and "nothing compared" in stats.describe()


def test_parity_ids_name_the_rows_compared(bundle_copy: Path) -> None:
    """With 32 golden windows the largest parity item is ``-32`` and compares 32 rows, not ``-64``."""
    cfg = yaml.safe_load((bundle_copy / "config.yaml").read_text())
    cfg["export"]["reference"]["num_samples"] = 32
    (bundle_copy / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=True))
    np.save(bundle_copy / "reference/inputs.npy", np.load(bundle_copy / "reference/inputs.npy")[:32])
    outputs = dict(np.load(bundle_copy / "reference/outputs.npz"))
    np.savez(bundle_copy / "reference/outputs.npz", **{k: v[:32] for k, v in outputs.items()})
    reseal(bundle_copy)
    _checks(bundle_copy, "--target", "onnx", "-k", "test_parity")
    report = _report(bundle_copy)
    ids = {c["id"]: c for c in report["checks"]}
    assert "test_targets.py::test_parity[onnx-confidence-64]" not in ids
    largest = ids["test_targets.py::test_parity[onnx-confidence-32]"]
    assert largest["outcome"] == "passed" and largest["details"]["total"] == 32 * 4


def test_int8_agreement_without_figures_is_not_verified(bundle_copy: Path) -> None:
    meta = json.loads((bundle_copy / "metadata.json").read_text())
    meta["formats"]["hailo"]["int8"] = {"method": "onnxruntime static QDQ (MinMax)", "samples": 64}
    (bundle_copy / "metadata.json").write_text(json.dumps(meta))
    reseal(bundle_copy)
    _checks(bundle_copy, "--target", "hailo", "-k", "test_int8_agreement")
    outcome, message = check_outcome(_report(bundle_copy, "hailo"), "test_hailo.py::test_int8_agreement")
    assert outcome == "skipped" and message.startswith("int8 agreement not verified: no figure was measured")


# -- 5. the verifier owns the tolerance ----------------------------------------------------------------
def _ask_tolerance(bundle: Path, output: str, atol: float) -> None:
    cfg = yaml.safe_load((bundle / "config.yaml").read_text())
    next(o for o in cfg["model"]["outputs"] if o["name"] == output)["atol"] = atol
    (bundle / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=True))


def _drift_confidence(bundle: Path, by: float) -> None:
    """Re-export-like damage: the ONNX model's confidences come out ``by`` higher than torch's."""
    path = bundle / "models/model.onnx"
    model = onnx.load(str(path))
    out = next(o for o in model.graph.output if o.name == "confidence")
    for node in model.graph.node:
        node.output[:] = ["confidence_raw" if n == "confidence" else n for n in node.output]
    model.graph.initializer.append(numpy_helper.from_array(np.array(by, dtype=np.float32), "drift"))
    model.graph.node.append(helper.make_node("Add", ["confidence_raw", "drift"], [out.name]))
    onnx.save(model, str(path))


def test_bundle_asking_for_a_loose_tolerance_fails(bundle_copy: Path) -> None:
    _ask_tolerance(bundle_copy, "confidence", 0.9)
    _drift_confidence(bundle_copy, 0.1)
    reseal(bundle_copy)
    p = _checks(bundle_copy, "--target", "onnx", "-k", "test_parity")
    assert p.returncode == 1
    report = _report(bundle_copy)
    outcome, message = check_outcome(report, "test_targets.py::test_parity[onnx-confidence-7]")
    assert outcome == "failed"
    assert message.startswith("confidence: config.yaml asks for a looser tolerance than the verifier allows")
    assert "atol 0.9 > cap 0.0001" in message
    details = next(
        c for c in report["checks"] if c["id"] == "test_targets.py::test_parity[onnx-confidence-7]"
    )
    assert details["details"]["tolerance"]["cap"] == {
        "atol": 1e-4,
        "rtol": 1e-5,
        "source": "built-in policy (float32)",
    }
    assert report["tolerance_policy"]["source"] == "built-in policy"


def test_slightly_drifted_floats_fail_and_name_the_output(bundle_copy: Path) -> None:
    _drift_confidence(bundle_copy, 3e-4)
    reseal(bundle_copy)
    p = _checks(bundle_copy, "--target", "onnx", "-k", "test_parity")
    assert p.returncode == 1
    report = _report(bundle_copy)
    outcome, message = check_outcome(report, "test_targets.py::test_parity[onnx-confidence-1]")
    assert outcome == "failed" and message.startswith(
        "onnx parity, batch 1: confidence: 4/4 outside atol=1e-05"
    )
    assert check_outcome(report, "test_targets.py::test_parity[onnx-behavioral_codes-64]")[0] == "passed"
    parity = next(
        c for c in report["checks"] if c["id"] == "test_targets.py::test_parity[onnx-confidence-64]"
    )
    assert parity["details"]["tolerance"]["source"] == "config.yaml model.outputs.confidence (within the cap)"


def test_tolerance_policy_file_sets_the_caps(bundle_copy: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("float32: {atol: 1.0e-6, rtol: 1.0e-6}\n")
    p = _checks(bundle_copy, "--target", "onnx", "-k", "test_parity", "--tolerance-policy", str(policy))
    assert p.returncode == 1
    report = _report(bundle_copy)
    message = check_outcome(report, "test_targets.py::test_parity[onnx-confidence-1]")[1]
    assert "atol 1e-05 > cap 1e-06" in message and f"--tolerance-policy {policy} (float32)" in message
    codes = check_outcome(report, "test_targets.py::test_parity[onnx-behavioral_codes-1]")
    assert codes[0] == "passed"  # compared exactly anyway
    v = conv2d("pack", "verify", str(bundle_copy), "--target", "onnx", "--tolerance-policy", str(policy))
    assert v.returncode == 1 and "atol 1e-05 > cap 1e-06" in v.stdout, v.stdout + v.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("float32: {atol: -1}\n")
    p = _checks(bundle_copy, "--target", "onnx", "--tolerance-policy", str(bad))
    assert p.returncode == 4 and "expected a number >= 0" in p.stderr
    v = conv2d("pack", "verify", str(bundle_copy), "--target", "onnx", "--tolerance-policy", str(bad))
    assert v.returncode == 2 and v.stderr.count("\n") == 1 and "expected a number >= 0" in v.stderr


def test_verdict_never_better_than_the_exit_status() -> None:
    from conv2d_bundle.verify.verdict import verdict_of

    report = {"verdict": "passed", "complete": True, "errors": [], "reasons": [], "pytest_exit_status": 0}
    assert verdict_of(report, 0).passed
    later = verdict_of(report, 2)
    assert later.status == "incomplete" and later.reasons == ("pytest exit status 2 (interrupted)",)
    assert verdict_of({**report, "errors": ["x: broke"]}).status == "failed"  # self-contradicting: not a pass
    assert verdict_of({**report, "complete": False}).status == "incomplete"
    assert verdict_of(None).reasons == ("no report was written",)
    assert (
        verdict_of({"passed": True, "partial": True, "selection": "-k x", "errors": []}).status
        == "incomplete"
    )
    junk = verdict_of({"verdict": "passed", "complete": True, "errors": 7})
    assert junk.status == "incomplete" and junk.reasons == ("malformed report: errors is not a list",)
