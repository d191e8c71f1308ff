"""The device-part graph the kit hands the Dataflow Compiler: simplified to static shapes (onnxslim), the layers
the compiler fuses recognised, and an unsupported operator named with where the host part would start.

Tiny torch modules exported the way the kit exports (``export_onnx``, batch 1, opset 13): no Hugging Face model
here (those belong to the zoo suite)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper

from conv2d_bundle.errors import BundleWarning
from conv2d_bundle.targets.hailo.ops import GELU, HARDSWISH, LAYER_NORM, check_graph, op_counts
from conv2d_bundle.targets.hailo.simplify import LIBRARY, simplify_device_onnx
from conv2d_bundle.targets.onnx.export import export_onnx
from conv2d_bundle.targets.onnx.graph import dims, static_problems


class SamePad(torch.nn.Module):
    """TF-style "same" padding computed from ``x.shape`` as Hugging Face's MobileNetV2 does: torch writes the
    pads as a Shape/ConstantOfShape/Cast/Concat/Slice chain, and the classifier's output keeps a symbolic
    batch axis (``Gemmy_dim_0``) though the input is batch 1."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph = max((h + 1) // 2 * 2 - 2 + 3 - h, 0)
        pw = max((w + 1) // 2 * 2 - 2 + 3 - w, 0)
        y = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return self.fc(torch.relu(self.conv(y)).mean((2, 3)))


class Blocks(torch.nn.Module):
    """The layers torch decomposes at opset 11-13: LayerNorm (channels last, like ConvNeXt), GELU, Hardswish,
    and LayerNorm written by hand over the channel axis (ConvNeXt's channels-first LayerNorm)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.ln = torch.nn.LayerNorm(8)
        self.act = torch.nn.GELU()
        self.hs = torch.nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        y = self.act(self.ln(y.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        u = y.mean(1, keepdim=True)
        s = (y - u).pow(2).mean(1, keepdim=True)
        y = (y - u) / torch.sqrt(s + 1e-6)
        return self.hs(y)


def export(
    module: torch.nn.Module, path: Path, *, opset: int = 13, outputs: tuple[str, ...] = ("y",)
) -> Path:
    torch.manual_seed(0)
    export_onnx(
        module.eval(),
        (1, 3, 9, 9),
        path,
        input_name="x",
        output_names=outputs,
        opset=opset,
        dynamic_batch=False,
        metadata={"exp_hash": "abc123"},
    )
    return path


def run(path: Path, x: np.ndarray, *, optimize: bool = False) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not optimize:  # onnxruntime's own fusions differ between graphs: compare the graphs, not them
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [np.asarray(o) for o in sess.run(None, {"x": x})]


# -- the simplifier ---------------------------------------------------------------------------------
def test_simplifier_folds_dynamic_padding_and_makes_every_axis_static(tmp_path: Path) -> None:
    pytest.importorskip(LIBRARY)
    path = export(SamePad(), tmp_path / "m.onnx")
    raw = onnx.load(str(path))
    assert {"ConstantOfShape", "Cast", "Pad"} <= set(op_counts(raw.graph))
    assert dims(raw.graph.output[0]) == ["Gemmy_dim_0", 2]  # what the issue saw on MobileNetV2
    copy = tmp_path / "raw.onnx"
    copy.write_bytes(path.read_bytes())
    x = np.random.default_rng(0).standard_normal((1, 3, 9, 9)).astype(np.float32)

    info = simplify_device_onnx(path, "m.onnx")

    slim = onnx.load(str(path))
    assert (
        info["library"] == "onnxslim"
        and info["version"]
        and info["options"] == {"skip_fusion_patterns": ["FusionGemm"]}
    )
    assert info["ops_before"] == dict(op_counts(raw.graph)) and info["nodes_before"] == len(raw.graph.node)
    # the padding chain folded away, the Pad itself into the Conv's pads
    assert info["ops_after"] == {"Conv": 1, "Gemm": 1, "ReduceMean": 1, "Relu": 1}
    assert info["nodes_after"] == len(slim.graph.node) == 4
    assert dims(slim.graph.output[0]) == [1, 2]
    assert static_problems(slim.graph.output, "output") == []
    assert static_problems(slim.graph.value_info, "tensor") == [] and len(slim.graph.value_info) >= 3
    assert [(p.key, p.value) for p in slim.metadata_props] == [("exp_hash", "abc123")]
    assert slim.ir_version <= 9 and slim.opset_import[0].version == 13
    np.testing.assert_array_equal(run(path, x)[0], run(copy, x)[0])  # the same numbers, not just close
    np.testing.assert_allclose(run(path, x, optimize=True)[0], run(copy, x, optimize=True)[0], atol=1e-6)
    assert check_graph(slim.graph).unsupported == []


def test_simplifier_is_deterministic(tmp_path: Path) -> None:
    pytest.importorskip(LIBRARY)
    a, b = export(Blocks(), tmp_path / "a.onnx"), export(Blocks(), tmp_path / "b.onnx")
    simplify_device_onnx(a)
    simplify_device_onnx(b)
    assert a.read_bytes() == b.read_bytes()  # a bundle's content does not depend on the run


def test_without_the_simplifier_create_keeps_the_export_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = export(SamePad(), tmp_path / "m.onnx")
    before = path.read_bytes()
    monkeypatch.setitem(__import__("sys").modules, "onnxslim", None)  # import onnxslim -> ImportError
    with pytest.warns(
        BundleWarning,
        match=r"^m\.onnx is not simplified \(onnxslim is not importable .*conv2d-bundle\[torch\]",
    ):
        info = simplify_device_onnx(path, "m.onnx")
    assert path.read_bytes() == before
    assert info["library"] is None and info["reason"].startswith("onnxslim is not importable")
    assert info["ops_after"] == info["ops_before"] and "ConstantOfShape" in info["ops_before"]
    # and the checks name what is left: constants only, which a simplifier would fold
    report = check_graph(onnx.load(str(path)).graph)
    assert report.constant_only == ["Cast", "ConstantOfShape"] and report.first is None


def test_a_failing_simplifier_keeps_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnxslim = pytest.importorskip(LIBRARY)
    path = export(SamePad(), tmp_path / "m.onnx")
    before = path.read_bytes()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("pass exploded")

    monkeypatch.setattr(onnxslim, "slim", broken)
    with pytest.warns(
        BundleWarning, match=r"is not simplified \(onnxslim .* failed: RuntimeError: pass exploded\)"
    ):
        info = simplify_device_onnx(path, "m.onnx")
    assert info["library"] is None and path.read_bytes() == before

    def renaming(model: Any, **kwargs: Any) -> Any:
        model.graph.output[0].name = "other"
        return model

    monkeypatch.setattr(onnxslim, "slim", renaming)
    with pytest.warns(BundleWarning, match=r"changed the outputs \['y'\] to \['other'\]"):
        simplify_device_onnx(path, "m.onnx")
    assert path.read_bytes() == before


# -- the layers the Dataflow Compiler fuses ---------------------------------------------------------
@pytest.mark.parametrize("opset", [11, 13])
def test_decomposed_layers_are_recognised(tmp_path: Path, opset: int) -> None:
    path = export(Blocks(), tmp_path / "m.onnx", opset=opset)
    graph = onnx.load(str(path)).graph
    assert {"Erf", "Pow", "Sqrt", "HardSigmoid"} <= set(op_counts(graph))  # torch decomposed them all
    report = check_graph(graph)
    assert report.fused == {GELU: 1, HARDSWISH: 1, LAYER_NORM: 2}
    assert report.unsupported == [] and report.first is None and report.end_nodes == []


def test_recognised_after_simplifying(tmp_path: Path) -> None:
    pytest.importorskip(LIBRARY)
    path = export(Blocks(), tmp_path / "m.onnx")
    simplify_device_onnx(path)
    report = check_graph(onnx.load(str(path)).graph)
    assert report.fused == {GELU: 1, HARDSWISH: 1, LAYER_NORM: 2} and report.unsupported == []


class HandWritten(torch.nn.Module):
    """GELU and LayerNorm as model code writes them by hand: 0.5 * x first and a multiply by 1/sqrt(2); the
    variance as d * d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = 0.5 * x * (1 + torch.erf(x * 0.7071067811865476))
        d = y - y.mean(-1, keepdim=True)
        return d / torch.sqrt((d * d).mean(-1, keepdim=True) + 1e-5)


def test_hand_written_layers_are_recognised(tmp_path: Path) -> None:
    path = export(HandWritten(), tmp_path / "m.onnx")
    report = check_graph(onnx.load(str(path)).graph)
    assert report.fused == {GELU: 1, LAYER_NORM: 1} and report.unsupported == []


class Lookalikes(torch.nn.Module):
    """The anchors of the patterns without the patterns: erf of x/2, a cube, a square root of an input, and a
    hard sigmoid gate that is not x * hardsigmoid(x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x * 0.5 * (1 + torch.erf(x / 2))  # not 1/sqrt(2): not GELU
        b = x.pow(3)
        c = torch.sqrt(x.abs() + 1)
        d = F.hardsigmoid(x) * a
        return a + b + c + d


def test_lookalikes_are_not_fused(tmp_path: Path) -> None:
    path = export(Lookalikes(), tmp_path / "m.onnx")
    report = check_graph(onnx.load(str(path)).graph)
    assert report.fused == {}
    assert report.unsupported == ["Abs", "Erf", "HardSigmoid", "Pow", "Sqrt"]


# -- an unsupported operator: where the host part would start ---------------------------------------
class RoundTail(torch.nn.Module):
    """A device part that ends in rounding (an integer tail) on one output and keeps a float output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.relu(self.conv(x)).mean((2, 3))
        logits = self.fc(feats)
        return torch.round(torch.tanh(feats) * 4), logits


def test_unsupported_op_names_itself_and_the_cut(tmp_path: Path) -> None:
    path = export(RoundTail(), tmp_path / "m.onnx", outputs=("codes", "logits"))
    graph = onnx.load(str(path)).graph
    report = check_graph(graph)
    assert report.unsupported == ["Round"]
    assert report.first == ("/Round", "Round")
    # the host part reads the scaled latent; the logits stay a device output
    assert report.end_tensors == ["/Mul_output_0", "logits"]
    assert report.end_nodes == ["/Mul", "/fc/Gemm"]
    assert report.message("models/hailo/model.onnx") == (
        "models/hailo/model.onnx uses operators outside the Hailo supported list: ['Round'] (run them on the "
        "host); the host part would start at Round node '/Round' (the first in topological order), the device "
        "part would end at '/Mul_output_0', 'logits': --end-node-names '/Mul' '/fc/Gemm'"
    )


def test_topk_on_the_input_leaves_no_device_part() -> None:
    """An unsupported operator reading the graph input: nothing could run on the device before it. Built with
    onnx.helper, nodes unnamed: they are named by operator and position."""
    k = helper.make_tensor("k", TensorProto.INT64, [1], [2])
    graph = helper.make_graph(
        [
            helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=-1),
            helper.make_node("Relu", ["v"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [k],
    )
    report = check_graph(graph)
    assert report.unsupported == ["TopK"] and report.first == ("TopK#0", "TopK") and report.end_nodes == []
    assert report.message("m.onnx").endswith(
        "the host part would start at TopK node 'TopK#0' (the first in topological order), which reads the "
        "graph input: no device part would be left before it"
    )


def test_constant_computations_do_not_decide_the_cut() -> None:
    """Shape arithmetic on the weights (what a simplifier folds) is named apart from the real host work."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 4])
    graph = helper.make_graph(
        [
            helper.make_node("ConstantOfShape", ["shape"], ["zeros"], name="zeros"),
            helper.make_node("Add", ["x", "zeros"], ["s"], name="add"),
            helper.make_node("Round", ["s"], ["y"], name="round"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [shape],
    )
    report = check_graph(graph)
    assert report.unsupported == ["ConstantOfShape", "Round"] and report.constant_only == ["ConstantOfShape"]
    assert report.first == ("round", "Round") and report.end_nodes == ["add"]
    assert report.message("m.onnx") == (
        "m.onnx uses operators outside the Hailo supported list: ['Round'] (run them on the host); the host part "
        "would start at Round node 'round' (the first in topological order), the device part would end at "
        "'s': --end-node-names 'add'; m.onnx holds ['ConstantOfShape'] nodes that only compute constants from "
        "the weights: a simplifier folds them away (create runs onnxslim on the device part)"
    )


def test_static_problems_name_every_kind_of_bad_axis() -> None:
    def vi(name: str, shape: list[Any]) -> Any:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    tensors = [vi("a", [1, 4]), vi("b", ["N", 4]), vi("c", [None, 4]), vi("d", [0, 4]), vi("e", ["N", "M"])]
    tensors.append(helper.make_tensor_value_info("f", TensorProto.FLOAT, None))  # no shape at all: not judged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert static_problems(tensors, "output") == [
            "output b has a symbolic axis 'N'",
            "output c has an axis of unknown size",
            "output d has an axis of size 0",
            "output e has a symbolic axis 'N', a symbolic axis 'M'",
        ]
