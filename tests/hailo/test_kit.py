"""The compile kit of the example bundle, and what `--target hailo` says about it before a HEF exists."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx

from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.models.postprocess import fsq_codes, softmax
from conv2d_bundle.targets.hailo.export import NOT_COMPILED
from conv2d_bundle.targets.hailo.kit import run_device
from conv2d_bundle.targets.hailo.ops import HAILO_SUPPORTED_OPS, unsupported_ops


def _hailo(bundle: Path) -> dict:
    return json.loads((bundle / "metadata.json").read_text())["formats"]["hailo"]


def test_kit_files_sealed(example_bundle: Path) -> None:
    info = _hailo(example_bundle)
    assert info["status"] == "kit"
    assert info["reason"].startswith(NOT_COMPILED)
    sealed = BundleManifest.load(example_bundle).files
    for rel in info["kit_files"]:
        assert rel in sealed, rel
        assert (example_bundle / rel).is_file(), rel
    assert not (example_bundle / "models/hailo.hef").exists()


def test_device_onnx(example_bundle: Path) -> None:
    m = onnx.load(str(example_bundle / "models/hailo/model.onnx"))
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 9, 2, 100]
    assert all(d.HasField("dim_value") for d in m.graph.input[0].type.tensor_type.shape.dim)
    assert [o.name for o in m.graph.output] == ["bounded_latent", "class_logits"]
    opset = max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    assert opset in (11, 13) and m.ir_version <= 9
    ops = {n.op_type for n in m.graph.node}
    assert not ops & {"Round", "ArgMax", "Cast"}
    assert unsupported_ops(ops) == []
    assert unsupported_ops(["Conv", "Round"]) == ["Round"]
    assert "Round" not in HAILO_SUPPORTED_OPS


def test_device_onnx_simplified(example_bundle: Path) -> None:
    """create simplifies the device part and records with what, and the operators before and after."""
    import onnxslim

    info = _hailo(example_bundle)["simplification"]
    m = onnx.load(str(example_bundle / "models/hailo/model.onnx"))
    assert (info["library"], info["version"]) == ("onnxslim", onnxslim.__version__)
    assert info["nodes_after"] == len(m.graph.node) < info["nodes_before"]
    assert info["ops_before"]["Constant"] >= 1 and "Constant" not in info["ops_after"]  # folded into weights
    assert info["ops_after"] == {op: sum(n.op_type == op for n in m.graph.node) for op in info["ops_after"]}
    assert all(d.HasField("dim_value") for v in m.graph.value_info for d in v.type.tensor_type.shape.dim)
    assert {p.key for p in m.metadata_props} >= {"exp_hash", "labels"}  # kept through the simplifier
    readme = (example_bundle / "models/hailo/README.md").read_text()
    assert (
        f"simplified with onnxslim {onnxslim.__version__} ({info['nodes_before']} -> {info['nodes_after']} nodes)"
        in readme
    )


def test_split_reproduces_golden(example_bundle: Path) -> None:
    inputs = np.load(example_bundle / "reference/inputs.npy")
    golden = np.load(example_bundle / "reference/outputs.npz")
    out = run_device(example_bundle / "models/hailo/model.onnx", inputs, "imu_input")
    np.testing.assert_array_equal(fsq_codes(out["bounded_latent"], (8, 5, 5, 4)), golden["behavioral_codes"])
    np.testing.assert_allclose(softmax(out["class_logits"]), golden["confidence"], atol=1e-5, rtol=0)


def test_calibration_set(example_bundle: Path) -> None:
    calib = np.load(example_bundle / "models/hailo/calib_set.npy")
    assert calib.dtype == np.float32 and calib.shape == (256, 2, 100, 9)
    golden = np.load(example_bundle / "reference/inputs.npy")
    # NHWC of the golden windows first: the layout is a transpose, not a reshape
    np.testing.assert_array_equal(calib[: golden.shape[0]], golden.transpose(0, 2, 3, 1))
    assert _hailo(example_bundle)["calibration"]["source"] == "reference+synthetic"


def test_compile_script(example_bundle: Path) -> None:
    path = example_bundle / "models/hailo/compile.sh"
    text = path.read_text()
    assert os.access(path, os.X_OK)
    assert "set -euo pipefail" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("hailo ")]
    assert [ln.split()[1] for ln in lines] == ["parser", "optimize", "compiler"]
    assert text.count("--hw-arch hailo8 ") == 3
    assert "--net-name conv2d_fsq " in text
    assert "--end-node-names '/Sub' '/classifier/classifier.2/Gemm'" in text
    for flag in ("--har-path", "--output-har-path", "--output-dir", "--calib-set-path", "--model-script"):
        assert flag in text, flag
    assert "hef-info" not in text
    assert "precision_mode=a16_w16" in (example_bundle / "models/hailo/model_script.alls").read_text()
    readme = (example_bundle / "models/hailo/README.md").read_text()
    assert "fsq_codes" in readme and "softmax" in readme


def test_int8_recorded(example_bundle: Path) -> None:
    figures = _hailo(example_bundle)["int8"]
    assert figures["per_channel"] is True and figures["samples"] == 64
    assert 0.9 <= figures["argmax_agreement"] <= 1.0
    assert 0.0 < figures["code_agreement"] <= 1.0


def test_target_hailo_fails_only_on_the_missing_hef(
    example_bundle: Path, bundle_copy: Path, run_checks
) -> None:
    rc, report, output = run_checks(bundle_copy, "hailo")
    assert rc == 1, output
    assert report is not None
    assert report["errors"] == [f"test_hailo.py::test_hef_present: {NOT_COMPILED}"], report["errors"]
    ran = set(report["checks_run"])
    for name in (
        "test_hailo.py::test_kit_complete",
        "test_hailo.py::test_compile_script",
        "test_hailo.py::test_device_onnx_supported_ops",
        "test_hailo.py::test_calibration_set",
        "test_targets.py::test_parity[hailo-behavioral_codes-64]",
        "test_targets.py::test_parity[hailo-confidence-64]",
        "test_hailo.py::test_int8_agreement",
    ):
        assert name in ran, name
    skipped = {s["id"] for s in report["skipped"]}
    assert "test_hailo.py::test_hef_integrity" in skipped
