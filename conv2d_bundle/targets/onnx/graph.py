"""Reading ONNX graphs without running them: shapes, opset, the version limits every ONNX in a bundle keeps.

onnx only (no onnxruntime, no torch): shared by the ONNX checks, the Hailo kit's checks and the exporters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conv2d_bundle.errors import BundleIntegrityError

MIN_OPSET = 11
#: IR 10 is rejected by the Hailo parser and older runtimes; opset <= 17 needs nothing newer than IR 8/9
MAX_IR_VERSION = 9
#: TensorProto element types -> numpy dtype names (the ones a bundle's models use)
DTYPES = {1: "float32", 10: "float16", 11: "float64", 6: "int32", 7: "int64"}


def dims(value_info: Any) -> list[Any]:
    """A graph input's or output's shape: ints for fixed axes, the symbol (or ``?``) for dynamic ones."""
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value_info.type.tensor_type.shape.dim
    ]


def dtype(value_info: Any) -> str:
    elem = value_info.type.tensor_type.elem_type
    return DTYPES.get(elem, str(elem))


def opset_of(model: Any) -> int:
    """The default-domain opset a model imports (0 if none)."""
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def graph_inputs(model: Any) -> list[Any]:
    """The real inputs: graph inputs that are not initializers (older exporters list weights as inputs)."""
    weights = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in weights]


def load(path: Path, label: str) -> Any:
    """The parsed ONNX model at ``path``; BundleIntegrityError naming ``label`` when absent or damaged."""
    import onnx

    if not path.is_file():
        raise BundleIntegrityError(f"{label} is missing")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and others for a damaged file
        raise BundleIntegrityError(f"{label} cannot be parsed: {type(exc).__name__}: {exc}") from exc
