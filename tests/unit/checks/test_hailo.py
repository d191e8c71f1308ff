"""The Hailo checks (``conv2d_bundle/targets/hailo/test_hailo.py``) called directly: the example's compile
kit passes; a kit with a file missing, a broken script, a wrong device ONNX or calibration set, or a HEF for
another device or network fails, naming the file and what is wrong."""

from __future__ import annotations

import re
import shutil
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import pytest

from conv2d_bundle.errors import BundleWarning
from conv2d_bundle.parity.tolerance import Int8Policy, TolerancePolicy
from conv2d_bundle.targets.hailo import NOT_COMPILED
from conv2d_bundle.targets.hailo import test_hailo as checks
from tests.unit.checks import fails, passes, skips

KIT = "models/hailo"
HEF = "models/hailo.hef"
REAL_HEF = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "hef" / "real_hailo8_dfc3.27.hef"


def kit_bundle(root: Path) -> SimpleNamespace:
    return SimpleNamespace(bundle_dir=root, path=lambda rel: root / rel)


@pytest.fixture
def kit(example_bundle: Path, tmp_path: Path) -> Path:
    """A copy of the example's kit files (without the large ones), as ``<root>/models/hailo``."""
    root = tmp_path / "b"
    (root / KIT).mkdir(parents=True)
    for name in ("compile.sh", "model_script.alls", "README.md"):
        shutil.copy2(example_bundle / KIT / name, root / KIT / name)
    for name in ("model.onnx", "calib_set.npy"):
        (root / KIT / name).write_bytes(b"x")
    return root


@pytest.fixture
def info(example: Any) -> dict[str, Any]:
    import copy

    return copy.deepcopy(dict(example.format_info("hailo")))


OPTIONS = {"hw_arch": "hailo8"}


# -- the kit ----------------------------------------------------------------------------------------
def test_kit_complete(kit: Path, info: dict[str, Any]) -> None:
    checks.test_kit_complete(kit_bundle(kit), info)
    (kit / KIT / "compile.sh").unlink()
    (kit / KIT / "README.md").unlink()
    (kit / KIT / "README.md").mkdir()  # not a file
    assert (
        fails(checks.test_kit_complete, kit_bundle(kit), info) == "models/hailo/ lacks compile.sh, README.md"
    )


def compile_fails(kit: Path, info: dict[str, Any], text: str, options: Any = OPTIONS) -> str:
    (kit / KIT / "compile.sh").write_text(text)
    return fails(checks.test_compile_script, kit_bundle(kit), info, options, {})


def test_compile_script_passes_on_the_kit(kit: Path, info: dict[str, Any]) -> None:
    details: dict[str, Any] = {}
    checks.test_compile_script(kit_bundle(kit), info, OPTIONS, details)
    assert details == {"hw_arch": "hailo8", "net_name": "conv2d_fsq"}
    checks.test_compile_script(kit_bundle(kit), info, {}, details)  # hailo8 is the default
    assert details["hw_arch"] == "hailo8"


def test_compile_script_missing(kit: Path, info: dict[str, Any]) -> None:
    (kit / KIT / "compile.sh").unlink()
    assert fails(checks.test_compile_script, kit_bundle(kit), info, OPTIONS, {}) == (
        "models/hailo/compile.sh is missing"
    )


def test_compile_script_names_each_problem(kit: Path, info: dict[str, Any]) -> None:
    script = (kit / KIT / "compile.sh").read_text()
    (kit / KIT / "compile.sh").chmod(0o644)
    assert compile_fails(kit, info, script) == "models/hailo/compile.sh is not executable"
    (kit / KIT / "compile.sh").chmod(0o755)
    empty = "#!/bin/sh\n# hailo parser onnx, hailo optimize, hailo compiler --hw-arch hailo8 --net-name conv2d_fsq\n"
    assert compile_fails(kit, info, empty) == (
        "models/hailo/compile.sh lacks `set -euo pipefail`; "
        "does not pass --hw-arch hailo8 (the configured hw_arch) to all three commands; "
        "does not pass --net-name conv2d_fsq; gives no --end-node-names"
    )
    assert compile_fails(kit, info, "") == (
        "models/hailo/compile.sh lacks `hailo parser onnx`; lacks `hailo optimize`; lacks `hailo compiler`; "
        "lacks `set -euo pipefail`; "
        "does not pass --hw-arch hailo8 (the configured hw_arch) to all three commands; "
        "does not pass --net-name conv2d_fsq; gives no --end-node-names"
    )


def test_compile_script_commented_out_flags_do_not_count(kit: Path, info: dict[str, Any]) -> None:
    script = (kit / KIT / "compile.sh").read_text()
    edited = script.replace("set -euo pipefail", "# set -euo pipefail").replace(
        "hailo compiler", "  # hailo compiler"
    )
    assert compile_fails(kit, info, edited) == (
        "models/hailo/compile.sh lacks `set -euo pipefail`; "
        "does not pass --hw-arch hailo8 (the configured hw_arch) to all three commands"
    )


def test_compile_script_for_another_device_or_net(kit: Path, info: dict[str, Any]) -> None:
    script = (kit / KIT / "compile.sh").read_text()
    assert compile_fails(kit, info, script, {"hw_arch": "hailo8l"}) == (
        "models/hailo/compile.sh does not pass --hw-arch hailo8l (the configured hw_arch) to all three commands"
    )
    # a script for hailo8l does not pass for a hailo8 bundle, though "--hw-arch hailo8" is a prefix of it
    assert compile_fails(kit, info, script.replace("--hw-arch hailo8", "--hw-arch hailo8l"), {}) == (
        "models/hailo/compile.sh does not pass --hw-arch hailo8 (the configured hw_arch) to all three commands"
    )
    info["net_name"] = "other"
    assert compile_fails(kit, info, script) == "models/hailo/compile.sh does not pass --net-name other"


@pytest.mark.parametrize("bad", ["hailo hef-info x.hef", "hailo compiler --onnx model.onnx"])
def test_compile_script_with_commands_that_do_not_exist(kit: Path, info: dict[str, Any], bad: str) -> None:
    script = (kit / KIT / "compile.sh").read_text() + bad + "\n"
    assert compile_fails(kit, info, script) == (
        "models/hailo/compile.sh uses commands that do not exist (hailo hef-info, hailo compiler --onnx)"
    )


def test_model_script(kit: Path, info: dict[str, Any]) -> None:
    checks.test_model_script(kit_bundle(kit), info)
    path = kit / KIT / "model_script.alls"
    path.write_text("# comment\n\nnormalization1 = normalization([0.0], [1.0])  \n")
    checks.test_model_script(kit_bundle(kit), info)
    message = "models/hailo/model_script.alls: no commands, or lines that are not `command(args)`: "
    path.write_text("# only a comment\n\n")
    assert fails(checks.test_model_script, kit_bundle(kit), info) == message + "[]"
    path.write_text("a(1)\nb\nc(\n  d)\ne)\nf(2)\n")
    assert fails(checks.test_model_script, kit_bundle(kit), info) == message + "['b', 'c(', '  d)']"
    path.unlink()
    assert (
        fails(checks.test_model_script, kit_bundle(kit), info) == "models/hailo/model_script.alls is missing"
    )


# -- the device ONNX --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def device(example_bundle: Path) -> onnx.ModelProto:
    return onnx.load(str(example_bundle / KIT / "model.onnx"))


@pytest.fixture
def edited(device: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(device)
    return copy


def test_device_onnx_static(device: onnx.ModelProto, model_spec: Any, info: dict[str, Any]) -> None:
    details: dict[str, Any] = {}
    checks.test_device_onnx_static(device, model_spec, info, details)
    assert details == {"input_shape": [1, 9, 2, 100]}
    checks.test_device_onnx_static(device, model_spec, {}, {})  # outputs are compared only where declared


def test_device_onnx_static_failures(edited: onnx.ModelProto, model_spec: Any, info: dict[str, Any]) -> None:
    info["device_outputs"] = ["class_logits", "bounded_latent"]
    assert fails(checks.test_device_onnx_static, edited, model_spec, info, {}) == (
        "models/hailo/model.onnx outputs ['bounded_latent', 'class_logits'] != metadata's device_outputs "
        "['class_logits', 'bounded_latent']"
    )
    edited.graph.output[1].type.tensor_type.shape.dim[0].dim_param = "N"
    assert fails(checks.test_device_onnx_static, edited, model_spec, info, {}) == (
        "models/hailo/model.onnx output class_logits has a symbolic axis 'N': the device part must be static"
    )
    edited.graph.output[1].type.tensor_type.shape.dim[0].dim_value = 0
    assert fails(checks.test_device_onnx_static, edited, model_spec, info, {}) == (
        "models/hailo/model.onnx output class_logits has an axis of size 0: the device part must be static"
    )
    dim = edited.graph.input[0].type.tensor_type.shape.dim[0]
    dim.dim_value = 8
    assert fails(checks.test_device_onnx_static, edited, model_spec, info, {}) == (
        "models/hailo/model.onnx input shape [8, 9, 2, 100] != expected [1, 9, 2, 100] (batch 1, static)"
    )
    edited.graph.input[0].name = "x"
    assert fails(checks.test_device_onnx_static, edited, model_spec, info, {}) == (
        "models/hailo/model.onnx inputs ['x'] != [imu_input]"
    )


def test_device_onnx_with_a_symbolic_axis_fails_naming_it(
    edited: onnx.ModelProto, model_spec: Any, info: dict[str, Any]
) -> None:
    """What MobileNetV2's unsimplified export held (an output axis torch could not infer): the static check names
    it, and so does the fixture the emulator and device checks share, instead of crashing on int('...')."""
    from conv2d_bundle.errors import HefError
    from conv2d_bundle.targets.hailo.device import device_outputs
    from conv2d_bundle.targets.onnx.graph import dims

    message = (
        "models/hailo/model.onnx output class_logits has a symbolic axis 'Gemmlogits_dim_0': the device part "
        "must be static"
    )
    edited.graph.output[1].type.tensor_type.shape.dim[0].dim_param = "Gemmlogits_dim_0"
    assert fails(checks.test_device_onnx_static, edited, model_spec, info, {}) == message
    with pytest.raises(HefError) as raised:
        device_outputs(info, {o.name: dims(o) for o in edited.graph.output})
    assert str(raised.value) == message


def test_device_onnx_static_judges_every_recorded_tensor(
    edited: onnx.ModelProto, model_spec: Any, info: dict[str, Any]
) -> None:
    tensors = list(edited.graph.value_info)
    assert len(tensors) >= 5  # the simplifier records every intermediate shape, all static
    checks.test_device_onnx_static(edited, model_spec, info, {})
    tensors[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    assert fails(checks.test_device_onnx_static, edited, model_spec, info, {}) == (
        f"models/hailo/model.onnx tensor {tensors[0].name} has a symbolic axis 'batch': the device part must be "
        "static"
    )
    for t in tensors[1:5]:
        t.type.tensor_type.shape.dim[0].Clear()  # neither a value nor a name: unknown
    message = fails(checks.test_device_onnx_static, edited, model_spec, info, {})
    assert message.endswith(
        f"; tensor {tensors[2].name} has an axis of unknown size; and 2 more tensors: the device part must be static"
    ), message


def test_device_onnx_versions(device: onnx.ModelProto, edited: onnx.ModelProto) -> None:
    details: dict[str, Any] = {}
    checks.test_device_onnx_versions(device, details)
    assert details == {"opset": 13, "ir_version": 7}
    edited.opset_import[0].version = 11
    for ir in (3, 9):
        edited.ir_version = ir
        checks.test_device_onnx_versions(edited, {})
    for ir in (2, 10):
        edited.ir_version = ir
        assert fails(checks.test_device_onnx_versions, edited, {}) == (
            f"models/hailo/model.onnx IR version {ir} > 9 (the Hailo parser rejects IR 10)"
        )
    for opset in (12, 14, 17):
        edited.opset_import[0].version = opset
        assert fails(checks.test_device_onnx_versions, edited, details) == (
            f"models/hailo/model.onnx opset {opset} not in (11, 13) (the safe choices for the Hailo parser)"
        )
        assert details["opset"] == opset


def test_device_onnx_supported_ops(device: onnx.ModelProto, edited: onnx.ModelProto) -> None:
    details: dict[str, Any] = {}
    checks.test_device_onnx_supported_ops(device, details)
    assert details["ops"] == sorted({n.op_type for n in device.graph.node}) and "Conv" in details["ops"]
    assert details["fused"] == {}  # the example has no GELU, LayerNorm or HardSwish
    edited.graph.node[0].op_type = "NonMaxSuppression"
    edited.graph.node[1].op_type = "Einsum"
    edited.graph.node[2].op_type = "Einsum"
    first = edited.graph.node[0].name
    assert fails(checks.test_device_onnx_supported_ops, edited, {}) == (
        "models/hailo/model.onnx uses operators outside the Hailo supported list: "
        f"['Einsum', 'NonMaxSuppression'] (run them on the host); the host part would start at NonMaxSuppression "
        f"node {first!r} (the first in topological order), which reads the graph input: no device part would be "
        "left before it"
    )


def test_device_onnx_unsupported_op_names_where_the_host_part_starts(edited: onnx.ModelProto) -> None:
    """A rejected operator on the class-logit branch: the host part starts there and the latent stays a device
    output; the message gives the --end-node-names that cut the graph there."""
    gemm = next(n for n in edited.graph.node if n.output[0] == "class_logits")
    gemm.op_type = "TopK"
    feeding = next(n for n in edited.graph.node if gemm.input[0] in n.output)
    latent = next(n for n in edited.graph.node if n.output[0] == "bounded_latent")
    details: dict[str, Any] = {}
    assert fails(checks.test_device_onnx_supported_ops, edited, details) == (
        "models/hailo/model.onnx uses operators outside the Hailo supported list: ['TopK'] (run them on the "
        f"host); the host part would start at TopK node {gemm.name!r} (the first in topological order), the "
        f"device part would end at {gemm.input[0]!r}, 'bounded_latent': --end-node-names {feeding.name!r} "
        f"{latent.name!r}"
    )
    assert details["unsupported"] == ["TopK"] and details["end_node_names"] == [feeding.name, latent.name]
    assert latent.name == "/Sub"  # the kit's own end node for the latent, kept


# -- calibration and int8 ---------------------------------------------------------------------------
def calib(n: int = 64, dtype: Any = np.float32, shape: tuple[int, ...] = (2, 100, 9)) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, *shape)).astype(dtype)


CONFIG_CALIB = {"calibration": {"source": "config"}}


def test_calibration_set(model_spec: Any, info: dict[str, Any]) -> None:
    details: dict[str, Any] = {}
    with pytest.warns(BundleWarning, match=r"^models/hailo/calib_set.npy is golden/synthetic windows; real "):
        checks.test_calibration_set(calib(256), model_spec, info, details)
    assert details == {"shape": [256, 2, 100, 9], "dtype": "float32"}
    for no_source in ({}, {"calibration": {}}):
        with pytest.warns(BundleWarning, match="golden/synthetic"):
            checks.test_calibration_set(calib(), model_spec, no_source, {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checks.test_calibration_set(calib(64), model_spec, CONFIG_CALIB, {})  # real windows, the minimum
        real = {"calibration": {"source": "reference.inputs", "synthetic": 0}}  # export.reference.inputs
        checks.test_calibration_set(calib(64), model_spec, real, {})
    topped_up = {"calibration": {"source": "reference.inputs", "synthetic": 24}}  # 40 real + 24 synthetic
    with pytest.warns(BundleWarning, match="golden/synthetic"):
        checks.test_calibration_set(calib(64), model_spec, topped_up, {})


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (calib(dtype=np.float64), "models/hailo/calib_set.npy is float64, expected float32"),
        (
            calib(shape=(9, 2, 100)),
            "models/hailo/calib_set.npy shape [64, 9, 2, 100] != [N, 2, 100, 9] (NHWC)",
        ),
        (calib(shape=(2, 100)), "models/hailo/calib_set.npy shape [64, 2, 100] != [N, 2, 100, 9] (NHWC)"),
        (
            calib(shape=(2, 100, 9, 1)),
            "models/hailo/calib_set.npy shape [64, 2, 100, 9, 1] != [N, 2, 100, 9] (NHWC)",
        ),
        (calib(63), "models/hailo/calib_set.npy holds 63 windows, fewer than 64"),
        (
            np.where(np.arange(100)[:, None] == 5, np.nan, calib()).astype(np.float32),
            "models/hailo/calib_set.npy holds NaN or infinite values",
        ),
        (
            np.full((64, 2, 100, 9), -np.inf, np.float32),
            "models/hailo/calib_set.npy holds NaN or infinite values",
        ),
        (
            np.ones((64, 2, 100, 9), np.float32),
            "models/hailo/calib_set.npy is constant: nothing to calibrate on",
        ),
    ],
    ids=["dtype", "layout", "rank3", "rank5", "few", "nan", "inf", "constant"],
)
def test_calibration_set_failures(model_spec: Any, array: np.ndarray, message: str) -> None:
    assert fails(checks.test_calibration_set, array, model_spec, CONFIG_CALIB, {}) == message


def test_int8_agreement(info: dict[str, Any]) -> None:
    details: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checks.test_int8_agreement(info, OPTIONS, details)
    assert details["figures"] == info["int8"]
    assert details["thresholds"] == {"code_agreement": 0.5, "argmax_agreement": 0.95}
    with pytest.warns(BundleWarning, match="keeps FSQ codes for 98.4% of the golden windows, below "):
        checks.test_int8_agreement(info, {"min_code_agreement": 0.99}, {})


def test_int8_agreement_without_figures(info: dict[str, Any]) -> None:
    assert (
        fails(checks.test_int8_agreement, {}, OPTIONS, {}) == "metadata.json formats.hailo has no int8 record"
    )
    assert fails(checks.test_int8_agreement, {"int8": [0.9]}, OPTIONS, {}) == (
        "metadata.json formats.hailo has no int8 record"
    )
    assert skips(checks.test_int8_agreement, {"int8": {"error": "onnxruntime lacks QDQ"}}, OPTIONS, {}) == (
        "int8 sensitivity was not measured: onnxruntime lacks QDQ"
    )
    none = "int8 agreement not verified: no figure was measured (the model has no codes or probabilities output to compare)"
    assert skips(checks.test_int8_agreement, {"int8": {"samples": 64}}, OPTIONS, {}) == none
    assert skips(checks.test_int8_agreement, {"int8": {"code_agreement": None}}, OPTIONS, {}) == none
    details: dict[str, Any] = {}
    checks.test_int8_agreement({"int8": {"argmax_agreement": 1}}, OPTIONS, details)  # one figure is enough
    assert details["figures"] == {"argmax_agreement": 1}


# -- the HEF ----------------------------------------------------------------------------------------
def test_hef_present(kit: Path, info: dict[str, Any]) -> None:
    bundle = kit_bundle(kit)
    assert fails(checks.test_hef_present, bundle, info) == NOT_COMPILED
    built = {**info, "status": "built", "file": HEF}
    assert fails(checks.test_hef_present, bundle, built) == (
        "metadata.json says formats.hailo is built, but models/hailo.hef is missing"
    )
    (kit / HEF).write_bytes(b"hef")
    checks.test_hef_present(bundle, built)
    assert fails(checks.test_hef_present, bundle, info) == (
        "models/hailo.hef is present but metadata.json formats.hailo is 'kit', not built"
    )
    assert fails(checks.test_hef_present, bundle, {**built, "file": "models/other.hef"}) == (
        "models/hailo.hef is present but metadata.json formats.hailo is 'built', not built"
    )


def hef(arch: str = "HAILO8P", groups: tuple[str, ...] = ("conv2d_fsq",)) -> SimpleNamespace:
    return SimpleNamespace(
        hw_arch=arch, network_groups=groups, header_version=0, hash_algorithm="md5", sdk_version="3.27.0"
    )


def test_hef_integrity_records_the_header() -> None:
    details: dict[str, Any] = {}
    checks.test_hef_integrity(hef(), details)
    assert details == {"header_version": 0, "hash_algorithm": "md5", "sdk_version": "3.27.0"}


def test_hef_architecture() -> None:
    details: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checks.test_hef_architecture(hef("HAILO8P"), {}, details)
    assert details == {"hef_arch": "HAILO8P", "hw_arch": "hailo8"}
    with pytest.warns(BundleWarning, match=r"^models/hailo.hef: the HEF was compiled for HAILO8L and runs"):
        checks.test_hef_architecture(hef("HAILO8L"), OPTIONS, {})
    assert fails(checks.test_hef_architecture, hef("HAILO8"), {"hw_arch": "hailo8l"}, {}) == (
        "models/hailo.hef was compiled for HAILO8: a hailo8l device does not accept a HEF compiled for HAILO8 "
        "(configured hw_arch hailo8l)"
    )
    assert fails(checks.test_hef_architecture, hef(), {"hw_arch": "hailo15"}, {}) == (
        "models/hailo.hef: unknown Hailo device 'hailo15' (known: hailo8, hailo8l)"
    )


def test_hef_network_name(info: dict[str, Any]) -> None:
    details: dict[str, Any] = {}
    checks.test_hef_network_name(hef(groups=("a", "conv2d_fsq")), info, details)
    assert details == {"network_groups": ["a", "conv2d_fsq"], "net_name": "conv2d_fsq"}
    assert fails(checks.test_hef_network_name, hef(groups=("yolov8n",)), info, {}) == (
        "models/hailo.hef holds network groups ['yolov8n'], not the kit's --net-name 'conv2d_fsq': "
        "it was compiled from another model"
    )


def test_hef_size(tmp_path: Path) -> None:
    small, large = tmp_path / "small.hef", tmp_path / "large.hef"
    small.write_bytes(b"\0" * 10)
    with open(large, "wb") as f:
        f.truncate(10 * 2**20 + 1)
    details: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checks.test_hef_size(small, details)
        (tmp_path / "limit.hef").write_bytes(b"")
        with open(tmp_path / "limit.hef", "wb") as f:
            f.truncate(10 * 2**20)
        checks.test_hef_size(tmp_path / "limit.hef", {})
    assert details == {"size_bytes": 10}
    with pytest.warns(BundleWarning, match=r"^models/hailo.hef is 10.0 MB \(over 10 MB\)$"):
        checks.test_hef_size(large, details)
    assert details == {"size_bytes": 10 * 2**20 + 1}


# -- hailortcli parse-hef (a fake tool on PATH) -----------------------------------------------------
PARSE_HEF = """\
Architecture HEF was compiled for: {arch}
Network group name: conv2d_fsq, Multi Context - Number of contexts: 1
    Network name: conv2d_fsq/conv2d_fsq
        VStream infos:
            Input  conv2d_fsq/input_layer1 UINT8, NHWC({shape})
            Output conv2d_fsq/output_layer1 UINT8, NC(4)
"""


@pytest.fixture
def hailortcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from conv2d_bundle.targets.hailo import hef as hef_module

    outputs: dict[str, Any] = {}
    monkeypatch.setattr(hef_module, "find_hailortcli", lambda: outputs.get("tool"))

    def run(path: Any, timeout: float = 60) -> Any:
        outputs["path"] = path
        if isinstance(outputs["text"], Exception):
            raise outputs["text"]
        return hef_module.parse_hailortcli_output(outputs["text"])

    monkeypatch.setattr(hef_module, "run_parse_hef", run)
    return outputs


def test_hef_parse_hef(hailortcli: dict[str, Any], model_spec: Any, tmp_path: Path) -> None:
    from conv2d_bundle.errors import HefError

    path = tmp_path / "m.hef"
    assert skips(checks.test_hef_parse_hef, path, hef(), model_spec, OPTIONS, {}) == (
        "hailortcli is not on PATH (it comes with HailoRT): parse-hef cross-check not run"
    )
    hailortcli["tool"] = "/usr/bin/hailortcli"
    hailortcli["text"] = PARSE_HEF.format(arch="HAILO8", shape="2x100x9")
    details: dict[str, Any] = {}
    checks.test_hef_parse_hef(path, hef(), model_spec, OPTIONS, details)
    assert details["parse_hef"]["architecture"] == "HAILO8"
    assert hailortcli["path"] == path  # this HEF is the one cross-checked
    checks.test_hef_parse_hef(path, hef(), model_spec, {}, {})  # hailo8 by default
    hailortcli["text"] = "Network group name: conv2d_fsq, Single Context\n"
    assert fails(checks.test_hef_parse_hef, path, hef(), model_spec, OPTIONS, {}) == (
        "hailortcli parse-hef says models/hailo.hef is for , not the configured device"
    )
    hailortcli["text"] = PARSE_HEF.format(arch="HAILO15H", shape="2x100x9")
    assert fails(checks.test_hef_parse_hef, path, hef(), model_spec, OPTIONS, {}) == (
        "hailortcli parse-hef says models/hailo.hef is for HAILO15H, not the configured device"
    )
    hailortcli["text"] = PARSE_HEF.format(arch="HAILO8", shape="2x100x9")
    assert fails(checks.test_hef_parse_hef, path, hef(), model_spec, {"hw_arch": "hailo8l"}, {}) == (
        "hailortcli parse-hef says models/hailo.hef is for HAILO8, not the configured device"
    )
    hailortcli["text"] = PARSE_HEF.format(arch="HAILO8L", shape="2x100x9")
    checks.test_hef_parse_hef(path, hef(), model_spec, {"hw_arch": "hailo8l"}, {})  # the configured device
    hailortcli["text"] = PARSE_HEF.format(arch="HAILO8", shape="9x2x100")
    assert fails(checks.test_hef_parse_hef, path, hef(), model_spec, OPTIONS, {}) == (
        "hailortcli parse-hef input shapes [[9, 2, 100]] do not include [2, 100, 9] (NHWC)"
    )
    hailortcli["text"] = (
        "Architecture HEF was compiled for: HAILO8\n"  # no vstreams listed: nothing to compare
    )
    checks.test_hef_parse_hef(path, hef(), model_spec, OPTIONS, {})
    hailortcli["text"] = HefError("hailortcli parse-hef m.hef failed (exit 1): corrupted")
    assert fails(checks.test_hef_parse_hef, path, hef(), model_spec, OPTIONS, {}) == (
        "models/hailo.hef: hailortcli parse-hef m.hef failed (exit 1): corrupted"
    )


@pytest.mark.skipif(not REAL_HEF.is_file(), reason="the real HEF is shared test data, not in the repo")
def test_real_hef_is_for_another_network() -> None:
    """The shared real HEF (HAILO8P, a vision network) passes the architecture check for a Hailo-8 and fails
    the network-name check of this kit."""
    from conv2d_bundle.targets.hailo.hef import read_hef

    real = read_hef(REAL_HEF)
    checks.test_hef_architecture(real, OPTIONS, {})
    assert "it was compiled from another model" in fails(
        checks.test_hef_network_name, real, {"net_name": "conv2d_fsq"}, {}
    )


# -- int8 evidence: the HEF on a device (HailoRT's fake), the DFC's quantized emulator ------------------
FAKE_HAILORT = Path(__file__).resolve().parents[2] / "hailo" / "fakes_hailort"
CODES, CONF = "behavioral_codes", "confidence"
STRICT = Int8Policy(
    min_code_agreement=1.0, min_argmax_agreement=1.0, min_psnr_db=200.0, source="--tolerance-policy p.yaml"
)


@pytest.fixture(scope="module")
def golden(example_bundle: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    inputs = np.load(example_bundle / "reference" / "inputs.npy")
    with np.load(example_bundle / "reference" / "outputs.npz") as data:
        return inputs, {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def device_hef_file(example_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HEF for the example's kit whose vstreams the fake HailoRT runs (tests/hailo/test_device.py)."""
    from tests.hailo.test_device import describe_hef, device_hef

    path = tmp_path_factory.mktemp("hef") / "conv2d_fsq.hef"
    path.write_bytes(device_hef(example_bundle, describe_hef(example_bundle)))
    return path


@pytest.fixture(scope="module")
def on_device(device_hef_file: Path, device: onnx.ModelProto, golden: Any, example: Any) -> dict[str, Any]:
    """What the HEF gives on the fake's "faithful" and "wrong" devices: (session, device outputs on the
    golden windows), through the same ``open_hef`` the check's fixture uses."""
    from conv2d_bundle.targets.hailo.device import device_outputs, open_hef
    from conv2d_bundle.targets.onnx.graph import dims

    parts = device_outputs(example.format_info("hailo"), {o.name: dims(o) for o in device.graph.output})
    nhwc = np.ascontiguousarray(golden[0].transpose(0, 2, 3, 1), dtype=np.float32)
    runs: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(FAKE_HAILORT))
        mp.delitem(sys.modules, "hailo_platform", raising=False)
        for mode in ("faithful", "wrong", "zeros"):
            mp.setenv("FAKE_HAILORT_DEVICE", mode)
            with open_hef(device_hef_file, parts) as session:
                runs[mode] = (session, session.infer(nhwc))
    return runs


def test_hef_on_device_faithful_passes_with_figures(
    on_device: dict[str, Any], golden: Any, model_spec: Any, info: dict[str, Any]
) -> None:
    """A device that quantizes as the HEF says keeps the golden results: both outputs pass, with the vstreams,
    the figures and the policy they were judged by in the details."""
    session, raw = on_device["faithful"]
    results = checks._host(raw, model_spec, info)
    assert sorted(results) == [CODES, CONF] and results[CODES].dtype == np.int64
    details: dict[str, dict[str, Any]] = {CODES: {}, CONF: {}}
    for name in (CODES, CONF):
        passes(
            checks.test_hef_on_device,
            session,
            results,
            golden[1],
            model_spec,
            TolerancePolicy(),
            name,
            details[name],
        )
    vstreams = {"conv2d_fsq/fc1": "bounded_latent", "conv2d_fsq/fc2": "class_logits"}
    for name in (CODES, CONF):
        assert (
            details[name]["vstreams"] == vstreams
            and details[name]["input_vstream"] == "conv2d_fsq/input_layer1"
        )
        assert details[name]["policy"] == Int8Policy().as_dict() and details[name]["shape"] == list(
            golden[1][name].shape
        )
    assert 0.9 <= details[CODES]["code_agreement"] <= 1.0 and "psnr_db" not in details[CODES]
    assert details[CONF]["argmax_agreement"] >= 0.95 and details[CONF]["psnr_db"] >= 30
    assert "code_agreement" not in details[CONF]


def test_hef_on_device_wrong_fails_naming_output_and_figure(
    on_device: dict[str, Any], golden: Any, model_spec: Any, info: dict[str, Any]
) -> None:
    """A device that returns each frame's class logits for the next frame: the codes still agree, the
    confidences do not, and the failure names the output, the figure and the floor; the figures are kept."""
    session, raw = on_device["wrong"]
    results = checks._host(raw, model_spec, info)
    passes(checks.test_hef_on_device, session, results, golden[1], model_spec, TolerancePolicy(), CODES, {})
    details: dict[str, Any] = {}
    message = fails(
        checks.test_hef_on_device, session, results, golden[1], model_spec, TolerancePolicy(), CONF, details
    )
    assert re.fullmatch(
        r"the HEF on the device: confidence argmax agreement \d+\.\d% < int8\.min_argmax_agreement 95\.0% "
        r"\(built-in policy\); the HEF on the device: confidence psnr db -?\d+\.\d dB < int8\.min_psnr_db 30 dB "
        r"\(built-in policy\)(; the HEF on the device: confidence: top-1 agreement .* no better than .*)?",
        message,
    ), message
    assert details["argmax_agreement"] < 0.95 and details["psnr_db"] < 30
    assert details["vstreams"] == dict(session.vstreams)


def test_hef_on_device_of_zeros_is_judged_against_the_constant_answer(
    on_device: dict[str, Any], golden: Any, model_spec: Any, info: dict[str, Any]
) -> None:
    """A device that computes nothing: every output zero. On the example's golden set its codes still agree
    with most golden codes (one code covers most windows), enough for the int8 floor; it fails because a
    constant answer does as well, and the message names both figures."""
    session, raw = on_device["zeros"]
    results = checks._host(raw, model_spec, info)
    details: dict[str, Any] = {}
    message = fails(
        checks.test_hef_on_device, session, results, golden[1], model_spec, TolerancePolicy(), CODES, details
    )
    assert details["code_agreement"] <= details["constant_agreement"], details
    assert details["code_agreement"] >= 0.9  # the int8 floor alone let it pass (95.3% on the example)
    assert "< int8.min_code_agreement" not in message
    assert re.search(
        r"behavioral_codes: code agreement \d+\.\d% is no better than answering the constant code -?\d+ "
        r"\(\d+\.\d% of the golden values\)",
        message,
    ), message


def test_hef_on_device_is_judged_by_the_verifiers_int8_policy(
    on_device: dict[str, Any], golden: Any, model_spec: Any, info: dict[str, Any]
) -> None:
    session, raw = on_device["faithful"]
    results = checks._host(raw, model_spec, info)
    policy = TolerancePolicy(int8=STRICT)
    details: dict[str, Any] = {}
    message = fails(checks.test_hef_on_device, session, results, golden[1], model_spec, policy, CONF, details)
    assert message.startswith("the HEF on the device: confidence psnr db ")
    assert message.endswith(" dB < int8.min_psnr_db 200 dB (--tolerance-policy p.yaml)")
    assert details["policy"] == STRICT.as_dict()


def test_hef_on_device_output_missing(
    on_device: dict[str, Any], golden: Any, model_spec: Any, info: dict[str, Any]
) -> None:
    """Without the host post-processing (a kit that is not split) the device outputs are not the configured
    ones; an output the golden data lacks is named too."""
    session, raw = on_device["faithful"]
    unsplit = checks._host(raw, model_spec, {**info, "split": False})
    assert unsplit == raw
    assert fails(
        checks.test_hef_on_device, session, unsplit, golden[1], model_spec, TolerancePolicy(), CODES, {}
    ) == (
        "the HEF on the device gave no behavioral_codes after the host post-processing (has "
        "['bounded_latent', 'class_logits'])"
    )
    assert checks._host(raw, model_spec, {}) == raw  # split is recorded only where the kit splits
    results = checks._host(raw, model_spec, info)
    without = {CODES: golden[1][CODES]}
    assert fails(
        checks.test_hef_on_device, session, results, without, model_spec, TolerancePolicy(), CONF, {}
    ) == ("reference/outputs.npz has no confidence")


def test_no_device_is_not_verified(device_hef_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without HailoRT or without a device, ``open_hef`` says why (the check's fixture skips with it)."""
    from conv2d_bundle.targets.hailo.device import NEEDS, DeviceUnavailable, open_hef

    assert NEEDS == "needs a Hailo device with HailoRT"
    monkeypatch.syspath_prepend(str(FAKE_HAILORT))
    monkeypatch.delitem(sys.modules, "hailo_platform", raising=False)
    monkeypatch.delenv("FAKE_HAILORT_DEVICE", raising=False)
    with pytest.raises(DeviceUnavailable, match=r"^no Hailo device answered: HailoRTException: "):
        with open_hef(device_hef_file, []):
            pass
    monkeypatch.setitem(sys.modules, "hailo_platform", None)  # type: ignore[arg-type]
    with pytest.raises(
        DeviceUnavailable, match=r"^hailo_platform \(HailoRT's Python API\) is not importable"
    ):
        with open_hef(device_hef_file, []):
            pass


@pytest.fixture(scope="module")
def emulator(
    example_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, np.ndarray]]:
    """The device outputs of a faithful and a wrong emulator run, as the check's fixture reads them."""
    from tests.hailo.test_device import emulator_npz

    tmp = tmp_path_factory.mktemp("emulator")
    runs = {}
    for name, shuffle in (("faithful", False), ("wrong", True)):
        with np.load(emulator_npz(example_bundle, tmp / f"{name}.npz", shuffle_logits=shuffle)) as data:
            runs[name] = {k: data[k].reshape(len(data[k]), -1) for k in data.files}
    return runs


def test_emulator_int8(emulator: dict[str, Any], golden: Any, model_spec: Any, info: dict[str, Any]) -> None:
    """The DFC's quantized emulator outputs, after the host post-processing, against the golden outputs: a
    faithful run passes with its figures and their source; a wrong one fails, naming the output and figure."""
    outputs = checks._host(emulator["faithful"], model_spec, info)
    details: dict[str, dict[str, Any]] = {CODES: {}, CONF: {}}
    for name in (CODES, CONF):
        passes(
            checks.test_emulator_int8, outputs, golden[1], model_spec, TolerancePolicy(), name, details[name]
        )
        assert details[name]["source"] == "models/hailo/emulator_outputs.npz"
        assert details[name]["policy"] == Int8Policy().as_dict()
    assert 0.9 <= details[CODES]["code_agreement"] <= 1.0
    assert details[CONF]["argmax_agreement"] >= 0.95 and details[CONF]["psnr_db"] >= 30

    wrong = checks._host(emulator["wrong"], model_spec, info)
    passes(checks.test_emulator_int8, wrong, golden[1], model_spec, TolerancePolicy(), CODES, {})
    failed: dict[str, Any] = {}
    message = fails(checks.test_emulator_int8, wrong, golden[1], model_spec, TolerancePolicy(), CONF, failed)
    assert message.startswith("the DFC's quantized emulator: confidence argmax agreement ")
    assert (
        "< int8.min_argmax_agreement 95.0% (built-in policy); the DFC's quantized emulator: confidence psnr db "
        in message
    )
    assert failed["source"] == "models/hailo/emulator_outputs.npz" and failed["argmax_agreement"] < 0.95

    strict = fails(
        checks.test_emulator_int8, outputs, golden[1], model_spec, TolerancePolicy(int8=STRICT), CONF, {}
    )
    assert strict.endswith(" dB < int8.min_psnr_db 200 dB (--tolerance-policy p.yaml)")
    assert fails(
        checks.test_emulator_int8, emulator["faithful"], golden[1], model_spec, TolerancePolicy(), CONF, {}
    ) == (
        "the DFC's quantized emulator gave no confidence after the host post-processing (has "
        "['bounded_latent', 'class_logits'])"
    )
    assert fails(checks.test_emulator_int8, outputs, {}, model_spec, TolerancePolicy(), CODES, {}) == (
        "reference/outputs.npz has no behavioral_codes"
    )
