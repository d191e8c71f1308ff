"""Reading ONNX graphs without running them: shapes, opset, the version limits every ONNX in a bundle keeps.

onnx only (no onnxruntime, no torch): shared by the ONNX checks, the Hailo kit's checks and the exporters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


def not_static(shape: Sequence[Any]) -> list[str]:
    """What keeps a shape (as :func:`dims` gives it) from being static, one phrase per axis: ``a symbolic axis
    'N'``, ``an axis of unknown size``, ``an axis of size 0``; empty for a static shape. Never raises: a check
    names a bad shape instead of crashing on ``int('N')``."""
    out = []
    for d in shape:
        if isinstance(d, int) and not isinstance(d, bool) and d > 0:
            continue
        if d == "?":
            out.append("an axis of unknown size")
        elif isinstance(d, str):
            out.append(f"a symbolic axis {d!r}")
        else:
            out.append(f"an axis of size {d!r}")
    return out


def static_problems(tensors: Iterable[Any], kind: str) -> list[str]:
    """``"<kind> <name> has a symbolic axis 'N'"`` for every tensor (graph input, output or value_info) whose
    shape is not static, in graph order; a tensor without a shape at all is not judged here."""
    out = []
    for t in tensors:
        if not t.type.tensor_type.HasField("shape"):
            continue
        bad = not_static(dims(t))
        if bad:
            out.append(f"{kind} {t.name} has {', '.join(dict.fromkeys(bad))}")
    return out


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
