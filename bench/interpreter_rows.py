"""Row ``interpreter``: the ML Program reference interpreter (``targets/ios/mil.py``, numpy) running the example's
Core ML program on the 64 golden windows, vs onnxruntime running the example's ONNX model on the same batch.

What iOS parity costs on a host without Core ML: the interpreter is a reference, not a runtime, so no goal is
set; the row records its speed (and how far its outputs are from onnxruntime's) so that a change that makes
it much slower, or different, shows.
"""

from __future__ import annotations

import json
import subprocess

from bench import Row
from bench.timing import PYTHON, BenchError, child_env, fmt_s
from bench.workspace import EXAMPLE_CONFIG, EXAMPLE_MODEL, Workspace

# The program is exported once as create exports it (ML Program, iOS 15, fp32), then both engines run the same
# 64 windows, interleaved (interpreter, onnxruntime, interpreter, ...) after one warm-up call each.
SCRIPT = """\
import json, statistics, sys, time
from pathlib import Path
import numpy as np, onnxruntime as ort
from conv2d_bundle.config import load_config
from conv2d_bundle.models.loading import load_model
from conv2d_bundle.targets.ios.export import _converter_output_to_log, export_coreml
cfg = load_config(sys.argv[1])
bundle, package, repeats = Path(sys.argv[3]), Path(sys.argv[4]) / "coreml.mlpackage", int(sys.argv[5])
spec = cfg.model
export_coreml(load_model(spec, Path(sys.argv[2])).eval(), spec.input_shape, package,
              input_name=spec.input_name, output_names=spec.output_names)
with _converter_output_to_log():
    from conv2d_bundle.targets.ios import mil
    t = time.perf_counter()
    program = mil.load_program(package)
    load = time.perf_counter() - t
opts = ort.SessionOptions()
opts.log_severity_level = 3
sess = ort.InferenceSession(str(bundle / "models/model.onnx"), opts, providers=["CPUExecutionProvider"])
x = np.load(bundle / "reference/inputs.npy")[:64]
feed = {spec.input_name: x}
runs = {"mil": lambda: program.run(feed), "ort": lambda: dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))}
times = {k: [] for k in runs}
got = {k: fn() for k, fn in runs.items()}
for _ in range(repeats):
    for name, fn in runs.items():
        t = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - t)
diff = max(float(np.abs(got["mil"][o].astype(np.float64) - got["ort"][o]).max()) for o in spec.output_names)
print(json.dumps({"rows": len(x), "load": load, "diff": diff,
                  **{k: statistics.median(v) for k, v in times.items()}}))
"""


def rows_interpreter(ws: Workspace, repeats: int) -> list[Row]:
    script = ws.script("interpreter.py", SCRIPT)
    proc = subprocess.run(
        [
            PYTHON, str(script), str(EXAMPLE_CONFIG), str(EXAMPLE_MODEL), str(ws.bundle),
            str(ws.scratch("interpreter")), str(max(repeats, 5)),
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BenchError(f"interpreter script failed: {proc.stderr.strip()[-400:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return [
        Row(
            "interpreter", f"ML Program reference interpreter (numpy), {r['rows']} golden windows",
            f"onnxruntime (CPU), the same {r['rows']} windows", fmt_s(r["mil"]), fmt_s(r["ort"]),
            r["mil"] / r["ort"], "recorded (a reference, not a runtime)", None,
            f"medians of {max(repeats, 5)} interleaved runs; reading the program and weights took "
            f"{fmt_s(r['load'])}; max abs difference of the outputs {r['diff']:.2g}",
        )
    ]  # fmt: skip
