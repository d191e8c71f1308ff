"""Row 10: the exported ONNX single-window latency (p50, p99) vs torch eager on the same window."""

from __future__ import annotations

import json
import subprocess

from bench import Row
from bench.timing import PYTHON, BenchError, child_env
from bench.workspace import EXAMPLE_CONFIG, EXAMPLE_MODEL, Workspace

# One process, both runtimes, interleaved in blocks of 50 calls so that machine noise hits both alike.
LATENCY = """\
import json, sys, time
from pathlib import Path
import numpy as np, onnxruntime as ort, torch
from conv2d_bundle.config import load_config
from conv2d_bundle.models.loading import load_model
bundle, iters = sys.argv[3], int(sys.argv[4])
model = load_model(load_config(sys.argv[1]).model, Path(sys.argv[2])).eval()
opts = ort.SessionOptions()
opts.log_severity_level = 3
sess = ort.InferenceSession(bundle + "/models/model.onnx", opts, providers=["CPUExecutionProvider"])
x = np.load(bundle + "/reference/inputs.npy")[:1]
xt = torch.from_numpy(x)
def run_onnx():
    sess.run(None, {"imu_input": x})
def run_torch():
    with torch.inference_mode():
        model(xt)
times = {"onnx": [], "torch": []}
for fn in (run_onnx, run_torch):
    for _ in range(50):
        fn()
for _ in range(iters // 50):
    for name, fn in (("onnx", run_onnx), ("torch", run_torch)):
        for _ in range(50):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
print(json.dumps({k: [float(np.percentile(v, 50)), float(np.percentile(v, 99))] for k, v in times.items()}))
"""


def rows_latency(ws: Workspace, iters: int) -> list[Row]:
    script = ws.script("latency.py", LATENCY)
    proc = subprocess.run(
        [PYTHON, str(script), str(EXAMPLE_CONFIG), str(EXAMPLE_MODEL), str(ws.bundle), str(iters)],
        capture_output=True,
        text=True,
        env=child_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"latency script failed: {proc.stderr.strip()[-400:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    (o50, o99), (t50, t99) = r["onnx"], r["torch"]
    ratio = o50 / t50
    return [
        Row(
            "latency", "ONNX single-window latency p50 / p99 (onnxruntime)", "torch eager, same window",
            f"{o50 * 1e6:.0f} / {o99 * 1e6:.0f} us", f"{t50 * 1e6:.0f} / {t99 * 1e6:.0f} us", ratio,
            "ONNX faster (< 1x)", o50 < t50 and o99 < t99,
            f"{iters} calls each, interleaved in blocks of 50; ratio is p50 ONNX / p50 torch",
        )
    ]  # fmt: skip
