"""A numpy reference interpreter for Core ML ML Programs, for checking an ``.mlpackage`` where ``predict()``
is unavailable (Core ML runs only on macOS).

:func:`load_program` reads the package's ML Program (``model.mlmodel``, parsed with coremltools' protobuf
classes, which are imported inside it) and every weight in ``weights/weight.bin`` into numpy arrays, once.
:meth:`Program.run` executes the function ``main`` op by op with numpy alone: one small function per op,
found in :data:`OPS` by op type. An op without one raises :class:`UnsupportedOpError`;
:meth:`Program.unsupported_ops` lists them all before anything runs.

Semantics follow coremltools 9.0's MIL op definitions (``coremltools/converters/mil/mil/ops/defs/iOS15``
to ``iOS18``: docstrings, defaults and ``value_inference``); where a definition leaves a choice open:

* dtypes: each op's result is cast to the dtype the program declares for that output. An fp16 op reads
  fp16 tensors, computes in fp32 and rounds its result to fp16 once, so every tensor between two ops is fp16
  as on the device, but an op's inner accumulation (conv, matmul, reductions, softmax, layer_norm) is fp32;
  Core ML's GPU and Neural Engine kernels may accumulate differently, so an fp16 result is a reference within
  an fp16 tolerance, not a bit-exact prediction. fp32 ops compute in fp32, int32 ops in int32.
* ``cast`` from a float to an integer dtype truncates toward zero (the MIL ``cast`` infers values with numpy
  ``astype``, which truncates; so does torch's ``.to(int)``); out-of-range values are undefined there and here.
  A cast to ``fp16`` rounds to nearest, ties to even.
* ``round`` rounds half to even (the MIL doc: "``0.5`` is rounded to ``0``"; ``value_inference`` is
  ``np.round``), as ``torch.round`` does.
* ``pad_type="same"`` (conv, pools): total padding as coremltools' ``aggregated_pad``; an odd pixel goes after
  (bottom/right), and before for ``same_lower``: the neuralnetwork backend maps them to ``BOTTOM_RIGHT_HEAVY`` /
  ``TOP_LEFT_HEAVY``, and coremltools' torch tests compare ``nn.Conv2d(padding="same")`` with 2x2 kernels
  (odd pixel after, in torch) against Core ML. The conv docstring's formula puts it before for even kernels.
* pools with ``ceil_mode``: output size as coremltools' ``spatial_dimensions_out_shape``; the part of the
  last window past the padded input is ignored (max) and never counted (avg), as in PyTorch, which the MIL
  doc names. ``avg_pool`` divides by the window's input pixels with ``exclude_padding_from_average``, else
  by the pixels of input and padding.
* ``gelu`` ``EXACT`` takes ``math.erf`` in float64 (numpy has no erf).
* ``reshape``: ``-1`` is inferred; a ``0`` copies the dimension of ``x`` at the same place counted from the
  right, or 1 past its rank (the iOS 17 rule; the same as iOS 15's when ``len(shape) == rank(x)``).
* ``squeeze`` with ``axes`` keeps an axis whose size is not 1 (the MIL doc: PyTorch's behaviour).

Batch: a flexible (``unknown``) input dimension takes any size (the description's ``shapeRange`` is not
enforced here). An input whose declared batch is a fixed ``B`` (reshape ops then carry that literal batch)
takes ``N = k * B`` rows: the program runs on ``B`` rows at a time and the outputs are stacked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from conv2d_bundle.errors import BundleError, BundleIntegrityError, MissingExtraError

#: an op input: the name of a variable, or a literal value
Arg = str | np.ndarray
Result = np.ndarray | tuple[np.ndarray, ...]


class UnsupportedOpError(BundleError):
    """The program uses an op (or a form of one) this interpreter does not implement.

    Not a :class:`~conv2d_bundle.errors.BundleIntegrityError`: the model may be fine, only this reference
    cannot run it."""

    def __init__(self, op: str) -> None:
        super().__init__(f"op {op}")
        self.op = op

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.op,))


# --------------------------------------------------------------------------------------------- program


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of the program: dtype and shape (``None`` for a flexible dimension) as declared.
    ``dtype``/``shape`` are ``None`` for a value that is not a tensor."""

    name: str
    dtype: np.dtype[Any] | None
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class Operation:
    type: str
    name: str
    inputs: Mapping[str, tuple[Arg, ...]]
    outputs: tuple[TensorSpec, ...]


@dataclass
class Program:
    """The function ``main`` of an ML Program, its constants read into numpy arrays."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    operations: tuple[Operation, ...]
    constants: dict[str, np.ndarray]
    opset: str = ""
    #: what the loader could not read, named like an op type (``const<INT4>``, ``input<stateType>``)
    unreadable: tuple[str, ...] = field(default=())

    def unsupported_ops(self) -> list[str]:
        """Op types of the program that the interpreter cannot run, sorted; empty when it runs it all."""
        missing = {op.type for op in self.operations if op.type not in OPS}
        return sorted(missing | set(self.unreadable))

    def run(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run ``main`` on ``inputs`` (arrays by input name, cast to the declared dtypes); outputs by name."""
        unsupported = self.unsupported_ops()
        if unsupported:
            raise UnsupportedOpError(unsupported[0])
        arrays = self._prepare(inputs)
        chunk = self._batch_chunk(arrays)
        if chunk is None:
            return self._execute(arrays)
        total = next(iter(arrays.values())).shape[0]
        parts = [
            self._execute({name: a[start : start + chunk] for name, a in arrays.items()})
            for start in range(0, total, chunk)
        ]
        for name, value in parts[0].items():
            if value.ndim == 0 or value.shape[0] != chunk:
                raise BundleIntegrityError(
                    f"cannot run {total} rows {chunk} at a time: output {name!r} has shape {value.shape}, "
                    f"no batch axis of {chunk} first"
                )
        return {name: np.concatenate([p[name] for p in parts]) for name in self.outputs}

    def _prepare(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        names = {spec.name for spec in self.inputs}
        unknown = sorted(set(inputs) - names)
        if unknown:
            raise BundleIntegrityError(f"the program has no input {unknown[0]!r}; inputs: {sorted(names)}")
        arrays = {}
        for spec in self.inputs:
            if spec.name not in inputs:
                raise BundleIntegrityError(f"input {spec.name!r} is missing")
            array = np.asarray(inputs[spec.name])
            assert spec.dtype is not None and spec.shape is not None  # non-tensor inputs are unreadable
            if array.ndim != len(spec.shape):
                raise BundleIntegrityError(
                    f"input {spec.name!r} has shape {array.shape}; the program declares {_shape(spec.shape)}"
                )
            arrays[spec.name] = array.astype(spec.dtype, copy=False)
        return arrays

    def _batch_chunk(self, arrays: Mapping[str, np.ndarray]) -> int | None:
        """None if the inputs fit the declared shapes; else the fixed batch to run them by."""
        chunked = False
        for spec in self.inputs:
            assert spec.shape is not None
            got = arrays[spec.name].shape
            for axis, (want, size) in enumerate(zip(spec.shape, got, strict=True)):
                if want is None or want == size:
                    continue
                if axis == 0 and want > 0 and size > 0 and size % want == 0:
                    chunked = True
                    continue
                raise BundleIntegrityError(
                    f"input {spec.name!r} has shape {got}; the program declares {_shape(spec.shape)}"
                )
        if not chunked:
            return None
        batches = {spec.shape[0] if spec.shape else None for spec in self.inputs}
        rows = {a.shape[0] for a in arrays.values()}
        if len(batches) != 1 or None in batches or len(rows) != 1:
            raise BundleIntegrityError(
                "the inputs' batch sizes do not match the program's fixed batch: "
                + ", ".join(f"{s.name} {arrays[s.name].shape} for {_shape(s.shape)}" for s in self.inputs)
            )
        return batches.pop()

    def _execute(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        env: dict[str, np.ndarray] = {**self.constants, **arrays}
        for op in self.operations:
            values = {key: [_resolve(env, arg, op) for arg in args] for key, args in op.inputs.items()}
            try:
                result = OPS[op.type](_Args(op, values))
            except (ValueError, IndexError, TypeError) as exc:  # numpy refusing what a malformed op asks
                raise BundleIntegrityError(f"op {op.type} {op.name!r} failed: {exc}") from exc
            results = result if isinstance(result, tuple) else (result,)
            if len(results) != len(op.outputs):
                raise BundleIntegrityError(
                    f"op {op.type} {op.name!r} gave {len(results)} outputs; the program declares "
                    f"{len(op.outputs)}"
                )
            for spec, value in zip(op.outputs, results, strict=True):
                env[spec.name] = _conform(op, spec, value)
        missing = [name for name in self.outputs if name not in env]
        if missing:
            raise BundleIntegrityError(f"no op of the program makes its output {missing[0]!r}")
        return {name: np.array(env[name]) for name in self.outputs}  # copies: constants stay ours


def _shape(shape: Sequence[int | None] | None) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape or ()) + "]"


def _resolve(env: Mapping[str, np.ndarray], arg: Arg, op: Operation) -> np.ndarray:
    if not isinstance(arg, str):
        return arg
    try:
        return env[arg]
    except KeyError:
        raise BundleIntegrityError(f"op {op.type} {op.name!r} reads {arg!r}, which nothing defines") from None


def _conform(op: Operation, spec: TensorSpec, value: Any) -> np.ndarray:
    """The op's result in the dtype the program declares, checked against the declared shape."""
    array = np.asarray(value)
    if spec.dtype is not None and array.dtype != spec.dtype:
        array = array.astype(spec.dtype)
    if spec.shape is not None and (
        array.ndim != len(spec.shape)
        or any(want is not None and want != got for want, got in zip(spec.shape, array.shape, strict=True))
    ):
        raise BundleIntegrityError(
            f"op {op.type} {op.name!r} computed {spec.name!r} of shape {array.shape}; the program declares "
            f"{_shape(spec.shape)}"
        )
    return array


# ------------------------------------------------------------------------------------------------ loading

# MIL DataType names (MIL.proto) -> numpy dtypes of the values the interpreter reads
_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "FLOAT16": np.float16,
    "FLOAT32": np.float32,
    "FLOAT64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "STRING": np.str_,
}
# what libmilstoragepython's _BlobStorageReader reads, by MIL dtype
_BLOB_READERS = {
    "FLOAT16": "read_fp16_data",
    "FLOAT32": "read_float_data",
    "INT8": "read_int8_data",
    "UINT8": "read_uint8_data",
    "INT16": "read_int16_data",
    "UINT16": "read_uint16_data",
    "INT32": "read_int32_data",
    "UINT32": "read_uint32_data",
}


class _Unreadable(Exception):
    """A value the interpreter cannot represent (sub-byte dtypes, lists, dictionaries, states)."""


def load_program(mlpackage_path: str | Path) -> Program:
    """Read the ML Program of an ``.mlpackage`` (or of a bare ``model.mlmodel``) and its weights."""
    model_file = _model_file(Path(mlpackage_path))
    try:
        from coremltools.proto import Model_pb2
    except ImportError as exc:
        raise MissingExtraError(
            "reading a Core ML model needs coremltools: pip install 'conv2d-bundle[coreml]'"
        ) from exc
    spec = Model_pb2.Model()
    try:
        spec.ParseFromString(model_file.read_bytes())
    except OSError as exc:
        raise BundleIntegrityError(f"cannot read {model_file}: {exc}") from exc
    except Exception as exc:  # protobuf's DecodeError
        raise BundleIntegrityError(f"{model_file} is not a Core ML model: {exc}") from exc
    return program_from_spec(spec, model_file.parent)


def _model_file(path: Path) -> Path:
    if path.is_file():
        return path
    manifest = path / "Manifest.json"
    try:
        info = json.loads(manifest.read_text())
        root = info["itemInfoEntries"][info["rootModelIdentifier"]]["path"]
    except OSError as exc:
        raise BundleIntegrityError(f"cannot read the package manifest {manifest}: {exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleIntegrityError(f"{manifest} names no root model: {exc!r}") from exc
    relative = PurePosixPath(str(root))
    if relative.is_absolute() or ".." in relative.parts:
        raise BundleIntegrityError(f"{manifest} puts the root model outside the package: {root!r}")
    return path / "Data" / relative


def program_from_spec(spec: Any, model_dir: Path) -> Program:
    """A :class:`Program` from a parsed ``Model`` spec; ``@model_path`` (weight files) is ``model_dir``."""
    if spec.WhichOneof("Type") != "mlProgram":  # a neuralnetwork (iOS 13/14) model is fine, just not MIL
        raise UnsupportedOpError(f"model<{spec.WhichOneof('Type')}>")
    from coremltools.proto import MIL_pb2

    dtype_name = MIL_pb2.DataType.Name
    functions = spec.mlProgram.functions
    if "main" not in functions:
        raise BundleIntegrityError(f"the ML Program has no function 'main' (only {sorted(functions)})")
    function = functions["main"]
    if function.opset not in function.block_specializations:
        raise BundleIntegrityError(f"function 'main' has no block for its opset {function.opset!r}")
    block = function.block_specializations[function.opset]
    reader = _BlobReaders(Path(model_dir))
    unreadable: list[str] = []

    inputs = []
    for named in function.inputs:
        kind = named.type.WhichOneof("type")
        tensor = _tensor_spec(named.name, named.type, dtype_name)
        if tensor.dtype is None or tensor.shape is None:
            unreadable.append(f"input<{kind}>")
        inputs.append(tensor)

    constants: dict[str, np.ndarray] = {}
    operations = []
    for op in block.operations:
        outputs = tuple(_tensor_spec(o.name, o.type, dtype_name) for o in op.outputs)
        name = _op_name(op)
        if op.type == "const":
            try:
                constants[op.outputs[0].name] = _value(op.attributes["val"], reader, dtype_name)
                continue
            except _Unreadable as exc:
                operations.append(Operation(f"const<{exc}>", name, {}, outputs))
                continue
        if op.blocks:  # cond, while_loop: nested blocks are not interpreted
            operations.append(Operation(f"{op.type}<blocks>", name, {}, outputs))
            continue
        args: dict[str, tuple[Arg, ...]] = {}
        op_type = op.type
        for key, argument in op.inputs.items():
            bound: list[Arg] = []
            for binding in argument.arguments:
                if binding.WhichOneof("binding") == "name":
                    bound.append(binding.name)
                    continue
                try:
                    bound.append(_value(binding.value, reader, dtype_name))
                except _Unreadable as exc:
                    op_type = f"{op.type}<{exc}>"
            args[key] = tuple(bound)
        operations.append(Operation(op_type, name, args, outputs))

    return Program(
        inputs=tuple(inputs),
        outputs=tuple(block.outputs),
        operations=tuple(operations),
        constants=constants,
        opset=function.opset,
        unreadable=tuple(unreadable),
    )


def _op_name(op: Any) -> str:
    if "name" in op.attributes:
        strings = op.attributes["name"].immediateValue.tensor.strings.values
        if strings:
            return str(strings[0])
    return op.outputs[0].name if op.outputs else ""


def _tensor_spec(name: str, value_type: Any, dtype_name: Callable[[int], str]) -> TensorSpec:
    if value_type.WhichOneof("type") != "tensorType":
        return TensorSpec(name, None, None)
    tensor = value_type.tensorType
    dtype = _DTYPES.get(dtype_name(tensor.dataType))
    shape: list[int | None] = []
    for dim in tensor.dimensions:
        if dim.WhichOneof("dimension") == "constant":
            shape.append(int(dim.constant.size))
        elif dim.unknown.variadic:
            return TensorSpec(name, np.dtype(dtype) if dtype else None, None)
        else:
            shape.append(None)
    return TensorSpec(name, np.dtype(dtype) if dtype else None, tuple(shape))


def _value(value: Any, reader: _BlobReaders, dtype_name: Callable[[int], str]) -> np.ndarray:
    """A MIL ``Value`` (immediate or in a weight file) as a numpy array of its declared dtype and shape."""
    if value.type.WhichOneof("type") != "tensorType":
        raise _Unreadable(str(value.type.WhichOneof("type")))
    tensor = value.type.tensorType
    mil_dtype = dtype_name(tensor.dataType)
    if mil_dtype not in _DTYPES:
        raise _Unreadable(mil_dtype)
    dtype = np.dtype(_DTYPES[mil_dtype])
    shape = []
    for dim in tensor.dimensions:
        if dim.WhichOneof("dimension") != "constant":
            raise BundleIntegrityError("a constant value has a flexible shape")
        shape.append(int(dim.constant.size))
    kind = value.WhichOneof("value")
    if kind == "blobFileValue":
        array = reader.read(value.blobFileValue.fileName, value.blobFileValue.offset, mil_dtype)
    elif kind == "immediateValue" and value.immediateValue.WhichOneof("value") == "tensor":
        immediate = value.immediateValue.tensor
        field_name = immediate.WhichOneof("value")
        if field_name == "bytes":  # fp16, int8, uint8, uint32: raw little-endian bytes
            array = np.frombuffer(immediate.bytes.values, dtype=dtype)
        elif field_name is None:
            array = np.zeros(0, dtype=dtype)
        else:
            array = np.array(list(getattr(immediate, field_name).values), dtype=dtype)
    else:
        raise _Unreadable(f"{kind}:{value.immediateValue.WhichOneof('value')}")
    if array.size != math.prod(shape):
        raise BundleIntegrityError(f"a {mil_dtype} constant holds {array.size} values for shape {shape}")
    return array.reshape(shape)


class _BlobReaders:
    """``_BlobStorageReader`` per weight file under the model's directory, opened on first use."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self._readers: dict[Path, Any] = {}

    def read(self, file_name: str, offset: int, mil_dtype: str) -> np.ndarray:
        if mil_dtype not in _BLOB_READERS:
            raise _Unreadable(mil_dtype)
        prefix = "@model_path/"
        relative = PurePosixPath(file_name[len(prefix) :]) if file_name.startswith(prefix) else None
        if relative is None or relative.is_absolute() or ".." in relative.parts:
            raise BundleIntegrityError(f"a weight is in {file_name!r}, not under @model_path/")
        path = self.model_dir / relative
        if path not in self._readers:
            if not path.is_file():
                raise BundleIntegrityError(f"the weight file {path} is missing")
            from coremltools.libmilstoragepython import _BlobStorageReader

            self._readers[path] = _BlobStorageReader(str(path))
        try:
            data = getattr(self._readers[path], _BLOB_READERS[mil_dtype])(offset)
        except Exception as exc:  # the reader raises RuntimeError (or worse) for a bad offset or file
            raise BundleIntegrityError(
                f"cannot read a {mil_dtype} weight at {offset} of {path}: {exc}"
            ) from exc
        array = np.array(data)  # a copy: the reader's buffer is not ours to keep
        if mil_dtype == "FLOAT16":  # read as uint16 bit patterns
            array = array.view(np.float16)
        return array


# --------------------------------------------------------------------------------------------- op support


class _Args:
    """An op's input values by parameter name; fp16 tensors come out as fp32 (see the module doc)."""

    def __init__(self, op: Operation, values: Mapping[str, list[np.ndarray]]) -> None:
        self.op = op
        self._values = values

    def has(self, key: str) -> bool:
        return bool(self._values.get(key))

    def tensors(self, key: str) -> list[np.ndarray]:
        if not self.has(key):
            raise BundleIntegrityError(f"op {self.op.type} {self.op.name!r} has no input {key!r}")
        return [_compute(v) for v in self._values[key]]

    def tensor(self, key: str) -> np.ndarray:
        return self.tensors(key)[0]

    @property
    def x(self) -> np.ndarray:
        return self.tensor("x")

    def opt(self, key: str) -> np.ndarray | None:
        return self.tensor(key) if self.has(key) else None

    def ints(self, key: str, default: Sequence[int] | None = None) -> list[int]:
        if not self.has(key) and default is not None:
            return list(default)
        return [int(v) for v in self.tensor(key).reshape(-1)]

    def opt_ints(self, key: str) -> list[int] | None:
        return self.ints(key) if self.has(key) else None

    def scalar(self, key: str, default: Any = None) -> Any:
        if not self.has(key):
            if default is None:
                raise BundleIntegrityError(f"op {self.op.type} {self.op.name!r} has no input {key!r}")
            return default
        return self.tensor(key).reshape(-1)[0].item()

    def integer(self, key: str, default: int | None = None) -> int:
        return int(self.scalar(key, default))

    def number(self, key: str, default: float | None = None) -> float:
        return float(self.scalar(key, default))

    def flag(self, key: str, default: bool | None = None) -> bool:
        return bool(self.scalar(key, default))

    def text(self, key: str, default: str | None = None) -> str:
        return str(self.scalar(key, default))


def _compute(value: np.ndarray) -> np.ndarray:
    return value.astype(np.float32) if value.dtype == np.float16 else value


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _bad(a: _Args, message: str) -> BundleIntegrityError:
    return BundleIntegrityError(f"op {a.op.type} {a.op.name!r}: {message}")


# ------------------------------------------------------------------------------------- elementwise ops


def _binary(fn: Callable[[Any, Any], Any]) -> Callable[[_Args], Result]:
    def op(a: _Args) -> Result:
        return np.asarray(fn(a.x, a.tensor("y")))

    return op


def _unary(fn: Callable[[Any], Any]) -> Callable[[_Args], Result]:
    def op(a: _Args) -> Result:
        return np.asarray(fn(a.x))

    return op


def _real_div(a: _Args) -> Result:
    x, y = a.x, a.tensor("y")
    with np.errstate(divide="ignore", invalid="ignore"):  # x/0 is inf or nan, as IEEE says
        return np.true_divide(x, y)


def _sigmoid_of(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -x))  # 1 / (1 + exp(-x)) without overflow


def _erf(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.frompyfunc(math.erf, 1, 1)(x.astype(np.float64)), dtype=np.float64)


def _round(a: _Args) -> Result:
    return np.round(a.x)  # half to even


def _cast(a: _Args) -> Result:
    x, target = a.x, a.text("dtype")
    if target not in _CAST_DTYPES:
        raise UnsupportedOpError(f"cast<{target}>")
    dtype = np.dtype(_CAST_DTYPES[target])
    if np.issubdtype(x.dtype, np.floating) and np.issubdtype(dtype, np.integer):
        x = np.trunc(x)  # toward zero
    return x.astype(dtype)


_CAST_DTYPES = {
    "fp16": np.float16,
    "fp32": np.float32,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "bool": np.bool_,
}


def _log(a: _Args) -> Result:
    return np.log(a.x + a.number("epsilon", 1e-45))


def _rsqrt(a: _Args) -> Result:
    return 1 / np.sqrt(a.x + a.number("epsilon", 1e-12))


def _inverse(a: _Args) -> Result:
    return np.reciprocal(a.x + a.number("epsilon", 1e-4))


def _clip(a: _Args) -> Result:
    return np.minimum(np.maximum(a.x, a.number("alpha")), a.number("beta"))


def _threshold(a: _Args) -> Result:
    return np.maximum(a.x, a.number("alpha"))


# -------------------------------------------------------------------------------------------- activations


def _relu(a: _Args) -> Result:
    return np.maximum(a.x, 0)


def _relu6(a: _Args) -> Result:
    return np.minimum(np.maximum(a.x, 0), 6)


def _leaky_relu(a: _Args) -> Result:
    x = a.x
    return np.where(x < 0, x * a.number("alpha"), x)


def _thresholded_relu(a: _Args) -> Result:
    x = a.x
    return np.where(x < a.number("alpha"), 0, x)


def _elu(a: _Args) -> Result:
    x = a.x
    return np.where(x < 0, a.number("alpha") * np.expm1(np.minimum(x, 0)), x)


def _prelu(a: _Args) -> Result:
    x, alpha = a.x, a.tensor("alpha")
    alpha = alpha.reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.maximum(x, 0) + np.minimum(x, 0) * alpha


def _clamped_relu(a: _Args) -> Result:
    x, alpha, beta = a.x, a.number("alpha"), a.number("beta")
    return np.minimum(np.maximum(x, 0), beta) + np.minimum(np.minimum(x, 0) * alpha, beta)


def _linear_activation(a: _Args) -> Result:
    return a.x * a.number("alpha") + a.number("beta")


def _scaled_tanh(a: _Args) -> Result:
    return a.number("alpha") * np.tanh(a.x * a.number("beta"))


def _sigmoid(a: _Args) -> Result:
    return _sigmoid_of(a.x)


def _sigmoid_hard(a: _Args) -> Result:
    return np.minimum(np.maximum(a.x * a.number("alpha") + a.number("beta"), 0), 1)


def _silu(a: _Args) -> Result:
    x = a.x
    return x * _sigmoid_of(x)


def _softplus(a: _Args) -> Result:
    return np.logaddexp(0, a.x)


def _softsign(a: _Args) -> Result:
    x = a.x
    return x / (1 + np.abs(x))


def _gelu(a: _Args) -> Result:
    x, mode = a.x, a.text("mode", "EXACT")
    if mode == "EXACT":
        return 0.5 * x * (1 + _erf(x / math.sqrt(2)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * _sigmoid_of(1.702 * x)
    raise _bad(a, f"unknown gelu mode {mode!r}")


def _softmax(a: _Args) -> Result:
    x, axis = a.x, a.integer("axis", -1)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


# ----------------------------------------------------------------------------------------- linear algebra


def _linear(a: _Args) -> Result:
    x, weight, bias = a.x, a.tensor("weight"), a.opt("bias")
    y = np.matmul(x, weight.T)
    return y if bias is None else y + bias


def _matmul(a: _Args) -> Result:
    x, y = a.x, a.tensor("y")
    if a.flag("transpose_x", False) and x.ndim > 1:
        x = np.swapaxes(x, -1, -2)
    if a.flag("transpose_y", False) and y.ndim > 1:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


# -------------------------------------------------------------------------------------- conv and pooling


def _padding(
    a: _Args,
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    default_type: str,
) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dimension; ``kernel`` is the dilated kernel."""
    pad_type = a.text("pad_type", default_type).lower()
    n = len(in_sizes)
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type == "custom":
        pad = a.ints("pad", [0] * 2 * n)
        if len(pad) != 2 * n:
            raise _bad(a, f"pad {pad} for {n} spatial dimensions")
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        pads = []
        for size, k, s in zip(in_sizes, kernel, strides, strict=True):
            total = max(0, s * math.ceil(size / s) - size + k - s)
            small, large = total // 2, total - total // 2
            pads.append((small, large) if pad_type == "same" else (large, small))
        return pads
    raise _bad(a, f"unknown pad_type {pad_type!r}")


def _windows(
    xp: np.ndarray, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]
) -> np.ndarray:
    """Strided view ``[N, C, *out, *kernel]`` of the padded ``xp`` ``[N, C, *spatial]``."""
    n = len(kernel)
    dilated = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    view = np.lib.stride_tricks.sliding_window_view(xp, dilated, axis=tuple(range(2, 2 + n)))
    index = (
        slice(None),
        slice(None),
        *(slice(None, None, s) for s in strides),
        *(slice(None, None, d) for d in dilations),
    )
    return view[index]


def _conv(a: _Args) -> Result:
    x, weight, bias = a.x, a.tensor("weight"), a.opt("bias")
    n = x.ndim - 2
    strides, dilations = a.ints("strides", [1] * n), a.ints("dilations", [1] * n)
    groups = a.integer("groups", 1)
    kernel = weight.shape[2:]
    dilated = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    pads = _padding(a, x.shape[2:], dilated, strides, "valid")
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    windows = _windows(xp, kernel, strides, dilations)  # [N, C, *out, *K]
    batch, channels, out = x.shape[0], x.shape[1], windows.shape[2 : 2 + n]
    c_out, per_group = weight.shape[0], channels // groups
    if channels % groups or weight.shape[1] != per_group or c_out % groups:
        raise _bad(a, f"x {x.shape}, weight {weight.shape} and groups {groups} do not fit")
    rows = batch * math.prod(out)
    # im2col: [groups, rows, C/groups * prod(K)] @ [groups, C/groups * prod(K), C_out/groups]
    cols = np.moveaxis(windows, 1, 1 + n).reshape(rows, groups, per_group * math.prod(kernel))
    w = weight.reshape(groups, c_out // groups, -1)
    y = np.matmul(cols.transpose(1, 0, 2), w.transpose(0, 2, 1))  # [groups, rows, C_out/groups]
    y = y.transpose(1, 0, 2).reshape(batch, *out, c_out)
    y = np.moveaxis(y, -1, 1)
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * n)
    return y


def _pool(a: _Args, reduce: str) -> np.ndarray:
    x = a.x
    n = x.ndim - 2
    kernel, strides = a.ints("kernel_sizes"), a.ints("strides", [1] * n)
    ceil_mode = a.flag("ceil_mode", False)
    in_sizes = x.shape[2:]
    pads = _padding(a, in_sizes, kernel, strides, "valid")
    out, extra = [], []
    for size, k, s, (before, after) in zip(in_sizes, kernel, strides, pads, strict=True):
        padded = size + before + after
        if ceil_mode:  # coremltools' spatial_dimensions_out_shape
            o = (padded - k + s - 1) // s + 1
            if (o - 1) * s >= size + before and before + after > 0:
                o -= 1
        else:
            o = (padded - k) // s + 1
        out.append(o)
        extra.append(max(0, (o - 1) * s + k - padded))  # the last window's part past the padded input
    widths = [(0, 0), (0, 0)] + [(b, e + x_) for (b, e), x_ in zip(pads, extra, strict=True)]
    ones = [1] * n
    crop = (slice(None), slice(None), *(slice(0, o) for o in out))
    k_axes = tuple(range(-n, 0))
    if reduce == "max":
        xp = np.pad(x, widths, constant_values=-np.inf)
        return _windows(xp, kernel, strides, ones)[crop].max(axis=k_axes)
    total = _windows(np.pad(x, widths), kernel, strides, ones)[crop].sum(axis=k_axes)
    if a.flag("exclude_padding_from_average", False):
        counted = np.pad(np.ones((1, 1, *in_sizes), np.float32), widths)
    else:
        counted = np.pad(
            np.ones((1, 1, *(s + b + e for s, (b, e) in zip(in_sizes, pads, strict=True))), np.float32),
            [(0, 0), (0, 0)] + [(0, x_) for x_ in extra],
        )
    count = _windows(counted, kernel, strides, ones)[crop].sum(axis=k_axes)
    return total / count


def _max_pool(a: _Args) -> Result:
    return _pool(a, "max")


def _avg_pool(a: _Args) -> Result:
    return _pool(a, "avg")


# ------------------------------------------------------------------------------------------ normalization


def _layer_norm(a: _Args) -> Result:
    x = a.x
    axes = tuple(_axis(i, x.ndim) for i in a.ints("axes", list(range(x.ndim))))
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, axis=axes, keepdims=True)
    y = centered / np.sqrt(var + a.number("epsilon", 1e-5))
    norm_shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    gamma, beta = a.opt("gamma"), a.opt("beta")
    if gamma is not None:
        y = y * gamma.reshape(norm_shape)
    if beta is not None:
        y = y + beta.reshape(norm_shape)
    return y


def _channel(v: np.ndarray, rank: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (rank - 2))


def _scale_shift(y: np.ndarray, a: _Args) -> np.ndarray:
    """A normalisation's optional per-channel ``gamma`` scale, then ``beta`` shift (batch_norm, instance_norm)."""
    gamma, beta = a.opt("gamma"), a.opt("beta")
    if gamma is not None:
        y = y * _channel(gamma, y.ndim)
    if beta is not None:
        y = y + _channel(beta, y.ndim)
    return y


def _batch_norm(a: _Args) -> Result:
    x = a.x
    mean, var = _channel(a.tensor("mean"), x.ndim), _channel(a.tensor("variance"), x.ndim)
    y = (x - mean) / np.sqrt(var + a.number("epsilon", 1e-5))
    return _scale_shift(y, a)


def _instance_norm(a: _Args) -> Result:
    x = a.x
    axes = tuple(range(2, x.ndim))
    centered = x - x.mean(axis=axes, keepdims=True)
    var = np.mean(centered * centered, axis=axes, keepdims=True)
    y = centered / np.sqrt(var + a.number("epsilon", 1e-5))
    return _scale_shift(y, a)


# ----------------------------------------------------------------------------------------------- reductions


def _reduction(fn: Callable[..., Any]) -> Callable[[_Args], Result]:
    def op(a: _Args) -> Result:
        axes = a.opt_ints("axes")
        return np.asarray(
            fn(a.x, axis=None if axes is None else tuple(axes), keepdims=a.flag("keep_dims", False))
        )

    return op


def _log_sum_exp(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    y = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return y if keepdims else np.squeeze(y, axis=axis)


def _arg_reduction(fn: Callable[..., Any]) -> Callable[[_Args], Result]:
    def op(a: _Args) -> Result:
        return np.asarray(fn(a.x, axis=a.integer("axis", -1), keepdims=a.flag("keep_dims", False)))

    return op


# ----------------------------------------------------------------------------------------- tensor shapes


def _reshape(a: _Args) -> Result:
    x, shape = a.x, a.ints("shape")
    resolved = []
    for i, size in enumerate(shape):
        if size == 0:  # the dimension of x at the same place counted from the right, 1 past its rank
            j = x.ndim - (len(shape) - i)
            resolved.append(x.shape[j] if j >= 0 else 1)
        else:
            resolved.append(size)
    try:
        return np.reshape(x, resolved)
    except ValueError as exc:
        raise _bad(a, f"cannot reshape {x.shape} to {shape}: {exc}") from exc


def _transpose(a: _Args) -> Result:
    return np.transpose(a.x, a.ints("perm"))


def _squeeze(a: _Args) -> Result:
    x, axes = a.x, a.opt_ints("axes")
    if axes is None:
        return np.squeeze(x)
    ones = tuple(ax for ax in (_axis(i, x.ndim) for i in axes) if x.shape[ax] == 1)
    return np.squeeze(x, axis=ones)


def _expand_dims(a: _Args) -> Result:
    x, axes = a.x, a.ints("axes")
    rank = x.ndim + len(axes)
    for axis in sorted(_axis(i, rank) for i in axes):
        x = np.expand_dims(x, axis)
    return x


def _concat(a: _Args) -> Result:
    values = a.tensors("values")
    axis = _axis(a.integer("axis"), values[0].ndim)
    if not a.flag("interleave", False):
        return np.concatenate(values, axis=axis)
    shape = list(values[0].shape)
    shape[axis] *= len(values)
    return np.stack(values, axis=axis + 1).reshape(shape)


def _stack(a: _Args) -> Result:
    return np.stack(a.tensors("values"), axis=a.integer("axis"))


def _split(a: _Args) -> Result:
    x = a.x
    axis = _axis(a.integer("axis"), x.ndim)
    sizes = a.opt_ints("split_sizes")
    if sizes is None:
        parts = a.integer("num_splits")
        if x.shape[axis] % parts:
            raise _bad(a, f"{x.shape[axis]} does not split in {parts}")
        sizes = [x.shape[axis] // parts] * parts
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _pad(a: _Args) -> Result:
    x, pad, mode = a.x, a.ints("pad"), a.text("mode", "constant")
    n = len(pad) // 2
    widths = [(0, 0)] * (x.ndim - n) + [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    if mode == "constant":
        return np.pad(x, widths, constant_values=a.number("constant_val", 0.0))
    if mode == "reflect":
        return np.pad(x, widths, mode="reflect")
    if mode == "replicate":
        return np.pad(x, widths, mode="edge")
    raise _bad(a, f"unknown pad mode {mode!r}")


def _slice_by_index(a: _Args) -> Result:
    x = a.x
    rank = x.ndim
    begin, end = a.ints("begin"), a.ints("end")
    stride = a.ints("stride", [1] * rank)
    begin_mask = [bool(v) for v in a.ints("begin_mask", [0] * rank)]
    end_mask = [bool(v) for v in a.ints("end_mask", [0] * rank)]
    squeeze_mask = [bool(v) for v in a.ints("squeeze_mask", [0] * rank)]
    index: list[int | slice] = []
    for i in range(rank):
        if squeeze_mask[i]:  # the element at begin[i], which begin_mask makes 0 (MIL doc and value_inference)
            index.append(0 if begin_mask[i] else begin[i])
        else:
            start = None if begin_mask[i] else begin[i]
            stop = None if end_mask[i] else end[i]
            index.append(slice(start, stop, stride[i]))
    return x[tuple(index)]


def _slice_by_size(a: _Args) -> Result:
    x, begin, size = a.x, a.ints("begin"), a.ints("size")
    index = []
    for i, (b, s) in enumerate(zip(begin, size, strict=True)):
        b = _axis(b, x.shape[i])
        index.append(slice(b, None) if s == -1 else slice(b, b + s))
    return x[tuple(index)]


def _tile(a: _Args) -> Result:
    return np.tile(a.x, a.ints("reps"))


def _gather(a: _Args) -> Result:
    if a.integer("batch_dims", 0) != 0:
        raise UnsupportedOpError(f"gather<batch_dims={a.integer('batch_dims')}>")
    return np.take(a.x, a.tensor("indices").astype(np.int64), axis=a.integer("axis", 0))


def _flatten2d(a: _Args) -> Result:
    x = a.x
    axis = _axis(a.integer("axis", 1), x.ndim)
    return x.reshape(math.prod(x.shape[:axis]), -1)


def _shape_op(a: _Args) -> Result:
    return np.array(a.x.shape, dtype=np.int32)


def _identity(a: _Args) -> Result:
    return a.x


def _fill(a: _Args) -> Result:
    return np.full(a.ints("shape"), a.scalar("value", 0.0))


def _range_1d(a: _Args) -> Result:
    return np.arange(a.scalar("start"), a.scalar("end"), a.scalar("step"))


def _select(a: _Args) -> Result:
    return np.where(a.tensor("cond").astype(bool), a.tensor("a"), a.tensor("b"))


# --------------------------------------------------------------------------------------------- dispatch

#: op type -> function computing its outputs (from an op's inputs, fp16 read as fp32)
OPS: dict[str, Callable[[_Args], Result]] = {
    # elementwise, two inputs (numpy broadcasting, as MIL's)
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "real_div": _real_div,
    "floor_div": _binary(np.floor_divide),
    "mod": _binary(np.mod),
    "pow": _binary(np.power),
    "maximum": _binary(np.maximum),
    "minimum": _binary(np.minimum),
    "equal": _binary(np.equal),
    "not_equal": _binary(np.not_equal),
    "greater": _binary(np.greater),
    "greater_equal": _binary(np.greater_equal),
    "less": _binary(np.less),
    "less_equal": _binary(np.less_equal),
    "logical_and": _binary(np.logical_and),
    "logical_or": _binary(np.logical_or),
    "logical_xor": _binary(np.logical_xor),
    # elementwise, one input
    "abs": _unary(np.abs),
    "acos": _unary(np.arccos),
    "asin": _unary(np.arcsin),
    "atan": _unary(np.arctan),
    "atanh": _unary(np.arctanh),
    "ceil": _unary(np.ceil),
    "cos": _unary(np.cos),
    "cosh": _unary(np.cosh),
    "erf": _unary(_erf),
    "exp": _unary(np.exp),
    "exp2": _unary(np.exp2),
    "floor": _unary(np.floor),
    "logical_not": _unary(np.logical_not),
    "sign": _unary(np.sign),
    "sin": _unary(np.sin),
    "sinh": _unary(np.sinh),
    "sqrt": _unary(np.sqrt),
    "square": _unary(np.square),
    "tan": _unary(np.tan),
    "tanh": _unary(np.tanh),
    "round": _round,
    "cast": _cast,
    "log": _log,
    "rsqrt": _rsqrt,
    "inverse": _inverse,
    "clip": _clip,
    "threshold": _threshold,
    # activations
    "relu": _relu,
    "relu6": _relu6,
    "leaky_relu": _leaky_relu,
    "thresholded_relu": _thresholded_relu,
    "elu": _elu,
    "prelu": _prelu,
    "clamped_relu": _clamped_relu,
    "linear_activation": _linear_activation,
    "scaled_tanh": _scaled_tanh,
    "sigmoid": _sigmoid,
    "sigmoid_hard": _sigmoid_hard,
    "silu": _silu,
    "softplus": _softplus,
    "softsign": _softsign,
    "gelu": _gelu,
    "softmax": _softmax,
    # linear algebra, conv, pooling, normalization
    "linear": _linear,
    "matmul": _matmul,
    "conv": _conv,
    "max_pool": _max_pool,
    "avg_pool": _avg_pool,
    "layer_norm": _layer_norm,
    "batch_norm": _batch_norm,
    "instance_norm": _instance_norm,
    # reductions
    "reduce_mean": _reduction(np.mean),
    "reduce_sum": _reduction(np.sum),
    "reduce_max": _reduction(np.max),
    "reduce_min": _reduction(np.min),
    "reduce_prod": _reduction(np.prod),
    "reduce_sum_square": _reduction(lambda x, **kw: np.sum(x * x, **kw)),
    "reduce_l1_norm": _reduction(lambda x, **kw: np.sum(np.abs(x), **kw)),
    "reduce_l2_norm": _reduction(lambda x, **kw: np.sqrt(np.sum(x * x, **kw))),
    "reduce_log_sum_exp": _reduction(_log_sum_exp),
    "reduce_argmax": _arg_reduction(np.argmax),
    "reduce_argmin": _arg_reduction(np.argmin),
    # shapes and data movement
    "reshape": _reshape,
    "transpose": _transpose,
    "squeeze": _squeeze,
    "expand_dims": _expand_dims,
    "concat": _concat,
    "stack": _stack,
    "split": _split,
    "pad": _pad,
    "slice_by_index": _slice_by_index,
    "slice_by_size": _slice_by_size,
    "tile": _tile,
    "gather": _gather,
    "flatten2d": _flatten2d,
    "shape": _shape_op,
    "identity": _identity,
    "fill": _fill,
    "range_1d": _range_1d,
    "select": _select,
}
