"""The device-part ONNX made static and simplified for the Hailo parser, at create time only.

torch's exporter leaves shape arithmetic in a graph that the Hailo Dataflow Compiler would have to reject or fold
itself: Hugging Face's TF-style "same" padding becomes ``Shape``/``ConstantOfShape``/``Cast``/``Concat``/
``Slice`` chains feeding a ``Pad`` (MobileNetV2: 1094 nodes, 52 of each), and shape inference cannot see through
them, so an output keeps a symbolic axis (``Gemmlogits_dim_0``). onnxslim (a maintained ONNX simplifier,
https://github.com/inisis/OnnxSlim) folds every constant computation at the exported batch 1, fuses the folded
``Pad`` into its ``Conv``, drops ``Identity`` nodes and re-infers every shape (MobileNetV2: 100 nodes, every axis
an integer). Measured on the built-in model and three Hugging Face classifiers: outputs bit-identical in
onnxruntime with its graph optimizations off (README, Hailo section).

onnxslim's ``FusionGemm`` is skipped: it rewrites a ``MatMul`` + ``Add`` on a channels-last 4-D tensor (ConvNeXt's
pointwise layers) into ``Reshape`` -> ``Gemm`` -> ``Reshape``, folding the spatial axes into Gemm's batch axis, a
shape the exported graph did not have.

Imported only by the kit's exporter: the verify path (numpy + onnx + onnxruntime) never imports onnxslim.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from conv2d_bundle.bundle import atomic
from conv2d_bundle.errors import BundleWarning
from conv2d_bundle.targets.hailo import DEVICE_ONNX
from conv2d_bundle.targets.hailo.ops import op_counts
from conv2d_bundle.targets.onnx.graph import MAX_IR_VERSION, opset_of, static_problems

log = logging.getLogger(__name__)

LIBRARY = "onnxslim"
SKIP_FUSIONS = ("FusionGemm",)
#: how the kit's extra brings it in (README, Hailo section)
INSTALL = "pip install -c constraints.txt 'conv2d-bundle[torch]'"


def simplify_device_onnx(path: Path, label: str = DEVICE_ONNX) -> dict[str, Any]:
    """Simplify the device ONNX at ``path`` in place; return what was done, for ``formats.hailo``:
    ``library`` and ``version`` (None where onnxslim is not importable or its result was not kept, with the
    ``reason``), the node count and the per-operator counts before and after. Create still works without
    onnxslim: the unsimplified export is kept with a BundleWarning, and the checks then name what it holds."""
    import onnx

    model = onnx.load(str(path))
    info: dict[str, Any] = {
        "library": None,
        "nodes_before": len(model.graph.node),
        "ops_before": dict(op_counts(model.graph)),
    }
    try:
        import onnxslim
    except ImportError as exc:
        return _kept(info, label, f"{LIBRARY} is not importable ({exc}): {INSTALL}")
    version = str(getattr(onnxslim, "__version__", "unknown"))
    try:
        work = onnx.ModelProto()
        work.CopyFrom(model)  # the export stays as it was, to compare with and to fall back on
        slim = onnxslim.slim(work, skip_fusion_patterns=list(SKIP_FUSIONS))
    except Exception as exc:  # onnxslim raises what its passes raise; the unsimplified export still works
        return _kept(info, label, f"{LIBRARY} {version} failed: {type(exc).__name__}: {exc}")
    problem = _changed_interface(model, slim)
    if problem:
        return _kept(info, label, f"{LIBRARY} {version} {problem}")
    if slim.ir_version > MAX_IR_VERSION:
        slim.ir_version = MAX_IR_VERSION
    # exp_hash, labels, version: a file that travels alone says where it came from
    if not slim.metadata_props:
        slim.metadata_props.extend(model.metadata_props)
    data = slim.SerializeToString(deterministic=True)
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except Exception as exc:  # ValidationError / InferenceError: keep the export that passed the checker
        return _kept(info, label, f"{LIBRARY} {version} wrote a model that fails onnx.checker: {exc}")
    atomic.write_bytes(path, data)
    info.update(
        library=LIBRARY,
        version=version,
        options={"skip_fusion_patterns": list(SKIP_FUSIONS)},
        nodes_after=len(slim.graph.node),
        ops_after=dict(op_counts(slim.graph)),
    )
    _warn_if_not_static(slim, label)
    log.info("%s: %s %s, %d -> %d nodes", label, LIBRARY, version, info["nodes_before"], info["nodes_after"])
    return info


def _changed_interface(before: Any, after: Any) -> str | None:
    """Why ``after`` may not replace ``before``: other inputs, outputs or opset (None when it may)."""
    names = [
        [i.name for i in m.graph.input if i.name not in {t.name for t in m.graph.initializer}]
        for m in (before, after)
    ]
    if names[0] != names[1]:
        return f"changed the inputs {names[0]} to {names[1]}"
    outs = [[o.name for o in m.graph.output] for m in (before, after)]
    if outs[0] != outs[1]:
        return f"changed the outputs {outs[0]} to {outs[1]}"
    if opset_of(before) != opset_of(after):
        return f"changed the opset {opset_of(before)} to {opset_of(after)}"
    return None


def _kept(info: dict[str, Any], label: str, reason: str) -> dict[str, Any]:
    warnings.warn(
        BundleWarning(f"{label} is not simplified ({reason}); the Hailo checks name what it still holds"),
        stacklevel=3,
    )
    info.update(reason=reason, nodes_after=info["nodes_before"], ops_after=info["ops_before"])
    return info


def _warn_if_not_static(model: Any, label: str) -> None:
    problems = static_problems(model.graph.output, "output") + static_problems(
        model.graph.value_info, "tensor"
    )
    if problems:
        warnings.warn(
            BundleWarning(
                f"{label} {'; '.join(problems[:3])}: the device part is not static after simplifying"
            ),
            stacklevel=3,
        )
