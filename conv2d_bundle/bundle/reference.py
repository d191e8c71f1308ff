"""Golden reference I/O: seeded input windows and the source model's outputs on them, and what they cover.

Every later check compares an export with these files, without torch. The windows are drawn from the config's
``export.reference.inputs`` (real windows: stratified over the model's predicted classes where it has a class
output, else a seeded uniform sample) or, where no file is given, are seeded random normal windows. Either way
they are screened so that the pre-rounding latent stays at least ``MIN_MARGIN`` away from a rounding boundary
(x.5): there, fp32 noise of ~5e-7 between runtimes could flip a code, and exact code parity would be luck.

:func:`coverage` says what the golden set exercises (classes, codes, input statistics) and when agreement on
it proves little (``degenerate``): one class or one code on >= 90% of the windows, or an output that is the
same on every window — a constant answer would then agree with it almost everywhere.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from conv2d_bundle.config import CLASS_KINDS, ModelSpec, ReferenceInputs
from conv2d_bundle.errors import ConfigError, ExportError
from conv2d_bundle.models.postprocess import rounding_margin

MIN_MARGIN = 1e-4
INPUTS_FILE = "reference/inputs.npy"
OUTPUTS_FILE = "reference/outputs.npz"
ONNX_TEST_DATA_DIR = "reference/onnx/test_data_set_0"
#: a golden set where one class (or one code) takes this share of the windows is degenerate: answering that
#: class (code) always would agree with it on as many windows
DEGENERATE_SHARE = 0.9
BATCH = 256  # windows per forward pass over a real-data file


@dataclass(frozen=True)
class ReferenceData:
    inputs: np.ndarray
    outputs: Mapping[str, np.ndarray]
    screened: bool
    candidates_drawn: int
    taps: Any = None  # conv2d_bundle.bundle.taps.Taps, recorded in the same forward pass as the outputs
    source: ReferenceInputs | None = None  # the real-data file the windows were drawn from; None: random
    rows: tuple[int, ...] | None = None  # the file's row of each golden window
    seed: int = 0

    def source_entry(self) -> dict[str, Any]:
        """Where the golden windows came from, for metadata.json."""
        if self.source is None:
            return {"kind": "random", "description": f"random normal, seed {self.seed}"}
        entry: dict[str, Any] = {
            "kind": "file",
            "file": self.source.name,
            "path": self.source.written,  # as the config writes it
            "sha256": self.source.sha256,
            "windows": int(self.source.windows.shape[0]),
            "rows": list(self.rows or ()),
        }
        if self.source.array is not None:
            entry["array"] = self.source.array
        return entry


def make_reference(
    model: object,
    spec: ModelSpec,
    *,
    num_samples: int = 64,
    seed: int = 0,
    taps: Sequence[str] | None = None,
    source: ReferenceInputs | None = None,
) -> ReferenceData:
    """Draw seeded windows (from ``source``'s real windows when given, see :func:`draw_from_file`; else random
    normal ones), keep those far enough from rounding boundaries, run the model on them; the same run records
    the taps (``taps``: module names, None the default ones; :mod:`conv2d_bundle.bundle.taps`)."""
    import torch

    from conv2d_bundle.bundle.taps import TapRecorder

    recorder = TapRecorder(model, taps)  # ConfigError for an unknown module before anything runs
    if source is not None:
        rows = draw_from_file(
            model, spec, source.windows, num_samples=num_samples, seed=seed, name=source.name
        )
        inputs = np.ascontiguousarray(source.windows[rows])
        with recorder:
            outputs = run_torch(model, inputs, spec)
        screened = callable(getattr(model, "rounding_latent", None))
        return ReferenceData(
            inputs,
            outputs,
            screened,
            int(source.windows.shape[0]),
            recorder.taps(),
            source=source,
            rows=tuple(int(r) for r in rows),
            seed=seed,
        )

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
    return ReferenceData(inputs, outputs, callable(screen), drawn, recorder.taps(), seed=seed)


def draw_from_file(
    model: object,
    spec: ModelSpec,
    windows: np.ndarray,
    *,
    num_samples: int,
    seed: int,
    name: str = "the file",
) -> np.ndarray:
    """The rows of ``windows`` that make the golden set: those far enough from a rounding boundary, then
    ``num_samples`` of them, seeded — stratified over the source model's predicted classes where it has a
    class output (:func:`stratified_rows`), else a uniform sample. The model runs in batches of ``BATCH``."""
    import torch

    screen = getattr(model, "rounding_latent", None)
    class_output = spec.class_output
    eligible = np.ones(windows.shape[0], dtype=bool)
    labels = np.zeros(windows.shape[0], dtype=np.int64) if class_output is not None else None
    with torch.no_grad():
        for start in range(0, windows.shape[0], BATCH):
            batch = np.ascontiguousarray(windows[start : start + BATCH])
            if callable(screen):
                try:
                    latent = screen(torch.from_numpy(batch)).numpy()
                except Exception as exc:  # as in run_torch: a forward that fails on the declared shape
                    raise ExportError(f"the model fails on its declared input shape: {exc}") from exc
                eligible[start : start + len(batch)] = rounding_margin(latent) >= MIN_MARGIN
            if labels is not None and class_output is not None:
                scores = run_torch(model, batch, spec)[class_output.name]
                labels[start : start + len(batch)] = np.asarray(scores).reshape(len(batch), -1).argmax(axis=1)
    candidates = np.flatnonzero(eligible)
    if candidates.size < num_samples:
        raise ConfigError(
            f"export.reference.inputs {name}: only {candidates.size} of {windows.shape[0]} windows keep the "
            f"model's latent {MIN_MARGIN:g} from a rounding boundary; export.reference.num_samples asks for "
            f"{num_samples}"
        )
    return stratified_rows(candidates, None if labels is None else labels[candidates], num_samples, seed)


def stratified_rows(
    candidates: np.ndarray, labels: np.ndarray | None, num_samples: int, seed: int
) -> np.ndarray:
    """``num_samples`` of ``candidates`` (row numbers), seeded. With ``labels`` (each candidate's predicted
    class): round-robin over the classes present, in a seeded order, each class's rows in a seeded order, so
    every class gets ``num_samples // classes`` windows or all it has, and the others fill the rest evenly;
    the rows come in pick order (the first rows cover as many classes as they can). Without: uniform."""
    rng = np.random.default_rng(seed)
    candidates = np.asarray(candidates)
    if labels is None:
        return candidates[rng.permutation(candidates.size)[:num_samples]]
    classes = np.unique(labels)
    queues = [list(candidates[labels == c][rng.permutation(int((labels == c).sum()))]) for c in classes]
    order = rng.permutation(len(classes))
    picked: list[int] = []
    depth = 0
    while len(picked) < num_samples:
        for i in order:
            if depth < len(queues[i]) and len(picked) < num_samples:
                picked.append(int(queues[i][depth]))
        depth += 1
    return np.asarray(picked, dtype=np.int64)


def coverage(
    inputs: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    spec: ModelSpec,
    source: Mapping[str, Any],
    labels: Sequence[str] = (),
) -> dict[str, Any]:
    """What the golden set exercises: its source, the windows, per class output (``kind: probabilities``) the
    distinct classes predicted of how many and the largest class's share, per codes output the distinct codes
    and the largest code's share, input statistics, and ``degenerate``: why agreement on it proves little
    (empty when nothing does)."""
    n = int(inputs.shape[0])
    degenerate: list[str] = []
    classes: dict[str, Any] = {}
    codes: dict[str, Any] = {}
    constant: list[str] = []
    for o in spec.outputs:
        arr = np.asarray(outputs[o.name]).reshape(n, -1)
        if n and _constant(arr):
            constant.append(o.name)
            degenerate.append(f"{o.name} is the same on all {n} windows")
        if o.kind in CLASS_KINDS:
            predicted = arr.argmax(axis=1)
            found, counts = np.unique(predicted, return_counts=True)
            names = [labels[c] if arr.shape[1] == len(labels) else str(c) for c in found.tolist()]
            top = int(counts.argmax()) if n else 0
            share = float(counts[top]) / n if n else 0.0
            classes[o.name] = {
                "distinct": int(found.size),
                "of": int(arr.shape[1]),
                "largest_share": round(share, 4),
                "counts": {name: int(k) for name, k in zip(names, counts.tolist(), strict=True)},
            }
            if n and share >= DEGENERATE_SHARE and o.name not in constant:
                degenerate.append(
                    f"{o.name}: class {names[top]} is {int(counts[top])} of {n} windows ({share:.0%})"
                )
        elif o.kind == "codes":
            found, counts = np.unique(arr, return_counts=True)
            top = int(counts.argmax()) if n else 0
            share = float(counts[top]) / arr.size if arr.size else 0.0
            codes[o.name] = {
                "distinct": int(found.size),
                "of": o.num_codes,
                "largest_share": round(share, 4),
                "most_common": int(found[top]) if found.size else None,
            }
            if n and share >= DEGENERATE_SHARE and o.name not in constant:
                of = f"{n} windows" if arr.size == n else f"{arr.size} codes"
                degenerate.append(
                    f"{o.name}: code {int(found[top])} is {int(counts[top])} of {of} ({share:.0%}): a "
                    "constant answer would agree as often"
                )
    x = np.asarray(inputs, dtype=np.float64)
    return {
        "source": dict(source),
        "windows": n,
        "classes": classes,
        "codes": codes,
        "input": {
            "mean": _figure(x.mean()),
            "std": _figure(x.std()),
            "min": _figure(x.min()),
            "max": _figure(x.max()),
        },
        "degenerate": degenerate,
    }


def describe_degenerate(cov: Mapping[str, Any]) -> str | None:
    """One line for a degenerate golden set (the create warning, the reports' warning), None when it is not."""
    reasons = list(cov.get("degenerate") or [])
    if not reasons:
        return None
    source = cov.get("source") or {}
    if source.get("kind") == "file":
        where = f"{cov.get('windows')} windows from {source.get('file')}"
        hint = "agreement on it proves little (give windows the model tells apart)"
    else:
        where = f"{cov.get('windows')} windows, {source.get('description') or 'random'}"
        hint = "agreement on it proves little (give real windows: export.reference.inputs)"
    return f"golden set coverage is degenerate ({where}): {'; '.join(map(str, reasons))}; {hint}"


def _constant(arr: np.ndarray) -> bool:
    if arr.dtype.kind in "iub":
        return bool((arr == arr[:1]).all())
    return bool(np.allclose(arr, arr[:1], rtol=1e-6, atol=1e-7))


def _figure(value: Any) -> float:
    return float(f"{float(value):.6g}")


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
