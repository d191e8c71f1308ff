"""The numpy ML Program interpreter (``targets/ios/mil.py``) against torch, on Core ML programs converted here
from small torch modules (fp32 and fp16), the reference architecture, and MIL built by hand."""

from __future__ import annotations

import copy
import hashlib
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
        )  # fmt: skip

    model = _quiet(
        lambda: ct.convert(
            prog,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS16,
            compute_precision=ct.precision.FLOAT32,
        )
    )
    model.save(str(tmp_path / "sem.mlpackage"))
    program = mil.load_program(tmp_path / "sem.mlpackage")
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
