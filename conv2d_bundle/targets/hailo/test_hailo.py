"""Hailo checks: the compile kit is complete and compilable, and the HEF (once compiled or attached) is intact,
for the configured device and this network. That the device/host split reproduces the golden outputs is the
shared parity check (``conv2d_bundle/checks/test_targets.py``) through the Hailo runner.

int8 evidence, judged under the verifier's int8 policy (``--tolerance-policy``'s ``int8:``, else built in):
the DFC's quantized emulator outputs where they were attached (any host), and the HEF itself run on a Hailo
device through HailoRT (``hailo_platform``) where one answers; elsewhere that check is skipped with the
reason, "needs a Hailo device with HailoRT".

numpy + onnx + onnxruntime only (no torch); ``hailortcli parse-hef`` is used where it is on PATH and skipped,
with that reason, elsewhere.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conv2d_bundle.errors import BundleError, BundleWarning, HefError
from conv2d_bundle.targets.hailo import DEVICE_ONNX, EMULATOR_FILE, NOT_COMPILED
from conv2d_bundle.targets.hailo import HEF_FILE as HEF
from conv2d_bundle.targets.hailo import KIT_DIR as KIT
from conv2d_bundle.targets.onnx.graph import (
    MAX_IR_VERSION,
    dims,
    graph_inputs,
    load,
    opset_of,
    static_problems,
)

pytestmark = pytest.mark.conv2d_target("hailo")

KIT_FILES = ("model.onnx", "calib_set.npy", "model_script.alls", "compile.sh", "README.md")
DEVICE_OPSETS = (11, 13)
MIN_CALIBRATION = 64
HEF_WARN_BYTES = 10 * 2**20
COMPILE_COMMANDS = ("hailo parser onnx", "hailo optimize", "hailo compiler")


@pytest.fixture(scope="module")
def hailo_info(bundle: Any) -> Any:
    info = bundle.format_info("hailo")
    if not info:
        pytest.fail("metadata.json has no formats.hailo: the bundle was built without the hailo format")
    return info


@pytest.fixture(scope="module")
def hailo_options(bundle: Any) -> Any:
    return bundle.config.hailo_options


@pytest.fixture(scope="module")
def device_model(bundle: Any) -> Any:
    try:
        return load(bundle.path(DEVICE_ONNX), DEVICE_ONNX)
    except BundleError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def calib(bundle: Any) -> Any:
    path = bundle.path(f"{KIT}/calib_set.npy")
    if not path.is_file():
        pytest.fail(f"{KIT}/calib_set.npy is missing")
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as exc:
        pytest.fail(f"{KIT}/calib_set.npy cannot be read as .npy: {exc}")


@pytest.fixture(scope="module")
def hef_path(bundle: Any) -> Path:
    path = bundle.path(HEF)
    if not path.is_file():
        pytest.skip(f"no {HEF} to check (see test_hef_present)")
    return path


@pytest.fixture(scope="module")
def hef_info(hef_path: Path) -> Any:
    from conv2d_bundle.targets.hailo.hef import read_hef

    try:
        return read_hef(hef_path)
    except HefError as exc:
        pytest.fail(f"{HEF}: {exc}")


# -- the kit ----------------------------------------------------------------------------------------
def test_kit_complete(bundle: Any, hailo_info: Any) -> None:
    missing = [name for name in KIT_FILES if not bundle.path(f"{KIT}/{name}").is_file()]
    if missing:
        pytest.fail(f"{KIT}/ lacks {', '.join(missing)}")


def test_compile_script(bundle: Any, hailo_info: Any, hailo_options: Any, check_details: dict) -> None:
    path = bundle.path(f"{KIT}/compile.sh")
    if not path.is_file():
        pytest.fail(f"{KIT}/compile.sh is missing")
    text = path.read_text(encoding="utf-8")
    problems = [f"lacks `{cmd}`" for cmd in COMPILE_COMMANDS if cmd not in text]
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    if "set -euo pipefail" not in code:
        problems.append("lacks `set -euo pipefail`")
    hw_arch = hailo_options.get("hw_arch", "hailo8")
    # a whole word: `--hw-arch hailo8l` must not count as `--hw-arch hailo8`
    if len(re.findall(rf"--hw-arch {re.escape(str(hw_arch))}(?![\w-])", code)) < 3:
        problems.append(f"does not pass --hw-arch {hw_arch} (the configured hw_arch) to all three commands")
    net = hailo_info.get("net_name")
    if f"--net-name {net}" not in code:
        problems.append(f"does not pass --net-name {net}")
    if "--end-node-names" not in code:
        problems.append("gives no --end-node-names")
    if "hef-info" in code or "--onnx" in code:
        problems.append("uses commands that do not exist (hailo hef-info, hailo compiler --onnx)")
    if not os.access(path, os.X_OK):
        problems.append("is not executable")
    check_details.update(hw_arch=hw_arch, net_name=net)
    if problems:
        pytest.fail(f"{KIT}/compile.sh " + "; ".join(problems))


def test_model_script(bundle: Any, hailo_info: Any) -> None:
    path = bundle.path(f"{KIT}/model_script.alls")
    if not path.is_file():
        pytest.fail(f"{KIT}/model_script.alls is missing")
    commands = [
        ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")
    ]
    bad = [ln for ln in commands if not (ln.rstrip().endswith(")") and "(" in ln)]
    if not commands or bad:
        pytest.fail(f"{KIT}/model_script.alls: no commands, or lines that are not `command(args)`: {bad[:3]}")


def test_device_onnx_static(device_model: Any, model_spec: Any, hailo_info: Any, check_details: dict) -> None:
    inputs = graph_inputs(device_model)
    if [i.name for i in inputs] != [model_spec.input_name]:
        pytest.fail(f"{KIT}/model.onnx inputs {[i.name for i in inputs]} != [{model_spec.input_name}]")
    expected = [1, *model_spec.input_shape[1:]]
    shape = dims(inputs[0])
    check_details["input_shape"] = shape
    if shape != expected:
        pytest.fail(f"{KIT}/model.onnx input shape {shape} != expected {expected} (batch 1, static)")
    # every output and every intermediate tensor whose shape the file records: a name per bad axis, no int('N')
    problems = static_problems(device_model.graph.output, "output")
    problems += static_problems(device_model.graph.value_info, "tensor")
    if problems:
        more = f"; and {len(problems) - 3} more tensors" if len(problems) > 3 else ""
        pytest.fail(f"{KIT}/model.onnx {'; '.join(problems[:3])}{more}: the device part must be static")
    wanted = hailo_info.get("device_outputs")  # absent: not compared
    got = [o.name for o in device_model.graph.output]
    if wanted and got != list(wanted):
        pytest.fail(f"{KIT}/model.onnx outputs {got} != metadata's device_outputs {wanted}")


def test_device_onnx_versions(device_model: Any, check_details: dict) -> None:
    opset = opset_of(device_model)
    check_details.update(opset=opset, ir_version=device_model.ir_version)
    if opset not in DEVICE_OPSETS:
        pytest.fail(
            f"{KIT}/model.onnx opset {opset} not in {DEVICE_OPSETS} (the safe choices for the Hailo parser)"
        )
    if not 3 <= device_model.ir_version <= MAX_IR_VERSION:
        pytest.fail(
            f"{KIT}/model.onnx IR version {device_model.ir_version} > {MAX_IR_VERSION} (the Hailo parser rejects IR 10)"
        )


def test_device_onnx_supported_ops(device_model: Any, check_details: dict) -> None:
    """Every node is on the supported list or inside a pattern the Dataflow Compiler parses as one layer
    (GELU, LayerNormalization, HardSwish as torch writes them); an unsupported operator is named with where the
    host part would start and the --end-node-names that would end the device part there."""
    from conv2d_bundle.targets.hailo.ops import check_graph

    report = check_graph(device_model.graph)
    check_details.update(ops=report.ops, fused=report.fused)
    if report.unsupported:
        check_details.update(unsupported=report.unsupported, end_node_names=report.end_nodes)
        pytest.fail(report.message(f"{KIT}/model.onnx"))


def test_calibration_set(calib: Any, model_spec: Any, hailo_info: Any, check_details: dict) -> None:
    c, h, w = model_spec.input_shape[1:]
    check_details.update(shape=list(calib.shape), dtype=str(calib.dtype))
    if calib.dtype != np.float32:
        pytest.fail(f"{KIT}/calib_set.npy is {calib.dtype}, expected float32")
    if calib.ndim != 4 or tuple(calib.shape[1:]) != (h, w, c):
        pytest.fail(f"{KIT}/calib_set.npy shape {list(calib.shape)} != [N, {h}, {w}, {c}] (NHWC)")
    if calib.shape[0] < MIN_CALIBRATION:
        pytest.fail(f"{KIT}/calib_set.npy holds {calib.shape[0]} windows, fewer than {MIN_CALIBRATION}")
    if not np.isfinite(calib).all():
        pytest.fail(f"{KIT}/calib_set.npy holds NaN or infinite values")
    if calib.std() == 0:
        pytest.fail(f"{KIT}/calib_set.npy is constant: nothing to calibrate on")
    calibration = hailo_info.get("calibration", {})
    if calibration.get("source") not in ("config", "reference.inputs") or calibration.get("synthetic"):
        warnings.warn(
            BundleWarning(f"{KIT}/calib_set.npy is golden/synthetic windows; real windows quantize better"),
            stacklevel=1,
        )


def test_int8_agreement(hailo_info: Any, hailo_options: Any, check_details: dict) -> None:
    from conv2d_bundle.targets.hailo.int8 import below_thresholds, thresholds

    figures = hailo_info.get("int8")
    if not isinstance(figures, dict):
        pytest.fail("metadata.json formats.hailo has no int8 record")
    if "error" in figures:
        pytest.skip(f"int8 sensitivity was not measured: {figures['error']}")
    limits = thresholds(hailo_options)
    if not any(isinstance(figures.get(key), int | float) for key in limits):
        pytest.skip(
            "int8 agreement not verified: no figure was measured (the model has no codes or probabilities "
            "output to compare)"
        )
    check_details.update(figures=figures, thresholds=limits)
    for message in below_thresholds(figures, limits):
        warnings.warn(BundleWarning(message), stacklevel=1)


# -- the HEF ----------------------------------------------------------------------------------------
def test_hef_present(bundle: Any, hailo_info: Any) -> None:
    if not bundle.path(HEF).is_file():
        if hailo_info.get("status") == "built":
            pytest.fail(f"metadata.json says formats.hailo is built, but {HEF} is missing")
        pytest.fail(NOT_COMPILED)
    if hailo_info.get("status") != "built" or hailo_info.get("file") != HEF:
        pytest.fail(
            f"{HEF} is present but metadata.json formats.hailo is {hailo_info.get('status')!r}, not built"
        )


def test_hef_integrity(hef_info: Any, check_details: dict) -> None:
    check_details.update(
        header_version=hef_info.header_version,
        hash_algorithm=hef_info.hash_algorithm,
        sdk_version=hef_info.sdk_version,
    )


def test_hef_architecture(hef_info: Any, hailo_options: Any, check_details: dict) -> None:
    from conv2d_bundle.targets.hailo.hef import device_accepts

    hw_arch = hailo_options.get("hw_arch", "hailo8")
    check_details.update(hef_arch=hef_info.hw_arch, hw_arch=hw_arch)
    try:
        ok, note = device_accepts(hw_arch, hef_info.hw_arch)
    except HefError as exc:
        pytest.fail(f"{HEF}: {exc}")
    if not ok:
        pytest.fail(f"{HEF} was compiled for {hef_info.hw_arch}: {note} (configured hw_arch {hw_arch})")
    if note:
        warnings.warn(BundleWarning(f"{HEF}: {note}"), stacklevel=1)


def test_hef_network_name(hef_info: Any, hailo_info: Any, check_details: dict) -> None:
    net = hailo_info.get("net_name")
    check_details.update(network_groups=list(hef_info.network_groups), net_name=net)
    if net not in hef_info.network_groups:
        pytest.fail(
            f"{HEF} holds network groups {list(hef_info.network_groups)}, not the kit's --net-name {net!r}: "
            "it was compiled from another model"
        )


def test_hef_size(hef_path: Path, check_details: dict) -> None:
    size = hef_path.stat().st_size
    check_details["size_bytes"] = size
    if size > HEF_WARN_BYTES:
        warnings.warn(BundleWarning(f"{HEF} is {size / 2**20:.1f} MB (over 10 MB)"), stacklevel=1)


def test_hef_parse_hef(
    hef_path: Path, hef_info: Any, model_spec: Any, hailo_options: Any, check_details: dict
) -> None:
    """Cross-check with HailoRT's own reader, where it is installed."""
    from conv2d_bundle.targets.hailo.hef import device_accepts, find_hailortcli, run_parse_hef

    if find_hailortcli() is None:
        pytest.skip("hailortcli is not on PATH (it comes with HailoRT): parse-hef cross-check not run")
    try:
        parsed = run_parse_hef(hef_path)
    except HefError as exc:
        pytest.fail(f"{HEF}: {exc}")
    check_details["parse_hef"] = parsed
    arch = parsed.get("architecture") or ""
    ok, _ = device_accepts(hailo_options.get("hw_arch", "hailo8"), arch)
    if not ok:
        pytest.fail(f"hailortcli parse-hef says {HEF} is for {arch}, not the configured device")
    c, h, w = model_spec.input_shape[1:]
    shapes = [i.get("shape") for i in parsed.get("inputs", [])]
    if shapes and [h, w, c] not in shapes:
        pytest.fail(f"hailortcli parse-hef input shapes {shapes} do not include [{h}, {w}, {c}] (NHWC)")


# -- int8 evidence: the DFC's quantized emulator, the HEF on a device ---------------------------------
BENCHMARK_RUNS = 200
BENCHMARK_BATCH = 64


@pytest.fixture(scope="module")
def device_parts(hailo_info: Any, device_model: Any) -> Any:
    """The kit's device outputs (name, end node, ONNX shape), to map HailoRT's or the emulator's outputs."""
    from conv2d_bundle.targets.hailo.device import device_outputs

    try:
        return device_outputs(hailo_info, {o.name: dims(o) for o in device_model.graph.output})
    except HefError as exc:
        pytest.fail(str(exc))


def _host(device: Any, model_spec: Any, hailo_info: Any) -> Any:
    from conv2d_bundle.targets.hailo.kit import host_outputs

    return host_outputs(device, model_spec, bool(hailo_info.get("split")))


def _judge(
    what: str, got: Any, reference_outputs: Any, model_spec: Any, policy: Any, output_name: str, details: dict
) -> None:
    from conv2d_bundle.targets.hailo.int8 import judge_output

    if output_name not in reference_outputs:
        pytest.fail(f"reference/outputs.npz has no {output_name}")
    if output_name not in got:
        pytest.fail(f"{what} gave no {output_name} after the host post-processing (has {sorted(got)})")
    figures, failures = judge_output(
        model_spec.output(output_name), got[output_name], reference_outputs[output_name], policy.int8, what
    )
    details.update(figures)
    if failures:
        pytest.fail("; ".join(failures))


@pytest.fixture(scope="module")
def emulator_outputs(bundle: Any, hailo_info: Any, device_parts: Any, model_spec: Any) -> Any:
    import zipfile

    from conv2d_bundle.targets.hailo.device import to_onnx_layout

    path = bundle.path(EMULATOR_FILE)
    if not path.is_file():
        if hailo_info.get("emulator"):
            pytest.fail(
                f"metadata.json formats.hailo records emulator outputs, but {EMULATOR_FILE} is missing"
            )
        pytest.skip(
            "int8 emulator outputs not attached: compile.sh writes emulator_outputs.npz (the DFC's quantized "
            "emulator on the golden inputs); attach it with conv2d pack attach-hef ... --emulator-outputs FILE"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        pytest.fail(f"{EMULATOR_FILE} cannot be read as .npz: {exc}")
    missing = [part.name for part in device_parts if part.name not in raw]
    if missing:
        pytest.fail(f"{EMULATOR_FILE} lacks the device outputs {missing} (has {sorted(raw)})")
    try:
        device = {
            p.name: to_onnx_layout(raw[p.name], p.shape, f"{EMULATOR_FILE}:{p.name}") for p in device_parts
        }
    except HefError as exc:
        pytest.fail(str(exc))
    return _host(device, model_spec, hailo_info)


def test_emulator_int8(
    emulator_outputs: Any,
    reference_outputs: Any,
    model_spec: Any,
    tolerance_policy: Any,
    output_name: str,
    check_details: dict,
) -> None:
    """The DFC's quantized emulator (``SDK_QUANTIZED``, run by compile.sh on the golden inputs) against the
    golden outputs, under the verifier's int8 policy: the int8 evidence a host without the board can check."""
    check_details["source"] = EMULATOR_FILE
    _judge(
        "the DFC's quantized emulator",
        emulator_outputs,
        reference_outputs,
        model_spec,
        tolerance_policy,
        output_name,
        check_details,
    )


@pytest.fixture(scope="module")
def hef_session(hef_path: Path, device_parts: Any) -> Any:
    from conv2d_bundle.targets.hailo.device import NEEDS, DeviceUnavailable, open_hef

    try:
        with open_hef(hef_path, device_parts) as session:
            yield session
    except DeviceUnavailable as exc:
        pytest.skip(f"{NEEDS}: {exc}")
    except HefError as exc:
        pytest.fail(f"{HEF}: {exc}")


@pytest.fixture(scope="module")
def device_results(hef_session: Any, reference_inputs: Any, model_spec: Any, hailo_info: Any) -> Any:
    nhwc = np.ascontiguousarray(reference_inputs.transpose(0, 2, 3, 1), dtype=np.float32)
    try:
        device = hef_session.infer(nhwc)
    except HefError as exc:
        pytest.fail(f"{HEF} on the device: {exc}")
    except Exception as exc:  # HailoRT's own exception family: the HEF does not run the golden windows
        pytest.fail(f"{HEF} on the device: HailoRT failed on the golden windows: {type(exc).__name__}: {exc}")
    return _host(device, model_spec, hailo_info)


def test_hef_on_device(
    hef_session: Any,
    device_results: Any,
    reference_outputs: Any,
    model_spec: Any,
    tolerance_policy: Any,
    output_name: str,
    check_details: dict,
) -> None:
    """The golden inputs (NHWC) through the HEF on the Hailo device (HailoRT quantizes the float input and
    dequantizes the outputs), then the host post-processing, against the golden outputs under the verifier's
    int8 policy: code agreement, argmax agreement and PSNR."""
    check_details.update(
        vstreams=dict(hef_session.vstreams),
        input_vstream=hef_session.input_name,
        scheduler=getattr(hef_session, "scheduler", None) or "off (network group activated)",
    )
    _judge(
        "the HEF on the device",
        device_results,
        reference_outputs,
        model_spec,
        tolerance_policy,
        output_name,
        check_details,
    )


@pytest.mark.conv2d_needs_benchmark
def test_hef_benchmark(
    benchmark_enabled: bool, hef_session: Any, reference_inputs: Any, check_details: dict
) -> None:
    """HEF latency (single window) and throughput (batch 64) on the Hailo device (``--benchmark``)."""
    from conv2d_bundle.targets.hailo.device import benchmark

    if not benchmark_enabled:
        pytest.skip("latency is measured with --benchmark")
    nhwc = np.ascontiguousarray(reference_inputs.transpose(0, 2, 3, 1), dtype=np.float32)
    check_details.update(benchmark(hef_session, nhwc, BENCHMARK_RUNS, BENCHMARK_BATCH))
