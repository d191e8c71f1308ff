"""Golden reference I/O: seeded input windows and the source model's outputs on them.

Every later check compares an export with these files, without torch. Inputs are screened so that the
pre-rounding latent stays at least ``MIN_MARGIN`` away from a rounding boundary (x.5): there, fp32 noise
of ~5e-7 between runtimes could flip a code, and exact code parity would be luck.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from conv2d_bundle.config import ModelSpec
from conv2d_bundle.errors import ExportError
from conv2d_bundle.models.postprocess import rounding_margin

MIN_MARGIN = 1e-4
INPUTS_FILE = "reference/inputs.npy"
OUTPUTS_FILE = "reference/outputs.npz"
ONNX_TEST_DATA_DIR = "reference/onnx/test_data_set_0"


@dataclass(frozen=True)
class ReferenceData:
    inputs: np.ndarray
    outputs: Mapping[str, np.ndarray]
    screened: bool
    candidates_drawn: int
    taps: Any = None  # conv2d_bundle.bundle.taps.Taps, recorded in the same forward pass as the outputs


def make_reference(
    model: object,
    spec: ModelSpec,
    *,
    num_samples: int = 64,
    seed: int = 0,
    taps: Sequence[str] | None = None,
) -> ReferenceData:
    """Draw seeded windows, keep those far enough from rounding boundaries, run the model on them; the same
    run records the taps (``taps``: module names, None the default ones; :mod:`conv2d_bundle.bundle.taps`)."""
    import torch

    from conv2d_bundle.bundle.taps import TapRecorder

    recorder = TapRecorder(model, taps)  # ConfigError for an unknown module before anything runs

    rng = np.random.default_rng(seed)
    shape = tuple(spec.input_shape[1:])
    screen = getattr(model, "rounding_latent", None)
    kept: list[np.ndarray] = []
    drawn = 0
    with torch.no_grad():
        while len(kept) < num_samples:
            if drawn > 50 * num_samples:
                raise ExportError(
                    f"only {len(kept)} of {drawn} random inputs keep the latent {MIN_MARGIN:g} from a rounding "
                    "boundary; the model's latent sits on boundaries (untrained or degenerate?)"
                )
            batch = rng.standard_normal((num_samples, *shape)).astype(np.float32)
            drawn += num_samples
            if callable(screen):
                try:
                    latent = screen(torch.from_numpy(batch)).numpy()
                except Exception as exc:  # as in run_torch: a forward that fails on the declared shape
                    raise ExportError(f"the model fails on its declared input shape: {exc}") from exc
                batch = batch[rounding_margin(latent) >= MIN_MARGIN]
            kept.extend(batch)
        inputs = np.ascontiguousarray(np.stack(kept[:num_samples]).astype(np.float32))
        with recorder:
            outputs = run_torch(model, inputs, spec)
    return ReferenceData(inputs, outputs, callable(screen), drawn, recorder.taps())


def run_torch(model: object, inputs: np.ndarray, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The model's outputs on ``inputs`` by configured name, checked against the configured count."""
    import torch

    with torch.no_grad():
        try:
            result = model(torch.from_numpy(inputs))  # type: ignore[operator]
        except Exception as exc:  # a user's forward can raise anything; it means the model does not fit
            raise ExportError(
                f"the model fails on its declared input shape {list(inputs.shape)}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}"
            ) from exc
    if isinstance(result, torch.Tensor):
        result = (result,)
    if isinstance(result, Mapping):
        result = tuple(result[name] for name in spec.output_names)
    if len(result) != len(spec.outputs):
        raise ExportError(f"the model returned {len(result)} outputs; the config names {len(spec.outputs)}")
    out: dict[str, np.ndarray] = {}
    for o, tensor in zip(spec.outputs, result, strict=True):
        arr = tensor.detach().cpu().numpy()
        if str(arr.dtype) != o.dtype:
            raise ExportError(f"output {o.name} is {arr.dtype}; the config declares {o.dtype}")
        out[o.name] = arr
    return out


def save_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def save_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    """np.savez writes zip entries with the current time; write them with a fixed one instead."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, save_npy(np.ascontiguousarray(arrays[name])))
    return buf.getvalue()


def onnx_test_data(
    inputs: np.ndarray, outputs: Mapping[str, np.ndarray], input_name: str, output_names: Sequence[str]
) -> dict[str, bytes]:
    """The golden case in ONNX's test-data layout (the one ``onnx_test_runner`` and the ONNX model zoo read):
    ``input_0.pb`` and ``output_<i>.pb``, TensorProtos named after the graph's input and outputs, outputs in
    the graph's (the config's) order. Same values as inputs.npy / outputs.npz."""
    from onnx import numpy_helper

    files = {f"{ONNX_TEST_DATA_DIR}/input_0.pb": numpy_helper.from_array(inputs, input_name)}
    for i, name in enumerate(output_names):
        files[f"{ONNX_TEST_DATA_DIR}/output_{i}.pb"] = numpy_helper.from_array(outputs[name], name)
    return {path: tensor.SerializeToString(deterministic=True) for path, tensor in files.items()}
