"""Drive the Hailo Dataflow Compiler (``hailo_sdk_client``) where it is installed.

The DFC runs in a child process (``python -m conv2d_bundle.targets.hailo.dfc``), so a hung compile is
stopped by a timeout and the DFC's heavy imports never enter the caller. The child follows the documented
Python API: ``ClientRunner(hw_arch=...)``, ``translate_onnx_model``, ``load_model_script``,
``optimize(calib)``, ``compile()`` -> HEF bytes, and prints one JSON line with the DFC version.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conv2d_bundle.errors import ExportError

DEFAULT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class CompileRequest:
    onnx: Path
    calib: Path
    script: Path
    hef: Path
    net_name: str
    hw_arch: str
    input_name: str
    input_shape: tuple[int, ...]  # NCHW, batch 1
    end_nodes: tuple[str, ...]


def dfc_available() -> bool:
    """Whether the Hailo DFC's Python package imports here (the ``hailo`` CLI alone is not enough)."""
    try:
        return importlib.util.find_spec("hailo_sdk_client") is not None
    except (ImportError, ValueError):
        return False


def run_dfc(request: CompileRequest, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Compile in a child process; return the DFC version. ExportError carries the compiler's own text."""
    args = [
        sys.executable,
        "-m",
        "conv2d_bundle.targets.hailo.dfc",
        "--onnx", str(request.onnx),
        "--calib", str(request.calib),
        "--script", str(request.script),
        "--hef", str(request.hef),
        "--net-name", request.net_name,
        "--hw-arch", request.hw_arch,
        "--input-name", request.input_name,
        "--input-shape", ",".join(map(str, request.input_shape)),
        "--end-nodes", json.dumps(list(request.end_nodes)),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, check=False, env=os.environ.copy()
        )
    except subprocess.TimeoutExpired as exc:
        raise ExportError(f"the Hailo DFC did not finish within {timeout:g} s") from exc
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        raise ExportError(f"the Hailo DFC failed (exit {done.returncode}): {' | '.join(detail[-6:])[-1500:]}")
    try:
        return str(json.loads(done.stdout.strip().splitlines()[-1])["dfc_version"])
    except (IndexError, KeyError, ValueError) as exc:
        raise ExportError(f"the Hailo DFC runner printed no result: {done.stdout.strip()[-300:]!r}") from exc


def _dfc_version(module: object) -> str:
    version = getattr(module, "__version__", None)
    if version:
        return str(version)
    from importlib import metadata

    for dist in ("hailo-dataflow-compiler", "hailo_dataflow_compiler", "hailo_sdk_client"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def _child(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conv2d_bundle.targets.hailo.dfc")
    for opt in ("--onnx", "--calib", "--script", "--hef", "--net-name", "--hw-arch", "--input-name"):
        parser.add_argument(opt, required=True)
    parser.add_argument("--input-shape", required=True)
    parser.add_argument("--end-nodes", required=True)
    ns = parser.parse_args(argv)

    import hailo_sdk_client
    import numpy as np
    from hailo_sdk_client import ClientRunner

    shape = [int(d) for d in ns.input_shape.split(",")]
    runner = ClientRunner(hw_arch=ns.hw_arch)
    runner.translate_onnx_model(
        ns.onnx,
        ns.net_name,
        start_node_names=[ns.input_name],
        end_node_names=json.loads(ns.end_nodes),
        net_input_shapes={ns.input_name: shape},
    )
    runner.load_model_script(Path(ns.script).read_text())
    runner.optimize(np.load(ns.calib, allow_pickle=False))
    hef = runner.compile()
    Path(ns.hef).write_bytes(bytes(hef))
    print(json.dumps({"dfc_version": _dfc_version(hailo_sdk_client)}))
    return 0


if __name__ == "__main__":
    sys.exit(_child())
