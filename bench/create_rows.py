"""Rows 5-6: ``conv2d pack create`` against a bare torch export, and against its exporters run alone."""

from __future__ import annotations

import json
import subprocess
import time

from bench import Row
from bench.timing import PYTHON, BenchError, child_env, conv2d_cmd, fmt_cpu, fmt_s, side_by_side, wall
from bench.workspace import EXAMPLE_CONFIG, EXAMPLE_MODEL, Workspace

ONNX_FLOOR = """\
import sys, torch
from pathlib import Path
from conv2d_bundle.config import load_config
from conv2d_bundle.models.loading import load_model
spec = load_config(sys.argv[1]).model
model = load_model(spec, Path(sys.argv[2])).eval()
torch.onnx.export(
    model, (torch.zeros(1, 9, 2, 100),), sys.argv[3], opset_version=13, input_names=["imu_input"],
    output_names=["behavioral_codes", "confidence"], dynamo=False,
    dynamic_axes={n: {0: "batch"} for n in ("imu_input", "behavioral_codes", "confidence")},
)
"""

# Every exporter alone, in one process that imports torch and loads the checkpoint once. The golden
# reference the exporters' parity checks need is computed too, timed, and left out of the floor.
EXPORTERS_ALONE = """\
import json, sys, tempfile, time
from pathlib import Path
import torch
from conv2d_bundle import targets
from conv2d_bundle.lifecycle.create import BuildContext
from conv2d_bundle.config import load_config
from conv2d_bundle.models.loading import load_model
from conv2d_bundle.bundle.reference import make_reference
cfg = load_config(sys.argv[1])
model = load_model(cfg.model, Path(sys.argv[2])).eval()
t = time.perf_counter()
ref = make_reference(model, cfg.model, num_samples=64, seed=0)
times = {"reference": time.perf_counter() - t}
ctx = BuildContext(model, cfg, "0" * 12, Path(tempfile.mkdtemp(dir=sys.argv[3])), ref, True)
for fmt in ("onnx", "coreml", "hailo"):
    t = time.perf_counter()
    targets.by_format(fmt).export(ctx)
    times[fmt] = time.perf_counter() - t
print(json.dumps(times))
"""


def _create(ws: Workspace, formats: str) -> float:
    out = ws.scratch(f"create-{formats.replace(',', '-')}")
    cmd = conv2d_cmd(
        "pack", "create", "--config", str(EXAMPLE_CONFIG), "--model", str(EXAMPLE_MODEL),
        "--output-dir", str(out), "--formats", formats, "--json",
    )  # fmt: skip
    return wall(cmd, env=child_env(), cwd=ws.root)


def rows_create_onnx(ws: Workspace, repeats: int) -> list[Row]:
    """Row 5: ``create --formats onnx`` vs import torch + load checkpoint + ``torch.onnx.export``."""
    floor = ws.script("floor_export.py", ONNX_FLOOR)
    target = ws.root / "floor.onnx"
    floor_cmd = [PYTHON, str(floor), str(EXAMPLE_CONFIG), str(EXAMPLE_MODEL), str(target)]
    cpu: dict[str, float] = {}
    t = side_by_side(
        {
            "create": lambda: _create(ws, "onnx"),
            "floor": lambda: wall(floor_cmd, env=child_env(), cwd=ws.root),
        },
        repeats,
        cpu=cpu,
    )
    ratio = t["create"] / t["floor"]
    return [
        Row(
            "create_onnx", "create --formats onnx (whole process)", "import torch + load + torch.onnx.export",
            fmt_s(t["create"]), fmt_s(t["floor"]), ratio, "<= 1.5x", ratio <= 1.5, fmt_cpu(cpu),
        )
    ]  # fmt: skip


def _exporters_alone(ws: Workspace, breakdown: list[dict[str, float]]) -> float:
    script = ws.root / "exporters_alone.py"
    if not script.exists():
        ws.script(script.name, EXPORTERS_ALONE)
    out = ws.scratch("exporters-alone")
    start = time.perf_counter()
    proc = subprocess.run(
        [PYTHON, str(script), str(EXAMPLE_CONFIG), str(EXAMPLE_MODEL), str(out)],
        capture_output=True,
        text=True,
        env=child_env(),
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(f"exporters alone failed: {proc.stderr.strip()[-400:]}")
    times = json.loads(proc.stdout.strip().splitlines()[-1])
    breakdown.append(times)
    return elapsed - times["reference"]


def rows_create_all(ws: Workspace, repeats: int) -> list[Row]:
    """Row 6: ``create`` with every format vs the sum of the exporters alone (shared torch import counted once)."""
    breakdown: list[dict[str, float]] = []
    n = max(repeats - 2, 3)
    t = side_by_side(
        {
            "create": lambda: _create(ws, "onnx,coreml,hailo"),
            "alone": lambda: _exporters_alone(ws, breakdown),
        },
        n,
    )
    ratio = t["create"] / t["alone"]
    last = breakdown[-1]
    parts = ", ".join(f"{k} {fmt_s(v)}" for k, v in last.items())
    return [
        Row(
            "create_all", "create --formats onnx,coreml,hailo (whole process)",
            "one process: import torch + load + each exporter alone", fmt_s(t["create"]), fmt_s(t["alone"]),
            ratio, "overhead <= 20% (<= 1.2x)", ratio <= 1.2, f"exporters alone (last run): {parts}",
        )
    ]  # fmt: skip
