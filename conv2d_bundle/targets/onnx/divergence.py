"""Where an ONNX export diverges from the source model: its tapped tensors against ``reference/taps.npz``.

At create, :func:`map_taps` finds the tensor of the ONNX graph that holds each tap (a module's output, see
:mod:`conv2d_bundle.bundle.taps`); the mapping lands in ``metadata.json`` (``formats.onnx.taps``). When a parity item
fails, :func:`locate` runs the bundle's export again, in memory, with those tensors as extra graph outputs and
names the first tap whose values are off and the last one that still agrees. numpy + onnx + onnxruntime only:
this runs on the device that verifies, without torch, and never writes into the bundle.

How a tap finds its tensor. The project exports with the TorchScript exporter (``dynamo=False``, see
``targets/onnx/export.py``). Measured with torch 2.13: it names each node after the module scope that made it,
one path segment per level (``/inner/encoder/encoder.0/encoder.0.2/Relu``, output
``/inner/encoder/encoder.0/encoder.0.2/Relu_output_0``), but it also rewrites the graph: BatchNorm is folded
into the Conv before it, so a tap on that Conv has no tensor at all, and a module's last op may be a Flatten
or a Constant-fed Mul. The segment format is the exporter's private choice (the dynamo exporter names nodes
differently). So the mapping is decided by *values*: every node output is exposed, run on the golden inputs,
and a tensor is a tap's only if it has the tap's shape and agrees with its torch value; the scope only breaks
ties (prefer tensors whose node name has the tap as a path segment, and of those the last one, which is what
the module returned). A tap no tensor reproduces maps to None and is left out of the search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: how close a tensor must be to a tap's torch value to be that tap's tensor at create (runtimes differ ~1e-6)
MAP_ATOL = 1e-4
MAP_RTOL = 1e-4
#: rows of the golden inputs used to map taps: enough to tell tensors apart, cheap at create
MAP_ROWS = 8


def expose(model: Any, names: Sequence[str]) -> bytes:
    """A copy of ``model`` (onnx ModelProto) with the tensors ``names`` added as graph outputs, serialized.

    The outputs are declared by name only: onnxruntime infers their type and shape, so no shape inference
    (which needs every op's schema) is needed here."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    have = {o.name for o in copy.graph.output}
    for name in names:
        if name not in have:
            copy.graph.output.append(onnx.ValueInfoProto(name=name))
            have.add(name)
    return copy.SerializeToString()


def run_exposed(
    model: Any, names: Sequence[str], input_name: str, inputs: np.ndarray
) -> dict[str, np.ndarray]:
    """The values of the tensors ``names`` (and the graph's own outputs) on ``inputs``, by name."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # no graph rewrites: an optimizer may fuse away the very tensors asked for
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(expose(model, names), options, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    return dict(zip(out_names, sess.run(None, {input_name: inputs}), strict=True))


def _within(actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> bool:
    if actual.shape != expected.shape:
        return False
    if not np.issubdtype(expected.dtype, np.floating):
        return bool(np.array_equal(actual, expected))
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    return bool(np.all(np.abs(a - e) <= atol + rtol * np.abs(e)))


def map_taps(
    model: Any, input_name: str, inputs: np.ndarray, order: Sequence[str], values: Mapping[str, np.ndarray]
) -> dict[str, str | None]:
    """Each tap's tensor name in ``model`` (None: no tensor holds its value), decided on the first rows of
    the golden inputs (see the module's docstring for why by value)."""
    rows = min(MAP_ROWS, inputs.shape[0])
    nodes = [(n.name, out) for n in model.graph.node if n.op_type != "Constant" for out in n.output if out]
    got = run_exposed(model, [out for _, out in nodes], input_name, inputs[:rows])
    mapping: dict[str, str | None] = {}
    for tap in order:
        expected = values[tap][:rows]
        matches = [
            (node, out)
            for node, out in nodes
            if out in got
            and _within(got[out], expected, MAP_ATOL, MAP_RTOL * float(np.abs(expected).max(initial=1)))
        ]
        in_scope = [out for node, out in matches if tap in node.split("/")]
        mapping[tap] = in_scope[-1] if in_scope else (matches[0][1] if matches else None)
    return mapping


@dataclass(frozen=True)
class TapError:
    tap: str
    tensor: str
    max_abs_error: float
    agrees: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "tap": self.tap,
            "tensor": self.tensor,
            "max_abs_error": self.max_abs_error,
            "agrees": self.agrees,
        }


@dataclass(frozen=True)
class Divergence:
    """Every mapped tap's error, in execution order; the first that disagrees and the last that agrees."""

    taps: tuple[TapError, ...]
    unmapped: tuple[str, ...] = ()

    @property
    def first_bad(self) -> TapError | None:
        return next((t for t in self.taps if not t.agrees), None)

    @property
    def last_good(self) -> TapError | None:
        bad = self.first_bad
        before = self.taps if bad is None else self.taps[: self.taps.index(bad)]
        return before[-1] if before else None

    def describe(self) -> str:
        bad, good = self.first_bad, self.last_good
        if not self.taps:
            return "no tap of the source model maps to a tensor of this export: divergence not located"
        if bad is None:
            assert good is not None  # taps is not empty
            return f"every tap agrees, the last ({good.tap}) within {good.max_abs_error:.2g}: it diverges after it"
        where = f"diverges at {bad.tap} (max abs {bad.max_abs_error:.2g})"
        if good is None:
            return f"{where}; the first tap already disagrees"
        return f"{where}; agrees up to {good.tap} ({good.max_abs_error:.2g})"

    def as_dict(self) -> dict[str, Any]:
        bad, good = self.first_bad, self.last_good
        return {
            "first_divergent_tap": bad.tap if bad else None,
            "last_agreeing_tap": good.tap if good else None,
            "taps": [t.as_dict() for t in self.taps],
            "unmapped_taps": list(self.unmapped),
        }


def locate(
    model: Any,
    input_name: str,
    inputs: np.ndarray,
    order: Sequence[str],
    mapping: Mapping[str, str | None],
    values: Mapping[str, np.ndarray],
    tolerance: tuple[float, float],
) -> Divergence:
    """Run ``model`` on ``inputs`` with the mapped tap tensors exposed; compare each with its golden value
    (the same rows) within ``tolerance`` (atol, rtol; integer taps exactly)."""
    graph = model.graph
    present = {o for node in graph.node for o in node.output} | {t.name for t in graph.input}
    present |= {t.name for t in graph.initializer}
    # a tensor the mapping names but this graph lacks (the export was replaced) is a tap left unmapped
    mapped = [t for t in order if mapping.get(t) in present and t in values]
    tensors = [str(mapping[t]) for t in mapped]
    got = run_exposed(model, tensors, input_name, inputs)
    atol, rtol = tolerance
    errors = []
    for tap, tensor in zip(mapped, tensors, strict=True):
        expected, actual = values[tap][: inputs.shape[0]], got[tensor]
        if actual.shape != expected.shape:
            errors.append(TapError(tap, tensor, float("inf"), False))
            continue
        with np.errstate(all="ignore"):
            diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        worst = float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))
        errors.append(TapError(tap, tensor, worst, _within(actual, expected, atol, rtol)))
    return Divergence(tuple(errors), tuple(t for t in order if t not in mapped))


def read_taps(bundle: Any) -> tuple[list[str], dict[str, np.ndarray]]:
    """The bundle's taps in execution order (``reference/taps.json``) and their values (``taps.npz``);
    BundleIntegrityError when they are missing or unreadable (a bundle created before taps existed)."""
    import json
    import zipfile

    from conv2d_bundle.bundle.taps import TAPS_FILE, TAPS_INDEX
    from conv2d_bundle.errors import BundleIntegrityError

    try:
        index = json.loads(bundle.path(TAPS_INDEX).read_text(encoding="utf-8"))
        order = [str(t["name"]) for t in index["taps"]]
        with np.load(bundle.path(TAPS_FILE), allow_pickle=False) as data:
            values = {name: data[name] for name in data.files}
    except FileNotFoundError as exc:
        raise BundleIntegrityError(
            f"the bundle has no {exc.filename or TAPS_INDEX} (created before taps?)"
        ) from exc
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise BundleIntegrityError(
            f"{TAPS_INDEX} / {TAPS_FILE} cannot be read: {type(exc).__name__}: {exc}"
        ) from exc
    return order, values


def locate_in_bundle(
    bundle: Any, model_file: str, mapping: Mapping[str, str | None], inputs: np.ndarray, policy: Any
) -> Divergence:
    """:func:`locate` for the ONNX file ``model_file`` of ``bundle`` with the verifier's float tolerance."""
    from conv2d_bundle.targets.onnx.graph import load

    order, values = read_taps(bundle)
    model = load(bundle.path(model_file), model_file)
    atol, rtol, _ = policy.cap("taps", "float32")
    return locate(model, bundle.config.model.input_name, inputs, order, mapping, values, (atol, rtol))
