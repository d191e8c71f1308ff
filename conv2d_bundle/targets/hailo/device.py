"""Run a HEF on a Hailo device through HailoRT's Python API (``hailo_platform``), where both are here.

The calls follow HailoRT's own Python example (hailort repository,
``hailort/libhailort/bindings/python/examples/hef_infer_pipeline_vstream.py``): ``HEF(path)``; ``VDevice()``
as a context manager; ``ConfigureParams.create_from_hef(hef, interface=HailoStreamInterface.PCIe)``;
``device.configure(hef, params)[0]``; ``InputVStreamParams.make(network_group, quantized=False,
format_type=FormatType.FLOAT32)`` and the same for the outputs, so that HailoRT quantizes the float input and
dequantizes the outputs with the HEF's own quantization parameters; ``InferVStreams(network_group, in, out)``
as a context manager whose ``infer({input name: NHWC batch})`` runs. The VDevice scheduler is on by default
(``VDevice.create_params().scheduling_algorithm`` ROUND_ROBIN): a scheduled network group is not activated
(HailoRT: "Calls to `activate()` when working with scheduler are deprecated! On future versions this call will
raise an error"); only where the scheduler is off (or this HailoRT has none) does inference run inside
``network_group.activate(network_group.create_params())``. ``InferVStreams.get_hw_time()`` is host wall-clock
time around the native call (pyhailort), not a device timer: the report calls it that. Output vstreams are matched to the kit's device outputs through ``HEF.get_original_names_from_vstream_name``
(pyhailort: the original layer names of a vstream), which are the ONNX nodes the kit passed as
``--end-node-names``.

numpy only besides ``hailo_platform``: no torch, no onnxruntime.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conv2d_bundle.errors import HefError
from conv2d_bundle.targets.hailo import DEVICE_ONNX
from conv2d_bundle.targets.onnx.graph import not_static

NEEDS = "needs a Hailo device with HailoRT"


class DeviceUnavailable(Exception):
    """HailoRT's Python API is not importable here, or no Hailo device answered: the checks are not run."""


@dataclass(frozen=True)
class DeviceOutput:
    """One of the kit's device outputs: its name, the ONNX node that ends it, its ONNX shape (batch 1)."""

    name: str
    end_node: str
    shape: tuple[int, ...]


class HefSession:
    """A HEF configured on a device, ready to run batches of NHWC float32 windows."""

    def __init__(self, hef: Any, network_group: Any, pipeline: Any, outputs: Sequence[DeviceOutput]) -> None:
        self._hef, self._network_group, self._pipeline = hef, network_group, pipeline
        inputs = list(hef.get_input_vstream_infos())
        if len(inputs) != 1:
            raise HefError(f"the HEF has {len(inputs)} input vstreams, the kit's model has one")
        self.input_name = str(inputs[0].name)
        self.input_shape = tuple(int(d) for d in inputs[0].shape)
        self.vstreams = match_outputs(hef, outputs)
        self._outputs = {o.name: o for o in outputs}
        self.last_hw_time_s: float | None = None  # get_hw_time(): host wall-clock around the native call
        self.scheduler: str | None = None  # the VDevice scheduler's algorithm, None: off (activated instead)

    def infer(self, nhwc: np.ndarray) -> dict[str, np.ndarray]:
        """The device outputs for ``nhwc`` (N, H, W, C), by the kit's output names, in the ONNX layout."""
        if tuple(nhwc.shape[1:]) != self.input_shape:
            raise HefError(
                f"the HEF's input vstream {self.input_name} is {list(self.input_shape)} (NHWC), the golden "
                f"windows are {list(nhwc.shape[1:])}"
            )
        raw = self._pipeline.infer({self.input_name: np.ascontiguousarray(nhwc, dtype=np.float32)})
        hw_time = self._pipeline.get_hw_time()
        self.last_hw_time_s = float(hw_time) if hw_time is not None else None
        out = {}
        for vstream, name in self.vstreams.items():
            if vstream not in raw:
                raise HefError(f"the device returned no {vstream} (returned {sorted(raw)})")
            out[name] = to_onnx_layout(np.asarray(raw[vstream]), self._outputs[name].shape, vstream)
        return out


def match_outputs(hef: Any, outputs: Sequence[DeviceOutput]) -> dict[str, str]:
    """Output vstream name -> the kit's device output it carries, by the vstream's original layer names."""
    by_node = {o.end_node: o.name for o in outputs}
    found: dict[str, str] = {}
    seen: dict[str, list[str]] = {}
    for info in hef.get_output_vstream_infos():
        originals = [str(n) for n in hef.get_original_names_from_vstream_name(info.name)]
        seen[str(info.name)] = originals
        hits = [by_node[n] for n in originals if n in by_node]
        if hits:
            found[str(info.name)] = hits[0]
    missing = [o.name for o in outputs if o.name not in found.values()]
    if missing:
        raise HefError(
            f"no output vstream of the HEF carries {missing} (end nodes "
            f"{[o.end_node for o in outputs if o.name in missing]}); its vstreams and their original names: {seen}"
        )
    return found


def to_onnx_layout(array: np.ndarray, onnx_shape: Sequence[int], what: str) -> np.ndarray:
    """A vstream's (N, H, W, C) or flat (N, ...) frames in the ONNX output's layout (N, *onnx_shape[1:])."""
    n, tail = int(array.shape[0]), tuple(int(d) for d in onnx_shape[1:])
    if len(tail) == 3 and array.ndim == 4 and tuple(array.shape[1:]) == (tail[1], tail[2], tail[0]):
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2), dtype=np.float32)
    if array.size != n * int(np.prod(tail, dtype=np.int64)):
        raise HefError(
            f"{what}: frames of shape {list(array.shape[1:])} do not hold the ONNX output {list(tail)}"
        )
    return array.reshape((n, *tail)).astype(np.float32)


@contextlib.contextmanager
def open_hef(hef_path: Path, outputs: Sequence[DeviceOutput]) -> Iterator[HefSession]:
    """Configure ``hef_path`` on a Hailo device; DeviceUnavailable (with the reason) where HailoRT is not
    importable or no device answers, HefError where HailoRT refuses the HEF."""
    try:
        import hailo_platform as hp
    except ImportError as exc:
        raise DeviceUnavailable(f"hailo_platform (HailoRT's Python API) is not importable: {exc}") from exc
    try:
        hef = hp.HEF(str(hef_path))
    except Exception as exc:  # HailoRT raises its own exception family; any of them: it refuses the file
        raise HefError(f"HailoRT cannot load the HEF: {type(exc).__name__}: {exc}") from exc
    params = _vdevice_params(hp)
    try:
        device = hp.VDevice(params) if params is not None else hp.VDevice()
    except Exception as exc:  # HAILO_OUT_OF_PHYSICAL_DEVICES, a driver error, ...: nothing to run on
        raise DeviceUnavailable(f"no Hailo device answered: {type(exc).__name__}: {exc}") from exc
    scheduler = scheduler_of(hp, params)
    with contextlib.ExitStack() as stack:
        stack.enter_context(device)
        try:
            params = hp.ConfigureParams.create_from_hef(hef, interface=hp.HailoStreamInterface.PCIe)
            network_group = device.configure(hef, params)[0]
            in_params = hp.InputVStreamParams.make(
                network_group, quantized=False, format_type=hp.FormatType.FLOAT32
            )
            out_params = hp.OutputVStreamParams.make(
                network_group, quantized=False, format_type=hp.FormatType.FLOAT32
            )
            pipeline = stack.enter_context(hp.InferVStreams(network_group, in_params, out_params))
            if scheduler is None:  # no scheduler: the network group runs only while activated
                stack.enter_context(network_group.activate(network_group.create_params()))
        except Exception as exc:  # configuring is HailoRT's judgement of the HEF on this device
            raise HefError(
                f"HailoRT could not configure the HEF on the device: {type(exc).__name__}: {exc}"
            ) from exc
        session = HefSession(hef, network_group, pipeline, outputs)
        session.scheduler = scheduler
        yield session


def _vdevice_params(hp: Any) -> Any:
    """``VDevice.create_params()`` where this HailoRT has it (None where it does not: its default device)."""
    create = getattr(getattr(hp, "VDevice", None), "create_params", None)
    return create() if callable(create) else None


def scheduler_of(hp: Any, params: Any) -> str | None:
    """The VDevice's scheduling algorithm's name when the scheduler is on (``ROUND_ROBIN``), None when it is
    off or this HailoRT has no scheduler (then the network group must be activated)."""
    algorithm = getattr(params, "scheduling_algorithm", None)
    none = getattr(getattr(hp, "HailoSchedulingAlgorithm", None), "NONE", None)
    if algorithm is None or none is None or algorithm == none:
        return None
    return str(getattr(algorithm, "name", algorithm))


def benchmark(session: HefSession, nhwc: np.ndarray, runs: int, batch: int) -> dict[str, Any]:
    """Single-window latency (p50/p99 of ``runs`` wall-clock calls from Python, and HailoRT's
    ``get_hw_time()``: host wall-clock time around the native call, which leaves the Python overhead out but is
    not a device timer) and the throughput of ``batch``-window calls."""
    one = nhwc[:1]
    for _ in range(5):  # warm-up
        session.infer(one)
    wall, device = [], []
    for _ in range(runs):
        start = time.perf_counter()
        session.infer(one)
        wall.append(time.perf_counter() - start)
        if session.last_hw_time_s is not None:
            device.append(session.last_hw_time_s)
    frames = np.concatenate([nhwc] * -(-batch // nhwc.shape[0]))[:batch]
    start = time.perf_counter()
    session.infer(frames)
    elapsed = time.perf_counter() - start
    figures: dict[str, Any] = {
        "latency_p50_us": round(float(np.percentile(wall, 50)) * 1e6, 1),
        "latency_p99_us": round(float(np.percentile(wall, 99)) * 1e6, 1),
        "latency_runs": runs,
        "throughput_batch": int(frames.shape[0]),
        "throughput_windows_per_s": round(frames.shape[0] / elapsed, 1) if elapsed > 0 else None,
    }
    if device:
        figures["hailort_hw_time_p50_us"] = round(float(np.percentile(device, 50)) * 1e6, 1)
    hw = session.last_hw_time_s
    if hw:
        figures["hailort_hw_time_throughput_windows_per_s"] = round(frames.shape[0] / hw, 1)
    if device or hw:
        figures["hailort_hw_time_is"] = (
            "host wall-clock time around HailoRT's native infer call, not a device timer"
        )
    return figures


def device_outputs(meta: Mapping[str, Any], onnx_shapes: Mapping[str, Sequence[Any]]) -> list[DeviceOutput]:
    """The kit's device outputs from ``formats.hailo`` (``device_outputs`` with their ``end_node_names``).
    ``onnx_shapes`` are the device ONNX's output shapes as :func:`conv2d_bundle.targets.onnx.graph.dims` reads
    them: a symbolic axis is a HefError naming it, never a ValueError from ``int('N')``."""
    names, ends = list(meta.get("device_outputs") or []), list(meta.get("end_node_names") or [])
    if not names or len(names) != len(ends):
        raise HefError(
            f"metadata.json formats.hailo: device_outputs {names} and end_node_names {ends} do not pair up"
        )
    missing = [n for n in names if n not in onnx_shapes]
    if missing:
        raise HefError(f"the kit's device ONNX has no outputs {missing}")
    bad = [
        f"output {n} has {', '.join(dict.fromkeys(p))}" for n in names if (p := not_static(onnx_shapes[n]))
    ]
    if bad:
        raise HefError(f"{DEVICE_ONNX} {'; '.join(bad)}: the device part must be static")
    return [
        DeviceOutput(n, e, tuple(int(d) for d in onnx_shapes[n])) for n, e in zip(names, ends, strict=True)
    ]
