"""A fake of the Hailo Dataflow Compiler's Python API (``hailo_sdk_client``), for tests only.

It behaves like the documented ``ClientRunner``: ``translate_onnx_model`` parses the ONNX and checks the
start/end node names and input shapes, ``load_model_script`` takes the script text, ``optimize`` takes an
NHWC float32 calibration array, ``compile`` returns the bytes of a HEF (header version 0, MD5) whose
header names the architecture and whose network group is the ``net_name``. Self-contained (stdlib, numpy,
onnx): it runs in a child process that cannot import the project's tests.

``FAKE_HAILO_FAIL=translate|optimize|compile`` makes that step raise, as the real one does on bad input.
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import Any

__version__ = "3.27.0"

_ARCH_IDS = {
    "hailo8": 1,
    "hailo8r": 2,
    "hailo8l": 3,
    "hailo15m": 4,
    "hailo10h": 5,
    "hailo15l": 6,
    "hailo15h": 103,
}


class ClientRunner:
    def __init__(self, hw_arch: str = "hailo8", har: Any = None) -> None:
        if hw_arch not in _ARCH_IDS:
            raise ValueError(f"Unsupported hw_arch {hw_arch}")
        self._hw_arch = hw_arch
        self._net: str | None = None
        self._shape: list[int] | None = None
        self._script: str | None = None
        self._optimized = False

    def _maybe_fail(self, step: str) -> None:
        if os.environ.get("FAKE_HAILO_FAIL") == step:
            raise RuntimeError(f"fake DFC: {step} failed: UnsupportedModelError in op /Sub")

    def translate_onnx_model(
        self,
        model: str,
        net_name: str,
        start_node_names: list[str] | None = None,
        end_node_names: list[str] | None = None,
        net_input_shapes: dict[str, list[int]] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        import onnx

        self._maybe_fail("translate")
        graph = onnx.load(model).graph
        nodes = {n.name for n in graph.node}
        inputs = {i.name for i in graph.input}
        for name in end_node_names or []:
            if name not in nodes:
                raise ValueError(f"end node {name!r} not found in the ONNX graph")
        for name in start_node_names or []:
            if name not in nodes | inputs:
                raise ValueError(f"start node {name!r} not found in the ONNX graph")
        if any(n.op_type in ("Round", "ArgMax") for n in graph.node):
            raise ValueError("UnsupportedOperationError: Round/ArgMax cannot be parsed")
        shapes = net_input_shapes or {}
        if len(shapes) != 1 or next(iter(shapes.values()))[0] != 1:
            raise ValueError(f"net_input_shapes must give one input with batch 1, got {shapes}")
        self._net, self._shape = net_name, list(next(iter(shapes.values())))
        return "{}", {}

    def load_model_script(self, model_script: str) -> None:
        if self._net is None:
            raise RuntimeError("load_model_script before translate_onnx_model")
        self._script = model_script

    def optimize(self, calib_data: Any) -> None:
        import numpy as np

        self._maybe_fail("optimize")
        if self._shape is None:
            raise RuntimeError("optimize before translate_onnx_model")
        _, c, h, w = self._shape
        if not isinstance(calib_data, np.ndarray) or calib_data.dtype != np.float32:
            raise TypeError("calib_data must be a float32 numpy array")
        if calib_data.ndim != 4 or tuple(calib_data.shape[1:]) != (h, w, c):
            raise ValueError(f"calibration shape {calib_data.shape} is not NHWC (N, {h}, {w}, {c})")
        self._optimized = True

    def compile(self) -> bytes:
        self._maybe_fail("compile")
        if not self._optimized or self._net is None:
            raise RuntimeError("compile before optimize")
        return make_hef(_ARCH_IDS[self._hw_arch], self._net, __version__)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def make_hef(arch_id: int, net_name: str, sdk_version: str) -> bytes:
    """A version-0 HEF: magic, version, proto size, reserved, MD5 of the proto; then the proto."""
    header = (
        _varint(1 << 3) + _varint(arch_id) + _field(3, sdk_version.encode()) + _varint(4 << 3) + _varint(4)
    )
    group = _field(1, _field(1, net_name.encode()))
    proto = _field(1, header) + _field(2, group)
    return struct.pack(">4sIII16s", b"\x01HEF", 0, len(proto), 0, hashlib.md5(proto).digest()) + proto
