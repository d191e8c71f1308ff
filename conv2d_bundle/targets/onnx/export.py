"""ONNX export with the TorchScript exporter: the only route to opset 11-17 (the dynamo exporter always writes
opset >= 18 and IR 10, which the Hailo parser refuses)."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conv2d_bundle.bundle import atomic
from conv2d_bundle.errors import ExportError
from conv2d_bundle.targets.onnx.graph import MAX_IR_VERSION

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxExport:
    path: Path
    opset: int
    ir_version: int
    exporter: str


def export_onnx(
    model: Any,
    input_shape: Sequence[int],
    output_path: Path,
    *,
    input_name: str = "imu_input",
    output_names: Sequence[str] = ("behavioral_codes", "confidence"),
    opset: int = 13,
    dynamic_batch: bool = True,
    metadata: Mapping[str, str] | None = None,
) -> OnnxExport:
    """Export ``model`` to ``output_path``: named I/O, dynamic batch, checked with ``full_check``.

    ``metadata`` lands in the model's ``metadata_props`` (exp_hash, labels, version), so a file that
    travels alone still says where it came from.
    """
    import onnx
    import torch

    model.eval()
    example = torch.zeros(tuple(input_shape), dtype=torch.float32)
    axes = {name: {0: "batch"} for name in (input_name, *output_names)} if dynamic_batch else None
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.onnx.export(
                model,
                (example,),
                buf,  # type: ignore[arg-type]  # a file object works; the stub says path only
                export_params=True,
                opset_version=opset,
                do_constant_folding=True,
                input_names=[input_name],
                output_names=list(output_names),
                dynamic_axes=axes,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many unrelated types; all mean "could not export"
        raise ExportError(f"ONNX export failed: {exc}") from exc
    for w in caught:
        log.debug("torch.onnx.export: %s", w.message)
    proto = onnx.load_from_string(buf.getvalue())
    if proto.ir_version > MAX_IR_VERSION:
        proto.ir_version = MAX_IR_VERSION  # opset <= 17 needs nothing newer than IR 8/9
    for key, value in sorted((metadata or {}).items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data = proto.SerializeToString(deterministic=True)
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except Exception as exc:  # onnx raises ValidationError / InferenceError / RuntimeError
        raise ExportError(f"exported ONNX fails onnx.checker: {exc}") from exc
    atomic.write_bytes(output_path, data)
    return OnnxExport(output_path, opset, proto.ir_version, "torchscript")


def build(ctx: Any) -> dict[str, Any]:
    """Export ``models/model.onnx`` into the staging bundle and check it against the golden outputs."""
    from conv2d_bundle.parity.figures import check_outputs
    from conv2d_bundle.targets.onnx import ONNX_FILE
    from conv2d_bundle.targets.onnx.runner import session_runner

    spec = ctx.config.model
    out = ctx.staging / ONNX_FILE
    info = export_onnx(
        ctx.model,
        spec.input_shape,
        out,
        input_name=spec.input_name,
        output_names=spec.output_names,
        opset=ctx.config.onnx_opset,
        metadata=ctx.onnx_metadata(),
    )
    got = session_runner(out, spec.input_name, ONNX_FILE)(ctx.reference.inputs)
    parity = check_outputs(got, ctx.reference.outputs, spec.outputs, "the ONNX export")
    entry: dict[str, Any] = {}
    taps = getattr(ctx, "taps", None)
    if taps is not None and taps.names:  # which tensor holds each tap, for locating a divergence later
        import onnx

        from conv2d_bundle.targets.onnx.divergence import map_taps

        model = onnx.load(str(out))
        entry["taps"] = map_taps(model, spec.input_name, ctx.reference.inputs, taps.names, taps.values)
    return {
        **entry,
        "status": "built",
        "file": ONNX_FILE,
        "opset_version": info.opset,
        "ir_version": info.ir_version,
        "exporter": info.exporter,
        **ctx.size_entry(out),
        "parity": parity,
    }
