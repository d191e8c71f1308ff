"""int8 sensitivity of a device part: what quantization (as Hailo will do) changes in the host's results.

The device ONNX is quantized with onnxruntime's static QDQ quantization, calibrated on the kit's
calibration set, and run next to the float model on the golden inputs; the host post-processing turns both
into codes and classes. Reported: how often codes agree and how often the class argmax agrees. Per-channel
weights need opset >= 13 (an opset-11 file gets per-tensor weights: per-channel writes an invalid model).
numpy + onnx + onnxruntime only.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from conv2d_bundle.errors import ExportError
from conv2d_bundle.targets.onnx.graph import opset_of

DEFAULT_MIN_CODE_AGREEMENT = 0.5
DEFAULT_MIN_ARGMAX_AGREEMENT = 0.95
MAX_CALIBRATION_WINDOWS = 256  # MinMax ranges settle long before this; keeps create fast


class _PreprocessAdvice(logging.Filter):
    """onnxruntime.quantization logs "consider pre-processing" on the root logger at every call."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_preprocess_advice() -> Iterator[None]:
    root, advice = logging.getLogger(), _PreprocessAdvice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def quantize_static_qdq(
    device_onnx: Path, calib_nchw: np.ndarray, input_name: str, out: Path
) -> dict[str, Any]:
    """Write the QDQ-quantized model to ``out``; returns how it was quantized."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    opset = opset_of(onnx.load(str(device_onnx)))
    per_channel = opset >= 13

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._rows = iter(range(min(calib_nchw.shape[0], MAX_CALIBRATION_WINDOWS)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self._rows, None)
            return None if i is None else {input_name: calib_nchw[i : i + 1]}

    try:
        with _quiet_preprocess_advice():
            quantize_static(
                str(device_onnx),
                str(out),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
            )
    except Exception as exc:  # onnxruntime.quantization raises many types; all mean "could not quantize"
        raise ExportError(f"int8 quantization of {device_onnx.name} failed: {exc}") from exc
    return {
        "method": "onnxruntime static QDQ (MinMax)",
        "per_channel": per_channel,
        "opset": opset,
        "calibration_windows": int(min(calib_nchw.shape[0], MAX_CALIBRATION_WINDOWS)),
    }


def int8_agreement(
    device_onnx: Path,
    calib_nhwc: np.ndarray,
    inputs: np.ndarray,
    input_name: str,
    host: Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]],
    codes_name: str | None,
    class_name: str | None,
) -> dict[str, Any]:
    """Quantize ``device_onnx`` on the NHWC calibration set and compare host results on ``inputs``:
    ``code_agreement`` (fraction of identical codes) and ``argmax_agreement`` (identical class)."""
    from conv2d_bundle.targets.hailo.kit import run_device

    calib_nchw = np.ascontiguousarray(calib_nhwc.transpose(0, 3, 1, 2))
    with tempfile.TemporaryDirectory(prefix="conv2d-int8-") as tmp:
        qpath = Path(tmp) / "device_int8.onnx"
        how = quantize_static_qdq(device_onnx, calib_nchw, input_name, qpath)
        ref = host(run_device(device_onnx, inputs, input_name))
        q = host(run_device(qpath, inputs, input_name))
    result: dict[str, Any] = {**how, "samples": int(inputs.shape[0])}
    if codes_name and codes_name in ref:
        result["code_agreement"] = round(float(np.mean(ref[codes_name] == q[codes_name])), 4)
    if class_name and class_name in ref:
        same = np.argmax(ref[class_name], axis=-1) == np.argmax(q[class_name], axis=-1)
        result["argmax_agreement"] = round(float(np.mean(same)), 4)
    return result


def thresholds(options: Mapping[str, Any]) -> dict[str, float]:
    """``export.hailo.min_code_agreement`` / ``min_argmax_agreement`` with their defaults."""
    return {
        "code_agreement": float(options.get("min_code_agreement", DEFAULT_MIN_CODE_AGREEMENT)),
        "argmax_agreement": float(options.get("min_argmax_agreement", DEFAULT_MIN_ARGMAX_AGREEMENT)),
    }


def below_thresholds(figures: Mapping[str, Any], limits: Mapping[str, float]) -> list[str]:
    """One message per figure under its threshold (figures that were not measured are not judged)."""
    out = []
    for key, limit in limits.items():
        value = figures.get(key)
        if isinstance(value, int | float) and value < limit:
            what = "FSQ codes" if key == "code_agreement" else "class argmax"
            out.append(
                f"int8 (onnxruntime QDQ) keeps {what} for {value:.1%} of the golden windows, below "
                f"export.hailo.min_{key} {limit:.1%}: expect this change on Hailo; calibrate with real data "
                "or keep the tail at 16 bits"
            )
    return out


def judge_output(
    spec: Any, got: Any, expected: Any, policy: Any, what: str
) -> tuple[dict[str, Any], list[str]]:
    """One output of a quantized runtime (``what``: the HEF on the device, the DFC's emulator) against its
    golden float values, under the verifier's int8 policy (:class:`conv2d_bundle.parity.tolerance.Int8Policy`):
    codes by agreement, class probabilities by argmax agreement and PSNR, other float outputs by PSNR (against
    the output's own floor if the policy gives it one, else the general one; ``psnr_floor`` says which). An
    agreement must also beat the best constant answer on the same golden values (the majority code or class):
    on a golden set where one code covers 95% of the values, 95% agreement is what a device returning zeros
    gets.
    Returns (figures for the report, one message per floor missed); figures come from
    :func:`conv2d_bundle.parity.figures.compare`, so they are the same numbers every parity report shows."""
    from conv2d_bundle.parity.figures import compare

    kind = getattr(spec, "kind", "tensor")
    integer = bool(spec.is_integer)
    stats = compare(spec.name, got, expected, integer=integer, atol=0.0, rtol=0.0, kind=kind)
    figures: dict[str, Any] = {
        k: stats.as_dict()[k]
        for k in ("shape", "expected_shape", "total", "max_abs_error", "mean_abs_error", "cosine_similarity")
    }
    if stats.shape != stats.expected_shape or stats.total == 0:
        return figures, [f"{what}: {stats.describe()}"]
    # (figure, measured, floor, the floor's name, where the floor came from)
    floors: list[tuple[str, float | None, float, str, str]] = []
    if integer:
        agreement = stats.agreement if stats.agreement_kind == "codes" else 1 - stats.mismatches / stats.total
        floors.append(
            ("code_agreement", agreement, policy.min_code_agreement, "int8.min_code_agreement", policy.source)
        )
    else:
        if stats.agreement_kind == "top1":
            floors.append(
                (
                    "argmax_agreement",
                    stats.agreement,
                    policy.min_argmax_agreement,
                    "int8.min_argmax_agreement",
                    policy.source,
                )
            )
        psnr_floor, psnr_source = policy.psnr_floor(spec.name)
        # the output's own floor is named by its source ("... (int8.outputs.<name>)"), the general one by its key
        psnr_name = "min_psnr_db" if spec.name in policy.outputs else "int8.min_psnr_db"
        floors.append(("psnr_db", stats.psnr_db, psnr_floor, psnr_name, psnr_source))
        figures["snr_db"] = stats.as_dict()["snr_db"]
        figures["psnr_floor"] = {"min_psnr_db": psnr_floor, "source": psnr_source}
    failures = []
    for key, value, floor, name, source in floors:
        measured = float(value) if value is not None else float("nan")
        figures[key] = round(measured, 4) if np.isfinite(measured) else str(measured)
        if not measured >= floor:  # NaN is below every floor
            shown = f"{measured:.1f} dB" if key == "psnr_db" else f"{measured:.1%}"
            limit = f"{floor:g} dB" if key == "psnr_db" else f"{floor:.1%}"
            failures.append(
                f"{what}: {spec.name} {key.replace('_', ' ')} {shown} < {name} {limit} ({source})"
            )
    if stats.agreement is not None:
        figures["constant_agreement"] = stats.constant_agreement
        figures["constant_answer"] = stats.constant_answer
        constant = stats.no_better_than_constant()
        if constant:
            failures.append(
                f"{what}: {constant}: on this golden set it cannot be told from a device that answers a constant"
            )
    figures["policy"] = policy.as_dict()
    return figures, failures
