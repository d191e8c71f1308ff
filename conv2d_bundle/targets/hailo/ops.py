"""The ONNX operators the Hailo Dataflow Compiler's ONNX parser maps onto device layers, the multi-node patterns
it parses as one layer, and where a graph it cannot parse would have to be cut.

A device-part ONNX whose every node is in :data:`HAILO_SUPPORTED_OPS`, or inside one of the patterns of
:func:`fused_patterns`, has no operator the parser is known to reject; anything else (``Round``, ``ArgMax``,
casts to integers) belongs to the host part. The list is deliberately short: it holds what Hailo's public
documents and Hailo's own compiled models show, each entry with where, not every operator the parser may
accept. Sources:

- [UG] Hailo Dataflow Compiler User Guide, release 3.30.0, section 5.5 "Supported Layers"
  (public copy: https://www.scribd.com/document/850794798/hailo-dataflow-compiler-v3-30-0-user-guide)
- [PB] Hailo Dataflow Compiler Product Brief, release 3.7.0, section 2.2 "ONNX Parser" and section 3
  "Supported layers" (3.1 Convolution, 3.2 Max Pooling, 3.3 Dense, 3.4 Average Pooling, 3.5 Concat,
  3.6 Deconvolution, 3.7 Depthwise Convolution, ...)
  (public copy: https://www.readkong.com/page/hailo-dataflow-compiler-product-brief-release-3-7-0-7-2267727)
- [CROP] Hailo community, "Handling Unsupported Operations with ONNXRuntime": unsupported tails are cut
  off with --end-node-names and run on the host; "find the first unsupported op, pick end-nodes right before
  that op" (https://community.hailo.ai/t/handling-unsupported-operations-with-onnxruntime/17956)
- [MZ] Hailo Model Zoo v2.18 (the Hailo-8 line: "Update to use Dataflow Compiler v3.33.1", docs/CHANGELOG.rst;
  https://github.com/hailo-ai/hailo_model_zoo, branch update-to-version-v2.18.0):
  docs/public_models/HAILO8/HAILO8_classification.rst lists HEFs for hailo8 "compiled using Hailo Dataflow
  Compiler v3.33.0" of, among others, ``vit_base`` / ``vit_small`` / ``vit_tiny`` and ``deit_*`` (LayerNorm +
  erf GELU blocks; hailo_model_zoo/cfg/networks/vit_base.yaml: ``supported_hw_arch: [hailo8, hailo8l]``, parsed
  from ``vit_base_patch16_224_ops17.onnx``), ``swin_tiny`` (cfg/networks/swin_tiny.yaml: the Hugging Face
  ``microsoft/swin-tiny-patch4-window7-224``, LayerNorm + GELU), ``fastvit_sa12`` (GELU) and ``levit128`` ..
  ``levit384`` (LeViT, built on ``nn.Hardswish``; cfg/networks/levit128.yaml: hailo8, hailo8l).
- [MZ-ALLS] the same Model Zoo's model scripts name the DFC's own layer-normalization layer and its parts
  (``reduce_mean1_layer_normalization2``, ``ew_sub1_layer_normalization2``, ``square1_layer_normalization3``,
  ``conv_var_inv_layer_normalization3``, ``ew_mult1_layer_normalization3``;
  ``pre_quantization_optimization(layer_norm_decomposition, ...)``): hailo_model_zoo/cfg/alls/generic/
  clip_vit_b_16_image_encoder.alls, davit_tiny.alls, hailo15l/base/clip_vit_l_14_336_image_encoder.alls.

Not confirmed by any of them, so not accepted: a standalone ``Erf``, ``Pow``, ``Sqrt``, ``HardSigmoid`` (a
hard-sigmoid gate on its own), and the parser's behaviour on the fused patterns in forms other than the ones
torch's exporter writes. A third-party report (https://github.com/ankandrew/fast-plate-ocr/issues/44) shows
DFC 3.31 rejecting a tf2onnx graph's ``.../Gelu/Erf`` ("UnsupportedActivationLayerError ... Unexpected
activation"): the patterns below are what torch writes, and the DFC's parser remains the final judge.

onnx (and numpy, for the constants of the patterns) only: no torch, no onnxruntime; the hailo checks use it on a
device.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

HAILO_SUPPORTED_OPS: frozenset[str] = frozenset(
    {
        "Conv",  # [PB] 3.1 Convolution, 3.7 Depthwise Convolution (group == channels); [UG] 5.5
        "ConvTranspose",  # [PB] 3.6 Deconvolution; [UG] 5.5
        "MaxPool",  # [PB] 3.2 Max Pooling; [UG] 5.5
        "AveragePool",  # [PB] 3.4 Average Pooling; [UG] 5.5
        "GlobalAveragePool",  # [PB] 3.4 Average Pooling (global); [UG] 5.5
        "ReduceMean",  # [UG] 5.5, global average pooling written as a mean over H, W; [MZ-ALLS] reduce_mean
        "Gemm",  # [PB] 3.3 Dense; [UG] 5.5
        "MatMul",  # [PB] 3.3 Dense (with a constant weight); [UG] 5.5
        "Concat",  # [PB] 3.5 Concat; [UG] 5.5
        "BatchNormalization",  # [PB] 2.2 ONNX Parser (folded into the preceding layer); [UG] 5.5
        "Relu",  # [UG] 5.5 activations
        "LeakyRelu",  # [UG] 5.5 activations
        "PRelu",  # [UG] 5.5 activations
        "Sigmoid",  # [UG] 5.5 activations
        "Tanh",  # [UG] 5.5 activations
        "Elu",  # [UG] 5.5 activations
        "Exp",  # [UG] 5.5 activations
        "Clip",  # [UG] 5.5 activations (ReLU6 / bounded ReLU)
        "Softmax",  # [UG] 5.5 (softmax as the network's last layer)
        "Add",  # [UG] 5.5 elementwise add, and bias / constant add
        "Sub",  # [UG] 5.5 elementwise sub, and constant subtraction
        "Mul",  # [UG] 5.5 elementwise mult, and constant scaling
        "Div",  # [UG] 5.5 division by a constant (normalization)
        "Flatten",  # [PB] 2.2 ONNX Parser (before a Dense layer); [UG] 5.5
        "Reshape",  # [PB] 2.2 ONNX Parser (before a Dense layer); [UG] 5.5
        "Transpose",  # [UG] 5.5 (as part of a supported reshape pattern)
        "Pad",  # [PB] 2.4 Supported padding schemes; [UG] 5.5 (a constant Pad before a Conv is folded into it)
        "Resize",  # [UG] 5.5 resize (nearest neighbour, bilinear)
        "Slice",  # [UG] 5.5 slice (features and spatial)
        "Split",  # [UG] 5.5 feature split
        "Squeeze",  # [UG] 5.5 (as part of a supported reshape pattern)
        "Unsqueeze",  # [UG] 5.5 (as part of a supported reshape pattern)
        "Identity",  # [UG] 5.5 (removed by the parser)
        "Dropout",  # [UG] 5.5 (inference no-op, removed by the parser)
        "Constant",  # [PB] 2.2 ONNX Parser (constants feed the layers above)
    }
)

# Operators the host runs after the device part ([CROP]): integer tails a quantized device cannot express.
HOST_ONLY_OPS: frozenset[str] = frozenset({"Round", "ArgMax", "ArgMin", "Cast", "Floor", "Ceil"})

# The layers the parser builds from several ONNX nodes, as torch's exporter (opset 11-13) writes them.
#: x * 0.5 * (1 + Erf(x / sqrt(2))): nn.GELU(); [MZ] vit_*, deit_*, swin_tiny, fastvit_sa12
GELU = "GELU"
#: (x - mean) / Sqrt(mean((x - mean)^2) + eps), then * gamma + beta: nn.LayerNorm (a single LayerNormalization
#: node only from opset 17); [MZ] vit_*, swin_tiny; [MZ-ALLS] the DFC's layer_normalization layer
LAYER_NORM = "LayerNormalization"
#: x * HardSigmoid(x, alpha=1/6, beta=1/2): nn.Hardswish below opset 14 (from 14 on torch writes one HardSwish
#: node, which the device export's opsets 11/13 never hold); [MZ] levit* -- which of the two forms Hailo's LeViT
#: files hold is not stated, so this rests on the DFC taking torch's Hardswish in the form torch writes
HARDSWISH = "HardSwish"


def unsupported_ops(op_types: Iterable[str]) -> list[str]:
    """The sorted, distinct operator types not in :data:`HAILO_SUPPORTED_OPS`."""
    return sorted({op for op in op_types if op not in HAILO_SUPPORTED_OPS})


@dataclass(frozen=True)
class Fused:
    """One multi-node pattern the parser takes as a single layer: which layer, and the nodes it covers."""

    layer: str
    nodes: tuple[str, ...]  # their names (an unnamed node as OpType#index)


@dataclass(frozen=True)
class OpsReport:
    """What the supported-op check found in a device graph."""

    ops: list[str]  # the distinct operator types of the graph
    fused: dict[str, int]  # layer -> how many times its pattern occurs
    unsupported: list[str]  # distinct operator types outside the list and outside every pattern
    #: the unsupported operator types whose nodes only compute constants (from the weights): a simplifier folds
    #: them; they do not decide where the device part ends
    constant_only: list[str] = field(default_factory=list)
    #: the first node (in topological order) using an unsupported operator: (name, op type); None when clean
    first: tuple[str, str] | None = None
    #: where the device part would end if cut there: the tensors the host part would read from it, and the
    #: nodes producing them (the --end-node-names)
    end_tensors: list[str] = field(default_factory=list)
    end_nodes: list[str] = field(default_factory=list)

    def message(self, label: str) -> str:
        """The failure message of a graph with unsupported operators (``label``: the file, as the user sees it)."""
        parts = []
        host = [op for op in self.unsupported if op not in self.constant_only]
        if host:
            text = f"{label} uses operators outside the Hailo supported list: {host} (run them on the host)"
            if self.first is not None:
                name, op = self.first
                text += f"; the host part would start at {op} node {name!r} (the first in topological order)"
                if self.end_nodes:
                    text += (
                        f", the device part would end at {', '.join(repr(t) for t in self.end_tensors)}: "
                        f"--end-node-names {' '.join(repr(n) for n in self.end_nodes)}"
                    )
                else:
                    text += ", which reads the graph input: no device part would be left before it"
            parts.append(text)
        if self.constant_only:
            parts.append(
                f"{label} holds {self.constant_only} nodes that only compute constants from the weights: a "
                "simplifier folds them away (create runs onnxslim on the device part)"
            )
        return "; ".join(parts)


def _node_label(node: Any, index: int) -> str:
    return str(node.name) if node.name else f"{node.op_type}#{index}"


class _Graph:
    """Producers, consumers and constant scalars of an ONNX graph (duck-typed: ``graph.node``, ``.initializer``)."""

    def __init__(self, graph: Any) -> None:
        self.nodes = list(graph.node)
        self.labels = [_node_label(n, i) for i, n in enumerate(self.nodes)]
        self.index = {id(n): i for i, n in enumerate(self.nodes)}
        self.outputs = [o.name for o in graph.output]
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for out in node.output:
                self.producer[out] = i
            for name in node.input:
                self.consumers.setdefault(name, []).append(i)
        self.constants: dict[str, Any] = {t.name: t for t in graph.initializer}
        for node in self.nodes:
            if node.op_type == "Constant" and node.output:
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    self.constants[node.output[0]] = value

    def made_by(self, tensor: str, *ops: str) -> Any | None:
        i = self.producer.get(tensor)
        return self.nodes[i] if i is not None and self.nodes[i].op_type in ops else None

    def used_by(self, tensor: str, *ops: str) -> list[Any]:
        return [self.nodes[i] for i in self.consumers.get(tensor, []) if self.nodes[i].op_type in ops]

    def scalar(self, tensor: str) -> float | None:
        """The value of a one-element constant tensor, else None."""
        proto = self.constants.get(tensor)
        if proto is None:
            return None
        from onnx import numpy_helper

        try:
            array = numpy_helper.to_array(proto)
        except Exception:  # an unreadable constant is not one of the patterns' constants
            return None
        return float(array.reshape(-1)[0]) if array.size == 1 else None

    def is_const(self, tensor: str, value: float, tol: float = 1e-3) -> bool:
        got = self.scalar(tensor)
        return got is not None and abs(got - value) <= tol * max(1.0, abs(value))

    def fused(self, layer: str, *nodes: Any) -> tuple[str, list[int]]:
        return layer, [self.index[id(n)] for n in nodes]

    def other(self, node: Any, tensor: str) -> str | None:
        """The other input of a two-input node one of whose inputs is ``tensor``."""
        ins = list(node.input)
        if len(ins) != 2 or tensor not in ins:
            return None
        return ins[1] if ins[0] == tensor else ins[0]


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _gelu(g: _Graph, erf: Any) -> tuple[str, list[int]] | None:
    """``Erf(x / sqrt2)`` (or ``x * 1/sqrt2``) -> ``+ 1`` -> ``* x`` with a ``* 0.5`` before or after."""
    scale = g.made_by(erf.input[0], "Div", "Mul")
    if scale is None:
        return None
    if scale.op_type == "Div":
        x = scale.input[0]
        if not g.is_const(scale.input[1], 2**0.5):
            return None
    else:
        x = next((t for t in scale.input if g.is_const(g.other(scale, t) or "", 2**-0.5)), None)
        if x is None:
            return None
    for add in g.used_by(erf.output[0], "Add"):
        if not g.is_const(g.other(add, erf.output[0]) or "", 1.0):
            continue
        for mul in g.used_by(add.output[0], "Mul"):
            gate = g.other(mul, add.output[0])
            if gate == x:  # x * (1 + erf) then * 0.5
                half = next(
                    (
                        m
                        for m in g.used_by(mul.output[0], "Mul")
                        if g.is_const(g.other(m, mul.output[0]) or "", 0.5)
                    ),
                    None,
                )
                if half is not None:
                    return g.fused(GELU, scale, erf, add, mul, half)
            pre = g.made_by(gate or "", "Mul")  # (0.5 * x) * (1 + erf)
            if pre is not None and x in pre.input and g.is_const(g.other(pre, x) or "", 0.5):
                return g.fused(GELU, scale, erf, add, pre, mul)
    return None


def _axes(g: _Graph, reduce: Any) -> Any:
    axes = _attr(reduce, "axes", None)
    if axes is None and len(reduce.input) > 1:  # opset 18: axes is an input
        proto = g.constants.get(reduce.input[1])
        if proto is not None:
            from onnx import numpy_helper

            axes = numpy_helper.to_array(proto).tolist()
    return list(axes) if axes is not None else None


def _layer_norm(g: _Graph, sqrt: Any) -> tuple[str, list[int]] | None:
    """``d = x - ReduceMean(x)``; ``Sqrt(ReduceMean(d^2) + eps)`` dividing ``d``, over the same axes."""
    add = g.made_by(sqrt.input[0], "Add")
    if add is None:
        return None
    var = next((p for t in add.input if (p := g.made_by(t, "ReduceMean")) is not None), None)
    if var is None or g.scalar(g.other(add, var.output[0]) or "") is None:  # + eps, a constant
        return None
    square = g.made_by(var.input[0], "Pow", "Mul")
    if square is None:
        return None
    d = square.input[0]
    if square.op_type == "Pow" and not g.is_const(square.input[1], 2.0):
        return None
    if square.op_type == "Mul" and list(square.input) != [d, d]:
        return None
    sub = g.made_by(d, "Sub")
    mean = g.made_by(sub.input[1], "ReduceMean") if sub is not None else None
    if sub is None or mean is None or mean.input[0] != sub.input[0] or _axes(g, mean) != _axes(g, var):
        return None
    div = next((n for n in g.used_by(sqrt.output[0], "Div") if list(n.input) == [d, sqrt.output[0]]), None)
    if div is None:
        return None
    return g.fused(LAYER_NORM, mean, sub, square, var, add, sqrt, div)


def _hardswish(g: _Graph, hsig: Any) -> tuple[str, list[int]] | None:
    """``x * HardSigmoid(x, alpha=1/6, beta=1/2)``."""
    alpha, beta = float(_attr(hsig, "alpha", 0.2)), float(_attr(hsig, "beta", 0.5))
    if abs(alpha - 1 / 6) > 1e-4 or abs(beta - 0.5) > 1e-4:
        return None
    x = hsig.input[0]
    mul = next((m for m in g.used_by(hsig.output[0], "Mul") if g.other(m, hsig.output[0]) == x), None)
    return None if mul is None else g.fused(HARDSWISH, hsig, mul)


#: the operator each pattern is anchored on (the one the parser would reject on its own) and its matcher
_PATTERNS = {"Erf": _gelu, "Sqrt": _layer_norm, "HardSigmoid": _hardswish}


def fused_patterns(graph: Any) -> tuple[list[Fused], set[int]]:
    """Every occurrence of a fused pattern in ``graph``, and the indices of the nodes they cover."""
    return _fused(_Graph(graph))


def _fused(g: _Graph) -> tuple[list[Fused], set[int]]:
    found, covered = [], set()
    for node in g.nodes:
        match = _PATTERNS.get(node.op_type)
        hit = match(g, node) if match is not None else None
        if hit is not None:
            layer, indices = hit
            found.append(Fused(layer, tuple(g.labels[i] for i in indices)))
            covered.update(indices)
    return found, covered


def check_graph(graph: Any) -> OpsReport:
    """The supported-op verdict on a device graph: its operators, the fused patterns found, the operators the
    parser would reject, and where the device part would have to end (``[CROP]``): the host part starts at the
    first rejected node in topological order and takes everything that depends on any rejected node; the
    device part ends at the tensors the host part reads from it."""
    g = _Graph(graph)
    fused, covered = _fused(g)
    counts: dict[str, int] = {}
    for f in fused:
        counts[f.layer] = counts.get(f.layer, 0) + 1
    bad = [i for i, n in enumerate(g.nodes) if i not in covered and n.op_type not in HAILO_SUPPORTED_OPS]
    report = OpsReport(
        ops=sorted({n.op_type for n in g.nodes}),
        fused=dict(sorted(counts.items())),
        unsupported=sorted({g.nodes[i].op_type for i in bad}),
    )
    folded = _constant_nodes(g)
    cut = [i for i in bad if i not in folded]
    report = OpsReport(
        ops=report.ops,
        fused=report.fused,
        unsupported=report.unsupported,
        constant_only=sorted(
            {g.nodes[i].op_type for i in bad if i in folded} - {g.nodes[i].op_type for i in cut}
        ),
    )
    if not cut:
        return report
    host = _descendants(g, cut)
    ends: dict[str, str] = {}
    for i in sorted(host):
        for tensor in g.nodes[i].input:
            j = g.producer.get(tensor)
            if j is not None and j not in host and g.nodes[j].op_type != "Constant":
                ends.setdefault(tensor, g.labels[j])
    for tensor in g.outputs:  # outputs the device part still computes stay its ends
        j = g.producer.get(tensor)
        if j is not None and j not in host:
            ends.setdefault(tensor, g.labels[j])
    first = cut[0]
    return OpsReport(
        ops=report.ops,
        fused=report.fused,
        unsupported=report.unsupported,
        constant_only=report.constant_only,
        first=(g.labels[first], g.nodes[first].op_type),
        end_tensors=list(ends),
        end_nodes=list(dict.fromkeys(ends.values())),
    )


def _constant_nodes(g: _Graph) -> set[int]:
    """The nodes that compute constants only: every input a weight, a ``Constant`` or such a node's output."""
    known, out = set(g.constants), set()
    for i, node in enumerate(g.nodes):  # in topological order
        if all(not t or t in known for t in node.input):
            out.add(i)
            known.update(node.output)
    return out


def _descendants(g: _Graph, start: Sequence[int]) -> set[int]:
    seen, stack = set(start), list(start)
    while stack:
        for out in g.nodes[stack.pop()].output:
            for j in g.consumers.get(out, []):
                if j not in seen:
                    seen.add(j)
                    stack.append(j)
    return seen


def op_counts(graph: Any) -> Mapping[str, int]:
    """How many nodes of each operator type ``graph`` has, sorted by type."""
    counts: dict[str, int] = {}
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
