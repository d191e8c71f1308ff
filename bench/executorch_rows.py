"""Rows 11-12: ExecuTorch single-window latency vs onnxruntime, and its export time vs the ONNX export.

Needs the ``executorch`` extra; without it the rows say so instead of a figure.
"""

from __future__ import annotations

import json
import subprocess

from bench import Row
from bench.timing import PYTHON, BenchError, child_env, fmt_s
from bench.workspace import EXAMPLE_CONFIG, EXAMPLE_MODEL, Workspace

# Both exporters in one process that imports torch and loads the checkpoint once; each export's own imports
# (torch.onnx, executorch.exir) are counted in its time, as a user's first export pays them. Then both
# runtimes on the same window, interleaved in blocks of 50 calls so that machine noise hits both alike.
SCRIPT = """\
import json, sys, tempfile, time
from pathlib import Path
import numpy as np
from conv2d_bundle import targets
from conv2d_bundle.lifecycle.create import BuildContext
from conv2d_bundle.config import load_config
from conv2d_bundle.models.loading import load_model
from conv2d_bundle.bundle.reference import make_reference
cfg = load_config(sys.argv[1])
model = load_model(cfg.model, Path(sys.argv[2])).eval()
ref = make_reference(model, cfg.model, num_samples=64, seed=0)
ctx = BuildContext(model, cfg, "0" * 12, Path(tempfile.mkdtemp(dir=sys.argv[3])), ref, True)
export = {}
for fmt in ("onnx", "executorch"):
    t = time.perf_counter()
    targets.by_format(fmt).export(ctx)
    export[fmt] = time.perf_counter() - t
import onnxruntime as ort
from executorch.runtime import Runtime
import torch
opts = ort.SessionOptions()
opts.log_severity_level = 3
sess = ort.InferenceSession(str(ctx.staging / "models/model.onnx"), opts, providers=["CPUExecutionProvider"])
method = Runtime.get().load_program(str(ctx.staging / "models/model.pte")).load_method("forward")
x = np.ascontiguousarray(ref.inputs[:1])
xt = torch.from_numpy(x)
def run_onnx():
    sess.run(None, {cfg.model.input_name: x})
def run_et():
    method.execute([xt])
times = {"onnx": [], "executorch": []}
for fn in (run_onnx, run_et):
    for _ in range(50):
        fn()
for _ in range(int(sys.argv[4]) // 50):
    for name, fn in (("onnx", run_onnx), ("executorch", run_et)):
        for _ in range(50):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
lat = {k: [float(np.percentile(v, 50)), float(np.percentile(v, 99))] for k, v in times.items()}
print(json.dumps({"export": export, "latency": lat}))
"""


_MEASURED: dict[int, list[Row]] = {}


def rows_executorch(ws: Workspace, iters: int, key: str) -> list[Row]:
    """Row ``key`` of the two, both from one run of the script (made once per workspace)."""
    if id(ws) not in _MEASURED:
        _MEASURED[id(ws)] = _measure(ws, iters)
    return [r for r in _MEASURED[id(ws)] if r.key == key]


def _measure(ws: Workspace, iters: int) -> list[Row]:
    import importlib.util

    if importlib.util.find_spec("executorch") is None:
        why = "executorch not installed: pip install -c constraints.txt '.[executorch]'"
        return [
            Row("executorch_latency", "ExecuTorch single-window latency p50 / p99", "onnxruntime, same window",
                "-", "-", None, "reported", None, why),
            Row("executorch_export", "ExecuTorch export (.pte + .bpte)", "the ONNX export, same process",
                "-", "-", None, "reported", None, why),
        ]  # fmt: skip
    script = ws.script("et_rows.py", SCRIPT)  # not executorch.py: it would shadow the package
    proc = subprocess.run(
        [
            PYTHON,
            str(script),
            str(EXAMPLE_CONFIG),
            str(EXAMPLE_MODEL),
            str(ws.scratch("executorch")),
            str(iters),
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"executorch script failed: {proc.stderr.strip()[-1500:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    (e50, e99), (o50, o99) = r["latency"]["executorch"], r["latency"]["onnx"]
    et, ot = r["export"]["executorch"], r["export"]["onnx"]
    return [
        Row(
            "executorch_latency", "ExecuTorch single-window latency p50 / p99 (XNNPACK, Python runtime)",
            "onnxruntime, same window", f"{e50 * 1e6:.0f} / {e99 * 1e6:.0f} us",
            f"{o50 * 1e6:.0f} / {o99 * 1e6:.0f} us", e50 / o50, "reported", None,
            f"{iters} calls each, interleaved in blocks of 50; ratio is p50 ExecuTorch / p50 onnxruntime",
        ),
        Row(
            "executorch_export", "ExecuTorch export (.pte + .bpte, imports included)",
            "the ONNX export (imports included), same process", fmt_s(et), fmt_s(ot), et / ot, "reported", None,
            "both after the same torch import and checkpoint load",
        ),
    ]  # fmt: skip
