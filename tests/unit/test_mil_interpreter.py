"""The numpy ML Program interpreter (``targets/ios/mil.py``) against torch, on Core ML programs converted here
from small torch modules (fp32 and fp16), the reference architecture, and MIL built by hand."""

from __future__ import annotations

import copy
import hashlib
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from conv2d_bundle.errors import BundleError, BundleIntegrityError  # noqa: E402
from conv2d_bundle.targets.ios import mil  # noqa: E402

#: fp32 programs against torch fp32
FP32_TOL: dict[str, Any] = {"rtol": 1e-5, "atol": 1e-5}
#: fp16 programs against torch fp32, max abs difference: every tensor between ops is rounded to fp16
#: (relative step 2**-11, ~5e-4) about 40 ops deep, outputs of magnitude ~1; measured 6.1e-4 (gram, both fp16
#: programs) and 3.6e-4 (peak), coremltools 9.0 / torch 2.13; the bound leaves ~8x of room
FP16_BOUND = 5e-3
#: above what fp32 rounding alone gives (the fp32 program: < 1e-6 here): an fp16 computation differs by more
FP32_NOISE = 1e-4


class Mixed(nn.Module):
    """Most of the ops a vision/IMU model converts to, in one graph."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(4, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, (3, 2), groups=4, dilation=(2, 1), padding="same")  # even kernel: same
        self.c3 = nn.Conv2d(8, 6, 3, stride=2, padding=(1, 0), bias=False)
        self.mp = nn.MaxPool2d(3, stride=2, padding=1)
        self.mp_ceil = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.ap_exclude = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.ap_include = nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=True)
        # ceil mode: the last window runs past the padding, by a pixel counted nowhere
        self.ap_ceil_in = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
        self.ap_ceil_ex = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.ln = nn.LayerNorm(6)
        self.lin = nn.Linear(6, 5)

    def forward(self, x: Any) -> tuple[Any, ...]:
        h = F.relu(self.c1(x))
        h = F.hardswish(self.c2(h))
        h = F.pad(h, (1, 2, 0, 1), mode="reflect")
        h = F.pad(h, (2, 1, 1, 0), mode="replicate")
        h = F.pad(h, (1, 1, 1, 1), value=0.5)
        h = torch.clamp(self.c3(h), -0.8, 0.9)
        a, b, c = self.mp(h), self.ap_exclude(h), self.ap_include(h)
        z = torch.cat([a, b], dim=1).mean(dim=(2, 3))
        y = self.ln(z.reshape(-1, 2, 6))
        y = F.gelu(y) + F.gelu(y, approximate="tanh") - torch.sigmoid(y) * torch.tanh(y) + F.silu(y) / 2.0
        y = y / (1.5 + torch.abs(y))
        y = torch.softmax(y.permute(0, 2, 1), dim=1) + F.hardsigmoid(y.permute(0, 2, 1))
        w = self.lin(y.transpose(1, 2))
        gram = torch.matmul(w, w.transpose(1, 2)).unsqueeze(1).squeeze(1)
        best = torch.argmax(w, dim=-1)
        peak = self.mp_ceil(c).sum(dim=(1, 2)).max(dim=-1).values
        peak = peak + self.ap_ceil_in(h).mean(dim=(1, 2, 3)) - self.ap_ceil_ex(h).mean(dim=(1, 2, 3))
        return gram, best, peak, torch.round(w * 3).to(torch.int64)


MIXED_OUTPUTS = ("gram", "best", "peak", "steps")
MIXED_SHAPE = (3, 4, 12, 10)


@dataclass
class Converted:
    path: Path
    module: Any
    outputs: tuple[str, ...]


def _quiet(fn: Callable[[], Any]) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def _convert(ct: Any, module: Any, example: Any, out: Path, outputs: tuple[str, ...], **kw: Any) -> Converted:
    module.eval()
    input_type = kw.pop("input_type", None) or ct.TensorType(name="x", shape=tuple(example.shape))
    output_kw = kw.pop("output_kw", {})
    with torch.no_grad():
        traced = torch.jit.trace(module, example)
    model = _quiet(
        lambda: ct.convert(
            traced,
            inputs=[input_type],
            outputs=[ct.TensorType(name=n, **output_kw) for n in outputs],
            convert_to="mlprogram",
            minimum_deployment_target=kw.pop("target", ct.target.iOS15),
            compute_precision=kw.pop("precision", ct.precision.FLOAT32),
        ),
    )
    model.save(str(out))
    return Converted(out, module, outputs)


def _torch(conv: Converted, x: np.ndarray, module: Any = None) -> dict[str, np.ndarray]:
    """torch's outputs (fp32) for ``x``, by the converted program's output names."""
    with torch.no_grad():
        got = (module or conv.module)(torch.from_numpy(np.asarray(x, np.float32)))
    return {n: t.numpy() for n, t in zip(conv.outputs, got, strict=True)}


@pytest.fixture(scope="module")
def ct() -> Any:
    return pytest.importorskip("coremltools")


@pytest.fixture(scope="module")
def programs(ct: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Converted]:
    """Core ML packages converted once for the module, by name."""
    tmp = tmp_path_factory.mktemp("mil")
    torch.manual_seed(0)
    mixed = Mixed()
    with torch.no_grad():  # a LayerNorm that is not the identity
        mixed.ln.weight.uniform_(0.5, 1.5)
        mixed.ln.bias.uniform_(-0.3, 0.3)
    example = torch.randn(MIXED_SHAPE)
    built = {
        "fp32": _convert(ct, mixed, example, tmp / "fp32.mlpackage", MIXED_OUTPUTS),
        "fp16": _convert(
            ct, mixed, example, tmp / "fp16.mlpackage", MIXED_OUTPUTS, precision=ct.precision.FLOAT16
        ),
        # iOS16 takes an fp16 input and gives fp16 outputs: no casts at the edges
        "fp16_io": _convert(
            ct,
            _FirstOutput(mixed),
            example,
            tmp / "fp16_io.mlpackage",
            MIXED_OUTPUTS[:1],
            input_type=ct.TensorType(name="x", shape=MIXED_SHAPE, dtype=np.float16),
            output_kw={"dtype": np.float16},
            precision=ct.precision.FLOAT16,
            target=ct.target.iOS16,
        ),
    }

    from conv2d_bundle.models.conv2d_fsq import Conv2dFSQ

    fsq = Conv2dFSQ()
    with torch.no_grad():  # batch norms with statistics, as after training
        for m in fsq.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    names = ("behavioral_codes", "confidence")
    window = torch.randn(2, 9, 2, 100)
    flexible = ct.TensorType(name="imu_input", shape=(ct.RangeDim(1, 64, default=1), 9, 2, 100))
    built["fsq"] = _convert(ct, fsq, window, tmp / "fsq.mlpackage", names, input_type=flexible)
    fixed = ct.TensorType(name="imu_input", shape=(1, 9, 2, 100))  # reshapes carry a literal batch of 1
    built["fsq_fixed"] = _convert(ct, fsq, window[:1], tmp / "fsq_fixed.mlpackage", names, input_type=fixed)
    return built


class _FirstOutput(nn.Module):
    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Any) -> Any:
        return self.inner(x)[:1]


def _mixed_input(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(MIXED_SHAPE).astype(np.float32)


def _op_types(program: mil.Program) -> set[str]:
    return {op.type for op in program.operations}


# ------------------------------------------------------------------------------------------------ fp32


def test_fp32_program_matches_torch(programs: dict[str, Converted]) -> None:
    conv = programs["fp32"]
    program = mil.load_program(conv.path)
    assert program.unsupported_ops() == []
    # the graph really exercises what it is meant to (the converter picks the MIL ops)
    wanted = {
        "conv", "relu", "thresholded_relu", "sigmoid_hard", "mul", "pad", "clip", "max_pool", "avg_pool",
        "concat", "reduce_mean", "reshape", "layer_norm", "gelu", "add", "sub", "sigmoid", "tanh", "silu",
        "real_div", "transpose", "softmax", "linear", "matmul", "reduce_argmax", "reduce_sum", "reduce_max",
        "round", "cast", "abs",
    }  # fmt: skip
    assert wanted <= _op_types(program)
    x = _mixed_input()
    got, want = program.run({"x": x}), _torch(conv, x)
    assert list(got) == list(MIXED_OUTPUTS)
    for name in MIXED_OUTPUTS:
        if np.issubdtype(want[name].dtype, np.integer):
            assert got[name].dtype == np.int32  # Core ML has no int64
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        else:
            assert got[name].dtype == np.float32
            np.testing.assert_allclose(got[name], want[name], **FP32_TOL, err_msg=name)


def test_gelu_sigmoid_approximation_and_rounding_semantics(ct: Any, tmp_path: Path) -> None:
    """What torch cannot express (gelu SIGMOID_APPROXIMATION), and the choices the module doc names:
    round half to even, float -> int32 cast toward zero, same_lower padding."""
    from coremltools.converters.mil import Builder as mb

    @mb.program(
        input_specs=[mb.TensorSpec(shape=(8,)), mb.TensorSpec(shape=(1, 1, 6))], opset_version=ct.target.iOS16
    )
    def prog(x: Any, s: Any) -> Any:
        return (
            mb.gelu(x=x, mode="SIGMOID_APPROXIMATION", name="gelu_sig"),
            mb.round(x=x, name="rounded"),
            mb.cast(x=x, dtype="int32", name="truncated"),
            mb.avg_pool(
                x=s, kernel_sizes=[2], strides=[1], pad_type="same_lower", name="pooled",
                exclude_padding_from_average=True,
            ),
            mb.conv(x=s, weight=np.array([[[1.0, 10.0]]], np.float32), pad_type="same", name="conved"),
            mb.conv(
                x=s, weight=np.array([[[1.0, 10.0]]], np.float32), pad_type="custom", pad=[2, 1],
                name="conved_custom",
            ),
        )  # fmt: skip

    program = _from_mb(ct, prog, tmp_path / "sem.mlpackage", ct.target.iOS16)
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.7, 2.7], np.float32)
    s = np.arange(1, 7, dtype=np.float32).reshape(1, 1, 6)
    got = program.run({"x": x, "s": s})
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(got["gelu_sig"], x64 / (1 + np.exp(-1.702 * x64)), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got["rounded"], [-2, -2, -0.0, 0, 2, 2, -2, 3])
    np.testing.assert_array_equal(got["truncated"], [-2, -1, 0, 0, 1, 2, -1, 2])
    assert got["truncated"].dtype == np.int32
    # same_lower: the odd pixel of padding goes before -> first window is [pad, 1]: average of 1 alone
    np.testing.assert_allclose(got["pooled"][0, 0], [1, 1.5, 2.5, 3.5, 4.5, 5.5])
    # same: the odd pixel goes after -> x[i]*1 + x[i+1]*10, the last one against a 0
    np.testing.assert_allclose(got["conved"][0, 0], [21, 32, 43, 54, 65, 6])
    # custom: (before, after) = (2, 1)
    np.testing.assert_allclose(got["conved_custom"][0, 0], [0, 10, 21, 32, 43, 54, 65, 6])


# ------------------------------------------------------------------- ops the torch programs above never reach
# Tiny programs built with coremltools' MIL builder, one converter run each; every expectation is the op's
# formula from its MIL definition (coremltools/converters/mil/mil/ops/defs/iOS15), in float64, or torch's op.


def _from_mb(ct: Any, prog: Any, path: Path, target: Any = None) -> mil.Program:
    """Convert a MIL builder program (fp32), save it and load it back with the interpreter."""
    model = _quiet(
        lambda: ct.convert(
            prog,
            convert_to="mlprogram",
            minimum_deployment_target=target or ct.target.iOS15,
            compute_precision=ct.precision.FLOAT32,
        )
    )
    model.save(str(path))
    program = mil.load_program(path)
    assert program.unsupported_ops() == []
    return program


def _assert_ops(program: mil.Program, wanted: dict[str, str]) -> None:
    """Each op named in ``wanted`` is in the saved program with that type: the converter neither folded,
    fused nor rewrote it."""
    made: dict[str, set[str]] = {}  # op types by op name and by output name (passes may rename an op)
    for op in program.operations:
        for key in (op.name, *(spec.name for spec in op.outputs)):
            made.setdefault(key, set()).add(op.type)
    missing = {name: op for name, op in wanted.items() if op not in made.get(name, set())}
    assert not missing, missing


def _erf64(v: np.ndarray) -> np.ndarray:
    return np.array([math.erf(e) for e in v.reshape(-1)]).reshape(v.shape)


#: name, MIL op, input (x: any real, u: inside (-1, 1), p: not negative), attributes, the MIL doc's formula
_UNARY: list[tuple[str, str, str, dict[str, float], Callable[[np.ndarray], np.ndarray]]] = [
    ("log_eps", "log", "p", {"epsilon": 0.5}, lambda v: np.log(v + 0.5)),
    # the default epsilon, 1e-45 in the input's dtype (the converter writes it): log(0) is finite
    ("log", "log", "p", {}, lambda v: np.log(v + float(np.float32(1e-45)))),
    ("rsqrt", "rsqrt", "p", {"epsilon": 0.25}, lambda v: 1 / np.sqrt(v + 0.25)),
    ("inverse", "inverse", "p", {"epsilon": 0.5}, lambda v: 1 / (v + 0.5)),
    ("sqrt", "sqrt", "p", {}, np.sqrt),
    ("acos", "acos", "u", {}, np.arccos),
    ("asin", "asin", "u", {}, np.arcsin),
    ("atanh", "atanh", "u", {}, np.arctanh),
    ("atan", "atan", "x", {}, np.arctan),
    ("sin", "sin", "x", {}, np.sin),
    ("cos", "cos", "x", {}, np.cos),
    ("tan", "tan", "x", {}, np.tan),
    ("sinh", "sinh", "x", {}, np.sinh),
    ("cosh", "cosh", "x", {}, np.cosh),
    ("exp", "exp", "x", {}, np.exp),
    ("exp2", "exp2", "x", {}, lambda v: 2.0**v),
    ("erf", "erf", "x", {}, _erf64),
    ("ceil", "ceil", "x", {}, np.ceil),
    ("floor", "floor", "x", {}, np.floor),
    ("sign", "sign", "x", {}, lambda v: (v > 0).astype(float) - (v < 0)),
    ("square", "square", "x", {}, lambda v: v * v),
    ("threshold", "threshold", "x", {"alpha": 0.3}, lambda v: np.where(v < 0.3, 0.3, v)),
    ("clip", "clip", "x", {"alpha": -0.5, "beta": 1.5},
     lambda v: np.where(v < -0.5, -0.5, np.where(v > 1.5, 1.5, v))),
    ("relu6", "relu6", "x", {}, lambda v: np.where(v < 0, 0, np.where(v > 6, 6, v))),
    ("leaky_relu", "leaky_relu", "x", {"alpha": 0.1}, lambda v: np.where(v >= 0, v, 0.1 * v)),
    ("elu", "elu", "x", {"alpha": 0.7}, lambda v: np.where(v > 0, v, 0.7 * (np.exp(v) - 1))),
    # a negative alpha: alpha * x of a negative x reaches beta
    ("clamped_relu", "clamped_relu", "x", {"alpha": -0.5, "beta": 3.0},
     lambda v: np.where(v >= 0, np.minimum(3.0, v), np.minimum(3.0, -0.5 * v))),
    ("linear_activation", "linear_activation", "x", {"alpha": -0.5, "beta": 0.25}, lambda v: -0.5 * v + 0.25),
    ("scaled_tanh", "scaled_tanh", "x", {"alpha": 1.5, "beta": 0.5}, lambda v: 1.5 * np.tanh(0.5 * v)),
    ("sigmoid_hard", "sigmoid_hard", "x", {"alpha": 0.3, "beta": 0.4},
     lambda v: np.where(0.3 * v + 0.4 < 0, 0, np.where(0.3 * v + 0.4 > 1, 1, 0.3 * v + 0.4))),
    ("thresholded_relu", "thresholded_relu", "x", {"alpha": 0.5}, lambda v: np.where(v >= 0.5, v, 0)),
    ("softplus", "softplus", "x", {}, lambda v: np.log(1 + np.exp(v))),
    ("softsign", "softsign", "x", {}, lambda v: v / (1 + np.abs(v))),
]  # fmt: skip


def test_unary_ops_and_activations_follow_their_mil_definitions(ct: Any, tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    # below and above every clamp and threshold of _UNARY, both signs, 0, and a value on alpha (0.5)
    x = np.array([-7, -3, -1.5, -0.6, -0.25, 0, 0.25, 0.5, 1, 2.5, 4, 6.5], np.float32)
    u = np.array([-0.9, -0.5, -0.1, 0, 0.3, 0.8], np.float32)
    p = np.array([0, 0.01, 0.5, 1, 2, 9], np.float32)
    shapes = [mb.TensorSpec(shape=v.shape) for v in (x, u, p)]

    @mb.program(input_specs=shapes, opset_version=ct.target.iOS15)
    def prog(x: Any, u: Any, p: Any) -> Any:
        sources = {"x": x, "u": u, "p": p}
        return tuple(getattr(mb, op)(x=sources[src], name=name, **kw) for name, op, src, kw, _ in _UNARY)

    program = _from_mb(ct, prog, tmp_path / "unary.mlpackage")
    _assert_ops(program, {name: op for name, op, *_ in _UNARY})
    got = program.run({"x": x, "u": u, "p": p})
    values = {"x": x.astype(np.float64), "u": u.astype(np.float64), "p": p.astype(np.float64)}
    for name, _op, src, _kw, formula in _UNARY:
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], formula(values[src]), **FP32_TOL, err_msg=name)


def test_binary_comparison_logical_and_select_ops_broadcast(ct: Any, tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    a = np.array([[1.5, -2, 3], [4, -5, 0.5]], np.float32)
    b = np.array([1.5, 3, -2], np.float32)  # along rows; a[0, 0] == b[0]
    c = np.array([[0.5], [2]], np.float32)  # along columns

    @mb.program(input_specs=[mb.TensorSpec(shape=v.shape) for v in (a, b, c)], opset_version=ct.target.iOS15)
    def prog(a: Any, b: Any, c: Any) -> Any:
        gt, ge = mb.greater(x=a, y=b, name="gt"), mb.greater_equal(x=a, y=b, name="ge")
        lt, le = mb.less(x=a, y=b, name="lt"), mb.less_equal(x=a, y=b, name="le")
        eq, ne = mb.equal(x=a, y=b, name="eq"), mb.not_equal(x=a, y=b, name="ne")
        return (
            mb.floor_div(x=a, y=b, name="floor_div"),
            mb.mod(x=a, y=b, name="mod"),
            mb.pow(x=c, y=b, name="pow"),
            mb.maximum(x=a, y=c, name="maximum"),
            mb.minimum(x=a, y=b, name="minimum"),
            gt, ge, lt, le, eq, ne,
            mb.logical_and(x=ge, y=ne, name="and"),
            mb.logical_or(x=lt, y=eq, name="or"),
            mb.logical_xor(x=gt, y=ge, name="xor"),
            mb.logical_not(x=gt, name="not"),
            mb.select(cond=ge, a=a, b=c, name="select"),
        )  # fmt: skip

    program = _from_mb(ct, prog, tmp_path / "binary.mlpackage")
    ops = {
        "floor_div": "floor_div", "mod": "mod", "pow": "pow", "maximum": "maximum", "minimum": "minimum",
        "gt": "greater", "ge": "greater_equal", "lt": "less", "le": "less_equal", "eq": "equal",
        "ne": "not_equal", "and": "logical_and", "or": "logical_or", "xor": "logical_xor",
        "not": "logical_not", "select": "select",
    }  # fmt: skip
    _assert_ops(program, ops)
    got = program.run({"a": a, "b": b, "c": c})
    a64, b64, c64 = (v.astype(np.float64) for v in (a, b, c))
    floor = np.floor(a64 / b64)
    want = {
        "floor_div": floor,  # toward -inf: -2 // 3 is -1
        "mod": a64 - floor * b64,  # Python's %: the sign of the divisor
        "pow": c64**b64,
        "maximum": np.where(a64 > c64, a64, c64),
        "minimum": np.where(a64 < b64, a64, b64),
        "gt": a64 > b64, "ge": a64 >= b64, "lt": a64 < b64, "le": a64 <= b64, "eq": a64 == b64,
        "ne": a64 != b64,
        "and": (a64 >= b64) & (a64 != b64),
        "or": (a64 < b64) | (a64 == b64),
        "xor": (a64 > b64) != (a64 >= b64),
        "not": ~(a64 > b64),
        "select": np.where(a64 >= b64, a64, np.broadcast_to(c64, a.shape)),
    }  # fmt: skip
    assert set(got) == set(want)
    for name, value in want.items():
        # bool outputs: the converter casts them to fp32 (Core ML has no bool outputs)
        np.testing.assert_allclose(got[name], value.astype(np.float64), **FP32_TOL, err_msg=name)


def test_normalizations_and_prelu_per_channel(ct: Any, tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(3)
    scale = np.array([0.05, 1.0, 3.0], np.float32)  # a channel of variance ~ epsilon: epsilon shows
    x4 = (rng.standard_normal((2, 3, 4, 5)) * scale[:, None, None] + [[[0.5]], [[-1]], [[2]]]).astype(
        np.float32
    )
    x3 = (rng.standard_normal((2, 3, 6)) * scale[:, None]).astype(np.float32)
    mean, var = np.array([0.2, -0.5, 1.0], np.float32), np.array([0.002, 0.5, 2.0], np.float32)
    gamma, beta = np.array([1.5, -0.5, 2.0], np.float32), np.array([0.1, 0.2, -0.3], np.float32)
    alpha = np.array([0.1, -0.5, 2.0], np.float32)
    ln_gamma = rng.uniform(0.5, 1.5, (3, 5)).astype(np.float32)
    ln_beta = rng.uniform(-0.3, 0.3, (3, 5)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=x4.shape), mb.TensorSpec(shape=x3.shape)],
                opset_version=ct.target.iOS15)  # fmt: skip
    def prog(x4: Any, x3: Any) -> Any:
        return (
            mb.batch_norm(x=x4, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=1e-2, name="bn4"),
            mb.batch_norm(x=x3, mean=mean, variance=var, name="bn3"),
            mb.instance_norm(x=x4, gamma=gamma, beta=beta, epsilon=1e-2, name="in4"),
            mb.instance_norm(x=x3, name="in3"),
            mb.prelu(x=x4, alpha=alpha, name="prelu"),
            mb.layer_norm(x=x4, axes=[1, -1], gamma=ln_gamma, beta=ln_beta, epsilon=1e-2, name="ln"),
        )

    program = _from_mb(ct, prog, tmp_path / "norm.mlpackage")
    _assert_ops(
        program,
        {"bn4": "batch_norm", "bn3": "batch_norm", "in4": "instance_norm", "in3": "instance_norm",
         "prelu": "prelu", "ln": "layer_norm"},
    )  # fmt: skip
    got = program.run({"x4": x4, "x3": x3})
    t4, t3 = torch.from_numpy(x4), torch.from_numpy(x3)
    m, v, g, b = (torch.from_numpy(t) for t in (mean, var, gamma, beta))
    x64 = x4.astype(np.float64)
    ln_mean = x64.mean(axis=(1, 3), keepdims=True)
    ln_var = ((x64 - ln_mean) ** 2).mean(axis=(1, 3), keepdims=True)
    want = {
        "bn4": F.batch_norm(t4, m, v, g, b, training=False, eps=1e-2),
        "bn3": F.batch_norm(t3, m, v, training=False, eps=1e-5),  # MIL's default epsilon, written
        "in4": F.instance_norm(t4, weight=g, bias=b, eps=1e-2),
        "in3": F.instance_norm(t3, eps=1e-5),
        "prelu": F.prelu(t4, torch.from_numpy(alpha)),
        "ln": (x64 - ln_mean) / np.sqrt(ln_var + 1e-2) * ln_gamma[None, :, None, :]
        + ln_beta[None, :, None, :],
    }
    for name, value in want.items():
        expected = value if isinstance(value, np.ndarray) else value.numpy()
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=2e-5, err_msg=name)


def test_reductions_over_axes(ct: Any, tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(4)
    r = rng.standard_normal((2, 3, 4)).astype(np.float32)
    q = rng.uniform(0.5, 2.0, (2, 3, 4)).astype(np.float32)
    big = (r * 20 + 100).astype(np.float32)  # exp overflows fp32 here: log-sum-exp must subtract the max

    @mb.program(input_specs=[mb.TensorSpec(shape=r.shape) for _ in range(3)], opset_version=ct.target.iOS15)
    def prog(r: Any, q: Any, big: Any) -> Any:
        return (
            mb.reduce_min(x=r, axes=[1], name="min_1"),
            mb.reduce_min(x=r, keep_dims=True, name="min_all"),
            mb.reduce_prod(x=q, axes=[-1], name="prod_last"),
            mb.reduce_prod(x=q, axes=[0, 2], keep_dims=True, name="prod_02"),
            mb.reduce_l2_norm(x=r, axes=[0], name="l2_0"),
            mb.reduce_l1_norm(x=r, axes=[1, 2], name="l1_12"),
            mb.reduce_sum_square(x=r, axes=[2], keep_dims=True, name="sum_square_2"),
            mb.reduce_log_sum_exp(x=big, axes=[1], name="lse_1"),
            mb.reduce_log_sum_exp(x=big, axes=[0, -1], keep_dims=True, name="lse_02"),
            mb.reduce_argmin(x=r, axis=1, name="argmin_1"),
            mb.reduce_argmin(x=r, axis=-1, keep_dims=True, name="argmin_last"),
            mb.reduce_argmax(x=r, axis=0, name="argmax_0"),
            mb.reduce_max(x=r, axes=[-2], keep_dims=True, name="max_1"),
            mb.reduce_mean(x=r, axes=[0, 1], name="mean_01"),
        )

    program = _from_mb(ct, prog, tmp_path / "reduce.mlpackage")
    got = program.run({"r": r, "q": q, "big": big})
    r64, q64, big64 = (v.astype(np.float64) for v in (r, q, big))
    want: dict[str, tuple[str, np.ndarray]] = {
        "min_1": ("reduce_min", r64.min(axis=1)),
        "min_all": ("reduce_min", r64.min(keepdims=True)),  # no axes: all of them
        "prod_last": ("reduce_prod", q64.prod(axis=2)),
        "prod_02": ("reduce_prod", q64.prod(axis=(0, 2), keepdims=True)),
        "l2_0": ("reduce_l2_norm", np.sqrt((r64 * r64).sum(axis=0))),
        "l1_12": ("reduce_l1_norm", np.abs(r64).sum(axis=(1, 2))),
        "sum_square_2": ("reduce_sum_square", (r64 * r64).sum(axis=2, keepdims=True)),
        "lse_1": ("reduce_log_sum_exp", np.log(np.exp(big64).sum(axis=1))),
        "lse_02": ("reduce_log_sum_exp", np.log(np.exp(big64).sum(axis=(0, 2), keepdims=True))),
        "argmin_1": ("reduce_argmin", r64.argmin(axis=1)),
        "argmin_last": ("reduce_argmin", r64.argmin(axis=2)[..., None]),
        "argmax_0": ("reduce_argmax", r64.argmax(axis=0)),
        "max_1": ("reduce_max", r64.max(axis=1, keepdims=True)),
        "mean_01": ("reduce_mean", r64.mean(axis=(0, 1))),
    }
    _assert_ops(program, {name: op for name, (op, _) in want.items()})
    for name, (_op, value) in want.items():
        assert got[name].shape == value.shape, name
        if name.startswith("arg"):
            assert got[name].dtype == np.int32
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        else:
            np.testing.assert_allclose(got[name], value, **FP32_TOL, err_msg=name)


def test_slicing_and_shape_ops(ct: Any, tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    t = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5
    w = np.arange(8, dtype=np.float32).reshape(2, 1, 4) + 100
    s = np.array([1.0, 2, 3, 4, 5, 6], np.float32).reshape(1, 3, 1, 2)
    m = np.arange(12, dtype=np.float32).reshape(2, 3, 2) / 4

    @mb.program(
        input_specs=[mb.TensorSpec(shape=v.shape) for v in (t, w, s, m)], opset_version=ct.target.iOS15
    )
    def prog(t: Any, w: Any, s: Any, m: Any) -> Any:
        neg = mb.mul(x=t, y=-1.0, name="neg")
        return (
            # begin_mask ignores begin 1; end_mask ignores ends 0 (to the front for the negative stride,
            # as value_inference slices with None)
            mb.slice_by_index(
                x=t, begin=[1, 1, 3], end=[0, 3, 0], stride=[1, 2, -1], begin_mask=[False, True, False],
                end_mask=[True, False, True], name="sbi_masks",
            ),
            mb.slice_by_index(x=t, begin=[0, -2, 1], end=[2, 3, -1], name="sbi_negative"),
            mb.slice_by_index(
                x=t, begin=[1, 0, -1], end=[2, 3, 0], squeeze_mask=[True, False, True], name="sbi_squeeze"
            ),
            # squeezed at begin[i], which begin_mask makes 0 (as coremltools' value_inference)
            mb.slice_by_index(
                x=t, begin=[1, 2, 0], end=[2, 3, 4], begin_mask=[False, True, False],
                squeeze_mask=[False, True, False], name="sbi_squeeze_masked",
            ),
            mb.slice_by_size(x=t, begin=[1, 0, -3], size=[1, -1, 2], name="sbs"),
            mb.squeeze(x=s, axes=[-2, 1], name="squeeze_axes"),  # axis 1 (of 3) stays
            mb.squeeze(x=s, name="squeeze_all"),
            mb.expand_dims(x=t, axes=[1, -2], name="expand"),  # -2 of the rank-5 result
            mb.expand_dims(x=t, axes=[-1], name="expand_last"),
            mb.concat(values=[t, w], axis=-2, name="concat"),
            mb.concat(values=[t, neg], axis=0, interleave=True, name="interleave"),
            mb.transpose(x=t, perm=[2, 0, 1], name="transpose"),
            mb.stack(values=[t, neg], axis=-1, name="stack"),
            *mb.split(x=t, axis=1, num_splits=3, name="thirds"),
            *mb.split(x=t, axis=-1, split_sizes=[1, 2, 1], name="parts"),
            mb.tile(x=t, reps=[2, 1, 3], name="tile"),
            mb.gather(x=t, indices=np.array([2, -1, 0], np.int32), axis=1, name="gather"),
            mb.flatten2d(x=t, axis=2, name="flatten"),
            mb.flatten2d(x=t, axis=-1, name="flatten_last"),
            mb.matmul(x=m, y=m, transpose_x=True, name="matmul_tx"),
            mb.matmul(x=m, y=m, transpose_y=True, name="matmul_ty"),
            mb.matmul(x=m, y=mb.reshape(x=w, shape=[4, 2]), transpose_y=True, name="matmul_ty2d"),
        )  # fmt: skip

    program = _from_mb(ct, prog, tmp_path / "shape.mlpackage")
    got = program.run({"t": t, "w": w, "s": s, "m": m})
    want: dict[str, tuple[str, np.ndarray]] = {
        "sbi_masks": ("slice_by_index", t[1:, 0:3:2, 3::-1]),
        "sbi_negative": ("slice_by_index", t[0:2, 1:3, 1:3]),
        "sbi_squeeze": ("slice_by_index", t[1, :, 3]),
        "sbi_squeeze_masked": ("slice_by_index", t[1:2, 0, :]),
        "sbs": ("slice_by_size", t[1:2, :, 1:3]),
        "squeeze_axes": ("squeeze", s.reshape(1, 3, 2)),
        "squeeze_all": ("squeeze", s.reshape(3, 2)),
        "expand": ("expand_dims", t.reshape(2, 1, 3, 1, 4)),
        "expand_last": ("expand_dims", t.reshape(2, 3, 4, 1)),
        "concat": ("concat", np.concatenate([t, w], axis=1)),
        "interleave": ("concat", np.array([t[0], -t[0], t[1], -t[1]])),
        "transpose": ("transpose", np.einsum("abc->cab", t)),
        "stack": ("stack", np.stack([t, -t], axis=3)),
        "thirds_0": ("split", t[:, :1]),
        "thirds_1": ("split", t[:, 1:2]),
        "thirds_2": ("split", t[:, 2:]),
        "parts_0": ("split", t[..., :1]),
        "parts_1": ("split", t[..., 1:3]),
        "parts_2": ("split", t[..., 3:]),
        "tile": ("tile", np.concatenate([np.concatenate([t] * 3, axis=2)] * 2, axis=0)),
        "gather": ("gather", t[:, [2, 2, 0]]),
        "flatten": ("flatten2d", t.reshape(6, 4)),
        "flatten_last": ("flatten2d", t.reshape(6, 4)),
        "matmul_tx": ("matmul", np.einsum("bki,bkj->bij", m, m)),
        "matmul_ty": ("matmul", np.einsum("bik,bjk->bij", m, m)),
        "matmul_ty2d": ("matmul", np.einsum("bik,jk->bij", m, w.reshape(4, 2))),  # a rank-2 y
    }
    split = ("thirds", "parts")  # outputs <op name>_0, _1, _2
    _assert_ops(
        program, {name[:-2] if name.startswith(split) else name: op for name, (op, _) in want.items()}
    )
    assert set(got) == set(want)
    for name, (_op, value) in want.items():
        assert got[name].shape == value.shape, name
        np.testing.assert_allclose(got[name], value, **FP32_TOL, err_msg=name)


def test_shape_fill_and_range_of_a_flexible_input(ct: Any, tmp_path: Path) -> None:
    """Ops the converter folds away for a fixed shape: here they run on the shape of the input."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import get_new_symbol

    @mb.program(input_specs=[mb.TensorSpec(shape=(get_new_symbol(), 2))], opset_version=ct.target.iOS15)
    def prog(d: Any) -> Any:
        shape = mb.shape(x=d, name="shape")
        rows = mb.cast(x=mb.gather(x=shape, indices=0, axis=0, name="rows"), dtype="fp32")
        return (
            shape,
            mb.fill(shape=shape, value=2.5, name="fill"),
            mb.range_1d(start=0.5, end=rows, step=1.5, name="range"),
            mb.identity(x=d, name="same"),
        )

    program = _from_mb(ct, prog, tmp_path / "dynamic.mlpackage")
    _assert_ops(
        program, {"shape": "shape", "rows": "gather", "fill": "fill", "range": "range_1d", "same": "identity"}
    )
    for n in (7, 3):
        d = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
        got = program.run({"d": d})
        assert got["shape"].dtype == np.int32
        np.testing.assert_array_equal(got["shape"], [n, 2])
        np.testing.assert_array_equal(got["fill"], np.full((n, 2), 2.5))
        np.testing.assert_allclose(got["range"], [v for v in (0.5, 2.0, 3.5, 5.0, 6.5) if v < n])
        np.testing.assert_array_equal(got["same"], d)


def _run_op(op_type: str, **inputs: Any) -> np.ndarray:
    """One op on literal inputs (a tuple: several arguments, as concat's ``values``), in a program made by
    hand: an optional input left out takes the interpreter's default."""
    args = {
        key: tuple(np.asarray(v) for v in value) if isinstance(value, tuple) else (np.asarray(value),)
        for key, value in inputs.items()
    }
    out = mil.TensorSpec("y", None, None)  # no declared dtype or shape: the op's own result
    program = mil.Program(
        inputs=(), outputs=("y",), operations=(mil.Operation(op_type, op_type, args, (out,)),), constants={}
    )
    return program.run({})["y"]


def test_optional_inputs_left_out_take_their_mil_defaults() -> None:
    """coremltools writes every default it has a value for, but the MIL spec makes these inputs optional:
    a program may leave them out. Defaults from the iOS15 op definitions (``default_inputs``, docstrings)."""
    f32 = np.float32
    zero = np.zeros(2, f32)
    # epsilons: log 1e-45 (in the input's dtype), rsqrt 1e-12, inverse 1e-4
    np.testing.assert_allclose(_run_op("log", x=zero), np.log(np.float64(f32(1e-45))), rtol=1e-6)
    np.testing.assert_allclose(_run_op("rsqrt", x=zero), 1e6, rtol=1e-5)
    np.testing.assert_allclose(_run_op("inverse", x=zero), 1e4, rtol=1e-5)
    # batch/instance/layer norm: epsilon 1e-5, no gamma or beta; layer_norm over all axes
    x = np.array([[[0.0, 0.004]], [[1.0, 1.0]]], f32).reshape(1, 2, 2)  # variance 4e-6 ~ epsilon
    c = np.array([[[-0.002, 0.002]], [[0.0, 0.0]]]).reshape(1, 2, 2)
    np.testing.assert_allclose(
        _run_op("batch_norm", x=x, mean=np.array([0.002, 1.0], f32), variance=np.array([4e-6, 0.0], f32)),
        c / np.sqrt(np.array([4e-6, 0.0]).reshape(1, 2, 1) + 1e-5), rtol=1e-4,
    )  # fmt: skip
    np.testing.assert_allclose(
        _run_op("instance_norm", x=x), c / np.sqrt(np.array([4e-6, 0.0]).reshape(1, 2, 1) + 1e-5), rtol=1e-4
    )
    flat = x.astype(np.float64)
    np.testing.assert_allclose(
        _run_op("layer_norm", x=x), (flat - flat.mean()) / np.sqrt(flat.var() + 1e-5), rtol=1e-4, atol=1e-5
    )
    t = np.arange(24, dtype=f32).reshape(2, 3, 4) - 11.5
    # reductions: all axes, keep_dims False -> a scalar; arg reductions: axis -1, keep_dims False
    assert _run_op("reduce_max", x=t).shape == ()
    np.testing.assert_allclose(_run_op("reduce_log_sum_exp", x=t), np.log(np.exp(t.astype(np.float64)).sum()))
    np.testing.assert_array_equal(_run_op("reduce_argmin", x=-t), np.full((2, 3), 3))
    np.testing.assert_array_equal(_run_op("reduce_argmax", x=t), np.full((2, 3), 3))
    # softmax over the last axis; gelu EXACT
    e = np.exp(t - t.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(_run_op("softmax", x=t), e / e.sum(axis=-1, keepdims=True), rtol=1e-6)
    g = t.astype(np.float64)
    np.testing.assert_allclose(_run_op("gelu", x=t), 0.5 * g * (1 + _erf64(g / math.sqrt(2))), **FP32_TOL)
    # slice_by_index: stride 1, no masks; squeeze: every axis of size 1
    np.testing.assert_array_equal(
        _run_op("slice_by_index", x=t, begin=[1, 0, 1], end=[2, 2, 3]), t[1:2, 0:2, 1:3]
    )
    np.testing.assert_array_equal(_run_op("squeeze", x=t.reshape(1, 2, 1, 12)), t.reshape(2, 12))
    # concat without interleave; gather on axis 0; flatten2d at axis 1; pad constant 0; fill with 0
    np.testing.assert_array_equal(_run_op("concat", values=(t, t), axis=1), np.concatenate([t, t], axis=1))
    np.testing.assert_array_equal(_run_op("gather", x=t, indices=np.array([1, 0], np.int32)), t[[1, 0]])
    np.testing.assert_array_equal(_run_op("flatten2d", x=t), t.reshape(2, 12))
    np.testing.assert_array_equal(_run_op("pad", x=t, pad=[1, 0]), np.pad(t, [(0, 0), (0, 0), (1, 0)]))
    np.testing.assert_array_equal(_run_op("fill", shape=[2, 1]), np.zeros((2, 1)))
    # matmul without transposes
    np.testing.assert_array_equal(_run_op("matmul", x=t, y=t.transpose(0, 2, 1)), t @ t.transpose(0, 2, 1))


def test_reshape_zero_copies_the_dimension_counted_from_the_right() -> None:
    """The iOS 17 rule (the MIL doc's example): ``shape[i] == 0`` takes ``x.shape[j]`` where
    ``len(shape) - i == rank(x) - j``, and 1 where there is no such ``j``."""
    x = np.arange(100, dtype=np.float32).reshape(2, 50)
    assert _run_op("reshape", x=x, shape=[1, 0, -1, 0]).shape == (1, 1, 2, 50)
    t = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    got = _run_op("reshape", x=t, shape=[0, -1])
    np.testing.assert_array_equal(got, t.reshape(3, 8))
    assert _run_op("reshape", x=t, shape=[0, 0, 0]).shape == (2, 3, 4)  # iOS 15: the same place


# ------------------------------------------------------------------------------------------------ fp16


def test_fp16_program_computes_in_fp16_within_a_bound(programs: dict[str, Converted]) -> None:
    conv = programs["fp16"]
    program = mil.load_program(conv.path)
    assert program.unsupported_ops() == []
    assert program.inputs[0].dtype == np.float32  # the converter casts the input to fp16 inside
    assert any(o.dtype == np.float16 for op in program.operations for o in op.outputs)
    x = _mixed_input()
    got, want = program.run({"x": x}), _torch(conv, x)
    fp32 = mil.load_program(programs["fp32"].path).run({"x": x})
    for name in ("gram", "peak"):
        assert got[name].dtype == np.float32  # cast back at the output
        # the last op ran in fp16: every value is an fp16 value
        np.testing.assert_array_equal(got[name].astype(np.float16).astype(np.float32), got[name])
        diff = np.abs(got[name].astype(np.float64) - want[name]).max()
        assert FP32_NOISE < diff < FP16_BOUND, (name, diff)
        assert np.abs(fp32[name].astype(np.float64) - want[name]).max() < FP32_NOISE


def test_fp16_inputs_and_outputs_are_cast_to_the_declared_dtypes(programs: dict[str, Converted]) -> None:
    conv = programs["fp16_io"]
    program = mil.load_program(conv.path)
    assert program.inputs[0].dtype == np.float16
    x = _mixed_input().astype(np.float64)  # cast to fp16 by run()
    got = program.run({"x": x})["gram"]
    assert got.dtype == np.float16
    want = _torch(conv, x.astype(np.float16))["gram"]
    diff = np.abs(got.astype(np.float64) - want).max()
    assert FP32_NOISE < diff < FP16_BOUND, diff


# ------------------------------------------------------------------------------------ reference model


def _fsq_case(
    programs: dict[str, Converted], rows: int
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Windows, torch's outputs, and which rows are clear of an FSQ rounding boundary (|frac - .5| > 1e-3)."""
    x = np.random.default_rng(7).standard_normal((rows, 9, 2, 100)).astype(np.float32)
    module = programs["fsq"].module
    want = _torch(programs["fsq"], x)
    with torch.no_grad():
        latent = module.rounding_latent(torch.from_numpy(x)).numpy()
    clear = (np.abs(np.abs(latent - np.floor(latent)) - 0.5) > 1e-3).all(axis=1)
    return x, want, clear


def test_reference_model_matches_torch_with_a_flexible_batch(programs: dict[str, Converted]) -> None:
    program = mil.load_program(programs["fsq"].path)
    assert program.inputs[0].shape == (None, 9, 2, 100)
    x, want, clear = _fsq_case(programs, 16)
    assert clear.sum() >= 12
    got = program.run({"imu_input": x})
    assert got["behavioral_codes"].dtype == np.int32 and got["behavioral_codes"].shape == (16,)
    np.testing.assert_array_equal(got["behavioral_codes"][clear], want["behavioral_codes"][clear])
    np.testing.assert_allclose(got["confidence"], want["confidence"], **FP32_TOL)


def test_a_fixed_batch_of_one_runs_row_by_row(programs: dict[str, Converted]) -> None:
    program = mil.load_program(programs["fsq_fixed"].path)
    assert program.inputs[0].shape == (1, 9, 2, 100)
    literal = [op for op in program.operations if op.type == "reshape"]
    assert literal and all(program.constants[str(op.inputs["shape"][0])][0] == 1 for op in literal)
    x, _want, _clear = _fsq_case(programs, 5)
    flexible = mil.load_program(programs["fsq"].path).run({"imu_input": x})
    got = program.run({"imu_input": x})
    assert got["confidence"].shape == (5, 4)
    np.testing.assert_array_equal(got["behavioral_codes"], flexible["behavioral_codes"])
    np.testing.assert_allclose(got["confidence"], flexible["confidence"], rtol=1e-6, atol=1e-6)
    with pytest.raises(BundleIntegrityError, match="declares"):
        program.run({"imu_input": x[:, :, :1]})


# ----------------------------------------------------------------------------------- unsupported ops


def _read_spec(package: Path) -> Any:
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString((package / "Data" / "com.apple.CoreML" / "model.mlmodel").read_bytes())
    return spec


def test_an_unknown_op_is_named_up_front_and_refused(programs: dict[str, Converted]) -> None:
    package = programs["fp32"].path
    spec = _read_spec(package)
    main = spec.mlProgram.functions["main"]
    block = main.block_specializations[main.opset]
    next(op for op in block.operations if op.type == "relu").type = "frobnicate"
    program = mil.program_from_spec(spec, package / "Data" / "com.apple.CoreML")
    assert program.unsupported_ops() == ["frobnicate"]
    with pytest.raises(mil.UnsupportedOpError) as caught:
        program.run({"x": _mixed_input()})
    assert caught.value.op == "frobnicate" and str(caught.value) == "op frobnicate"
    assert isinstance(caught.value, BundleError) and not isinstance(caught.value, BundleIntegrityError)


def test_an_op_missing_from_the_dispatch_table_is_unsupported(
    programs: dict[str, Converted], monkeypatch: pytest.MonkeyPatch
) -> None:
    program = mil.load_program(programs["fp32"].path)
    monkeypatch.delitem(mil.OPS, "gelu")
    monkeypatch.delitem(mil.OPS, "avg_pool")
    assert program.unsupported_ops() == ["avg_pool", "gelu"]
    with pytest.raises(mil.UnsupportedOpError, match=r"^op avg_pool$"):
        program.run({"x": _mixed_input()})


# ------------------------------------------------------------------------------------------- weights


def test_weights_come_from_weight_bin(programs: dict[str, Converted], tmp_path: Path) -> None:
    """Perturb one conv weight inside weight.bin: the interpreter follows torch with the same perturbation."""
    original = programs["fp32"].path
    package = tmp_path / "perturbed.mlpackage"
    shutil.copytree(original, package)
    before = _tree_digest(original)
    program = mil.load_program(original)
    assert _tree_digest(original) == before  # reading writes nothing (coremltools' MLModel would)

    spec = _read_spec(package)
    main = spec.mlProgram.functions["main"]
    block = main.block_specializations[main.opset]
    first_conv = next(
        op for op in block.operations if op.type == "conv" and op.inputs["x"].arguments[0].name == "x"
    )
    weight_name = first_conv.inputs["weight"].arguments[0].name
    const = next(op for op in block.operations if op.outputs[0].name == weight_name)
    blob = const.attributes["val"].blobFileValue
    assert blob.fileName == "@model_path/weights/weight.bin"
    weight_bin = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(weight_bin.read_bytes())
    # the blob's 64-byte header: uint32 sentinel, uint32 dtype, uint64 size, uint64 offset of the data
    start = int(np.frombuffer(bytes(data[blob.offset + 16 : blob.offset + 24]), np.uint64)[0])
    first = np.frombuffer(bytes(data[start : start + 4]), np.float32)[0]
    data[start : start + 4] = np.float32(first + 1.0).tobytes()
    weight_bin.write_bytes(bytes(data))

    module = copy.deepcopy(programs["fp32"].module)
    with torch.no_grad():
        module.c1.weight[0, 0, 0, 0] += 1.0
    x = _mixed_input()
    got, was = mil.load_program(package).run({"x": x}), program.run({"x": x})
    want = _torch(programs["fp32"], x, module)
    assert not np.allclose(got["gram"], was["gram"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["gram"], want["gram"], **FP32_TOL)
    np.testing.assert_allclose(got["peak"], want["peak"], **FP32_TOL)


def test_a_missing_weight_file_or_input_is_an_integrity_error(
    programs: dict[str, Converted], tmp_path: Path
) -> None:
    package = tmp_path / "broken.mlpackage"
    shutil.copytree(programs["fp32"].path, package)
    program = mil.load_program(package)
    with pytest.raises(BundleIntegrityError, match="input 'x' is missing"):
        program.run({})
    with pytest.raises(BundleIntegrityError, match="no input 'y'"):
        program.run({"x": _mixed_input(), "y": _mixed_input()})
    (package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").unlink()
    with pytest.raises(BundleIntegrityError, match=r"weight file .* is missing"):
        mil.load_program(package)
    (package / "Manifest.json").unlink()
    with pytest.raises(BundleIntegrityError, match="manifest"):
        mil.load_program(package)


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
