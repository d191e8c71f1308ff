"""A fake of HailoRT's Python API (``hailo_platform``), for tests only.

It follows the calls of HailoRT's documented example (``HEF``, ``VDevice``, ``ConfigureParams.create_from_hef``,
``InputVStreamParams.make`` / ``OutputVStreamParams.make`` with ``FormatType.FLOAT32``, ``InferVStreams``,
``network_group.activate``, ``get_hw_time``) and ``HEF.get_original_names_from_vstream_name``. Its "device"
is the kit's device ONNX in onnxruntime, with HailoRT's arithmetic around it: a FLOAT32 input is quantized
with the input vstream's ``qp_scale`` / ``qp_zp`` and dequantized into the network, every output is
quantized to its vstream's integer format and, for FLOAT32 output params, dequantized again.

The vstream infos (names, NHWC shapes, formats, quantization parameters, original layer names) and the
path of the device ONNX are read from the HEF itself: a JSON blob in body field 1000, which the tests write
and which no real HEF holds. Self-contained (stdlib, numpy, onnxruntime): it runs in a child process.

``FAKE_HAILORT_DEVICE`` says what answers: unset or ``none`` -> no device (``VDevice()`` raises, as HailoRT
does with HAILO_OUT_OF_PHYSICAL_DEVICES); ``faithful`` -> the arithmetic above; ``wrong`` -> the class
logits of each frame come back with those of the next frame (a device that mixes up its buffers); ``zeros``
-> every output is zero (a device that computes nothing).

The VDevice scheduler is on by default (``VDevice.create_params().scheduling_algorithm`` ROUND_ROBIN), as in
HailoRT since 4.x: a scheduled network group infers without ``activate()``, and this fake's ``activate()`` on
it raises what HailoRT's deprecation warning says it will ("on future versions this call will raise an
error"). ``FAKE_HAILORT_SCHEDULER=none`` gives the older behaviour: no scheduler, ``activate()`` required.
``get_hw_time()`` is wall-clock time around the inference, as HailoRT's is (a host timer, not the device's).
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import struct
import time
from typing import Any

import numpy as np

_HEADER_SIZES = {0: 32, 1: 28, 2: 44, 3: 56}
_BLOB_FIELD = 1000


class HailoRTException(Exception):
    pass


class FormatType(enum.Enum):
    AUTO = 0
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3


class HailoSchedulingAlgorithm(enum.Enum):
    NONE = 0
    ROUND_ROBIN = 1


class VDeviceParams:
    def __init__(self) -> None:
        none = os.environ.get("FAKE_HAILORT_SCHEDULER", "") == "none"
        self.scheduling_algorithm = (
            HailoSchedulingAlgorithm.NONE if none else HailoSchedulingAlgorithm.ROUND_ROBIN
        )


class HailoStreamInterface(enum.Enum):
    PCIe = 0
    ETH = 1


class QuantInfo:
    def __init__(self, qp_scale: float, qp_zp: float) -> None:
        self.qp_scale, self.qp_zp = float(qp_scale), float(qp_zp)


class VStreamFormat:
    def __init__(self, type_: FormatType) -> None:
        self.type = type_


class VStreamInfo:
    def __init__(self, d: dict[str, Any]) -> None:
        self.name = d["name"]
        self.shape = tuple(d["shape"])
        self.format = VStreamFormat(FormatType[d.get("format", "UINT8")])
        self.quant_info = QuantInfo(d["qp_scale"], d["qp_zp"])
        self.original_names = list(d.get("original_names", []))
        self.onnx = d.get("onnx")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        byte = buf[pos]
        result |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return result, pos


def _blob(data: bytes) -> dict[str, Any]:
    if data[:4] != b"\x01HEF":
        raise HailoRTException("Invalid HEF. See hailort.log for more information")
    version, proto_size = struct.unpack(">II", data[4:12])
    start = _HEADER_SIZES[version]
    proto, pos = data[start : start + proto_size], 0
    while pos < len(proto):
        key, pos = _varint(proto, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(proto, pos)
        elif wire == 2:
            length, pos = _varint(proto, pos)
            if field == _BLOB_FIELD:
                return json.loads(proto[pos : pos + length])
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise HailoRTException("Invalid HEF. See hailort.log for more information")
    raise HailoRTException("fake HEF: no vstream description (body field 1000)")


class HEF:
    def __init__(self, hef_source: str) -> None:
        with open(hef_source, "rb") as f:
            blob = _blob(f.read())
        self._net = blob["network_group"]
        self._onnx = blob["onnx"]
        self._inputs = [VStreamInfo(d) for d in blob["inputs"]]
        self._outputs = [VStreamInfo(d) for d in blob["outputs"]]

    def get_network_group_names(self) -> list[str]:
        return [self._net]

    def get_input_vstream_infos(self, network_name: str | None = None) -> list[VStreamInfo]:
        return list(self._inputs)

    def get_output_vstream_infos(self, network_name: str | None = None) -> list[VStreamInfo]:
        return list(self._outputs)

    def get_original_names_from_vstream_name(
        self, vstream_name: str, network_group_name: str | None = None
    ) -> list[str]:
        for info in self._outputs + self._inputs:
            if info.name == vstream_name:
                return list(info.original_names)
        raise HailoRTException("Item not found. See hailort.log for more information")


class ConfigureParams:
    @staticmethod
    def create_from_hef(hef: HEF, interface: HailoStreamInterface) -> dict[str, Any]:
        if not isinstance(interface, HailoStreamInterface):
            raise TypeError("interface must be a HailoStreamInterface")
        return {name: {"interface": interface} for name in hef.get_network_group_names()}


class _VStreamParams:
    def __init__(self, quantized: bool, format_type: FormatType | None) -> None:
        self.quantized, self.format_type = quantized, format_type or FormatType.AUTO


def _make(infos: list[VStreamInfo], quantized: bool, format_type: FormatType | None) -> dict[str, Any]:
    return {info.name: _VStreamParams(quantized, format_type) for info in infos}


class ConfiguredNetwork:
    def __init__(self, hef: HEF, scheduled: bool = False) -> None:
        self.hef, self.name, self.active = hef, hef.get_network_group_names()[0], False
        self.scheduled = scheduled

    def create_params(self) -> dict[str, Any]:
        return {}

    @contextlib.contextmanager
    def activate(self, network_group_params: Any = None) -> Any:
        if self.scheduled:
            raise HailoRTException(
                "Calls to `activate()` when working with scheduler are deprecated! On future versions this call "
                "will raise an error."
            )
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    def get_input_vstream_infos(self, network_name: str | None = None) -> list[VStreamInfo]:
        return self.hef.get_input_vstream_infos()

    def get_output_vstream_infos(self, network_name: str | None = None) -> list[VStreamInfo]:
        return self.hef.get_output_vstream_infos()


class InputVStreamParams:
    @staticmethod
    def make(
        configured_network: ConfiguredNetwork,
        quantized: bool = True,
        format_type: FormatType | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        return _make(configured_network.get_input_vstream_infos(), quantized, format_type)


class OutputVStreamParams:
    @staticmethod
    def make(
        configured_network: ConfiguredNetwork,
        quantized: bool = True,
        format_type: FormatType | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        return _make(configured_network.get_output_vstream_infos(), quantized, format_type)


class VDevice:
    def __init__(self, params: VDeviceParams | None = None) -> None:
        self.mode = os.environ.get("FAKE_HAILORT_DEVICE", "none")
        if self.mode in ("", "none"):
            raise HailoRTException("libhailort failed with error: 74 (HAILO_OUT_OF_PHYSICAL_DEVICES)")
        algorithm = (params or VDeviceParams()).scheduling_algorithm
        self.scheduled = algorithm != HailoSchedulingAlgorithm.NONE

    @staticmethod
    def create_params() -> VDeviceParams:
        return VDeviceParams()

    def __enter__(self) -> VDevice:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def configure(self, hef: HEF, configure_params: Any = None) -> list[ConfiguredNetwork]:
        if not configure_params or hef.get_network_group_names()[0] not in configure_params:
            raise HailoRTException("Invalid argument. See hailort.log for more information")
        network = ConfiguredNetwork(hef, scheduled=self.scheduled)
        network.mode = self.mode  # type: ignore[attr-defined]
        return [network]


_LIMITS = {FormatType.UINT8: 255, FormatType.UINT16: 65535}


def _quantize(x: np.ndarray, info: VStreamInfo) -> np.ndarray:
    q = np.rint(x / info.quant_info.qp_scale + info.quant_info.qp_zp)
    return np.clip(q, 0, _LIMITS[info.format.type])


def _dequantize(q: np.ndarray, info: VStreamInfo) -> np.ndarray:
    return ((q - info.quant_info.qp_zp) * info.quant_info.qp_scale).astype(np.float32)


class InferVStreams:
    def __init__(
        self, configured_net_group: ConfiguredNetwork, input_vstreams_params: Any, output_vstreams_params: Any
    ) -> None:
        self._net, self._in, self._out = configured_net_group, input_vstreams_params, output_vstreams_params
        self._hw_time: float | None = None

    def __enter__(self) -> InferVStreams:
        import onnxruntime as ort

        self._session = ort.InferenceSession(self._net.hef._onnx, providers=["CPUExecutionProvider"])
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def infer(self, input_data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not (self._net.active or self._net.scheduled):
            raise HailoRTException("Network group is not activated")
        (info,) = self._net.get_input_vstream_infos()
        frames = input_data[info.name]
        if frames.dtype != np.float32 or self._in[info.name].format_type != FormatType.FLOAT32:
            raise HailoRTException(f"{info.name} numpy array item size is {frames.dtype.itemsize}, not 4")
        if tuple(frames.shape[1:]) != info.shape:
            raise HailoRTException(f"Input buffer size is different than expected for input '{info.name}'")
        start = time.perf_counter()
        seen = _dequantize(_quantize(frames, info), info)  # what the device sees of the float input
        name = self._session.get_inputs()[0].name
        rows = [
            self._session.run(None, {name: seen[i : i + 1].transpose(0, 3, 1, 2)}) for i in range(len(seen))
        ]
        onnx_names = [o.name for o in self._session.get_outputs()]
        out: dict[str, np.ndarray] = {}
        for vinfo in self._net.get_output_vstream_infos():
            value = np.concatenate([r[onnx_names.index(vinfo.onnx)] for r in rows])
            if self._net.mode == "wrong" and vinfo.onnx == "class_logits":  # type: ignore[attr-defined]
                value = np.roll(value, 1, axis=0)
            if self._net.mode == "zeros":  # type: ignore[attr-defined]
                value = np.zeros_like(value)
            q = _quantize(value.reshape((len(seen), *vinfo.shape)), vinfo)
            params = self._out[vinfo.name]
            out[vinfo.name] = (
                _dequantize(q, vinfo) if params.format_type == FormatType.FLOAT32 else q.astype(np.uint16)
            )
        self._hw_time = time.perf_counter() - start
        return out

    def get_hw_time(self) -> float | None:
        return self._hw_time
