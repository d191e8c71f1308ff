"""Rows 1-4: ``conv2d pack verify --target onnx`` against the 10-line floor, Polygraphy, and itself with fuzzing;
and what it imports."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from bench import Row
from bench.timing import BIN, PYTHON, BenchError, child_env, conv2d_cmd, fmt_cpu, fmt_s, side_by_side, wall
from bench.workspace import Workspace

FLOOR_SCRIPT = """\
import sys, numpy as np, onnxruntime as ort
b = sys.argv[1]
s = ort.InferenceSession(b + "/models/model.onnx", providers=["CPUExecutionProvider"])
x, ref = np.load(b + "/reference/inputs.npy"), np.load(b + "/reference/outputs.npz")
for n in (1, 7, 64):
    codes, conf = s.run(["behavioral_codes", "confidence"], {"imu_input": x[:n]})
    if not np.array_equal(codes, ref["behavioral_codes"][:n]):
        sys.exit(f"codes differ at batch {n}")
    if not np.allclose(conf, ref["confidence"][:n], atol=1e-5, rtol=1e-5):
        sys.exit(f"confidence differs at batch {n}")
"""

POLYGRAPHY_PREP = """\
import sys, numpy as np
from polygraphy.comparator import RunResults
from polygraphy.comparator.struct import IterationResult
from polygraphy.json import save_json
b, out = sys.argv[1], sys.argv[2]
x, ref = np.load(b + "/reference/inputs.npy")[:64], np.load(b + "/reference/outputs.npz")
save_json([{"imu_input": x}], out + "/inputs.json")
golden = IterationResult({k: ref[k][:64] for k in ref.files}, runner_name="golden")
RunResults([("golden", [golden])]).save(out + "/golden.json")
"""

#: modules that must never be imported when verifying an ONNX bundle (verify runs on the device itself)
FORBIDDEN = ("torch", "coremltools")


def verify_has_k() -> bool:
    out = subprocess.run(conv2d_cmd("pack", "verify", "--help"), capture_output=True, text=True, check=False)
    return " -k " in out.stdout or "\n  -k" in out.stdout


def parity_cmd(bundle: Path) -> tuple[list[str], str]:
    """The parity-only run: ``verify -k test_parity`` if the CLI has ``-k``, else the equivalent pytest run."""
    if verify_has_k():
        cmd = conv2d_cmd(
            "pack", "verify", bundle.name, "--output-dir", str(bundle.parent), "--target", "onnx",
            "-k", "test_parity",
        )  # fmt: skip
        return cmd, "conv2d pack verify B --target onnx -k test_parity"
    cmd = [
        PYTHON, "-m", "pytest", "--pyargs", "conv2d_bundle.checks", "--bundle", str(bundle),
        "--target", "onnx", "-k", "test_parity", "-p", "no:cacheprovider", "-q",
    ]  # fmt: skip
    return cmd, "pytest --pyargs conv2d_bundle.checks -k test_parity (verify has no -k yet)"


def full_cmd(bundle: Path) -> list[str]:
    return conv2d_cmd("pack", "verify", bundle.name, "--output-dir", str(bundle.parent), "--target", "onnx")


def _timer(cmd: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> Callable[[], float]:
    env = child_env()
    return lambda: wall(cmd, env=env, cwd=cwd, ok=ok)


#: a parity-only run verifies some checks of the target: its verdict is incomplete, its exit code 1
PARITY_OK = (0, 1)


def rows_parity(ws: Workspace, repeats: int) -> list[Row]:
    """Row 1: parity-only verify vs the floor script."""
    bundle = ws.bundle
    floor = ws.script("floor_parity.py", FLOOR_SCRIPT)
    parity, how = parity_cmd(bundle)
    cpu: dict[str, float] = {}
    t = side_by_side(
        {
            "verify": _timer(parity, ws.root, PARITY_OK),
            "floor": _timer([PYTHON, str(floor), str(bundle)], ws.root),
        },
        repeats,
        cpu=cpu,
    )
    _parity_items_passed(bundle)
    ratio = t["verify"] / t["floor"]
    return [
        Row(
            "verify", "verify --target onnx, parity items only", "10-line onnxruntime floor script",
            fmt_s(t["verify"]), fmt_s(t["floor"]), ratio, "<= 2x", ratio <= 2.0, f"measured as: {how}; {fmt_cpu(cpu)}",
        )
    ]  # fmt: skip


def _parity_items_passed(bundle: Path) -> None:
    """The timed parity-only run must have passed what it ran (its exit code 1 says only: incomplete)."""
    report = json.loads((bundle / "validation" / "onnx_validation.json").read_text())
    parity = [c for c in report["checks"] if "test_parity[" in c["id"]]
    if report["errors"] or not parity or any(c["outcome"] != "passed" for c in parity):
        raise BenchError(f"the parity-only run did not pass its parity items: {report['errors'][:3]}")


def rows_polygraphy(ws: Workspace, repeats: int) -> list[Row]:
    """Row 2: the same parity check vs ``polygraphy run`` on one batch of 64."""
    bundle = ws.bundle
    polygraphy = BIN / "polygraphy"
    goal = "<= 0.3x"
    if not polygraphy.exists():
        return [
            Row("polygraphy", "parity check", "Polygraphy 0.53", "-", "-", None, goal, None,
                "not measured: polygraphy is not installed in this environment (pip install polygraphy)")
        ]  # fmt: skip
    prep = ws.script("polygraphy_prep.py", POLYGRAPHY_PREP)
    data = ws.scratch("polygraphy")
    subprocess.run([PYTHON, str(prep), str(bundle), str(data)], check=True, capture_output=True)
    poly = [
        str(polygraphy), "run", str(bundle / "models/model.onnx"), "--onnxrt",
        "--load-inputs", str(data / "inputs.json"), "--load-outputs", str(data / "golden.json"),
        "--atol", "1e-5", "--rtol", "1e-5",
    ]  # fmt: skip
    parity, how = parity_cmd(bundle)
    t = side_by_side(
        {"verify": _timer(parity, ws.root, PARITY_OK), "polygraphy": _timer(poly, ws.root)}, repeats
    )
    ratio = t["verify"] / t["polygraphy"]
    return [
        Row(
            "polygraphy", "the same parity check (6 items, batches 1/7/64)", "polygraphy run --onnxrt, batch 64",
            fmt_s(t["verify"]), fmt_s(t["polygraphy"]), ratio, goal, ratio <= 0.3, f"measured as: {how}",
        )
    ]  # fmt: skip


def rows_fuzz(ws: Workspace, repeats: int) -> list[Row]:
    """Row 3: the full ``--target onnx`` run (default fuzzing profile) vs the parity-only run."""
    bundle = ws.bundle
    parity, _ = parity_cmd(bundle)
    cpu: dict[str, float] = {}
    t = side_by_side(
        {
            "parity": _timer(parity, ws.root, PARITY_OK),
            "full": _timer(full_cmd(bundle), ws.root),
        },  # full last: its report is read
        max(repeats - 2, 3),
        cpu=cpu,
    )
    ratio = t["full"] / t["parity"]
    return [
        Row(
            "fuzz", "verify --target onnx, all checks (fuzzing, default profile)", "the parity-only run",
            fmt_s(t["full"]), fmt_s(t["parity"]), ratio, "<= 3x", ratio <= 3.0, f"{_check_costs(bundle)}; {fmt_cpu(cpu)}",
        )
    ]  # fmt: skip


def _check_costs(bundle: Path) -> str:
    """Where the full run's time goes, from the durations in its report (the last full run's)."""
    report = json.loads((bundle / "validation" / "onnx_validation.json").read_text())
    durations = {c["id"].split("::")[-1]: float(c.get("duration_s") or 0) for c in report["checks"]}
    fuzz = sum(v for k, v in durations.items() if "fuzz" in k)
    top = sorted(durations.items(), key=lambda kv: -kv[1])[:3]
    return f"check time {sum(durations.values()):.2f} s, of it fuzzing {fuzz:.2f} s; slowest: " + ", ".join(
        f"{k} {v:.2f} s" for k, v in top
    )


MODULES_DRIVER = """\
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["conv2d", *sys.argv[2:]]
from conv2d_bundle.cli import main
main()
"""


def imported_modules(ws: Workspace, cmd_args: list[str]) -> set[str]:
    """Every module in ``sys.modules`` when a ``conv2d`` command exits (imports inside checks included:
    ``-X importtime`` would miss those, its stderr being captured by pytest while a check runs)."""
    driver = ws.script("modules_driver.py", MODULES_DRIVER)
    out = ws.root / "modules.json"
    proc = subprocess.run(
        [PYTHON, str(driver), str(out), *cmd_args],
        capture_output=True,
        text=True,
        cwd=ws.root,
        env=child_env(),
        check=False,
    )
    if proc.returncode not in (0, 1) or not out.is_file():
        raise BenchError(f"conv2d {' '.join(cmd_args)} exited {proc.returncode}: {proc.stderr[-400:]}")
    return set(json.loads(out.read_text()))


def rows_imports(ws: Workspace, repeats: int) -> list[Row]:
    """Row 4: the modules ``verify --target onnx`` imports: no torch, no coremltools."""
    bundle = ws.bundle
    args = ["pack", "verify", bundle.name, "--output-dir", str(bundle.parent), "--target", "onnx"]
    mods = imported_modules(ws, args)
    bad = sorted({m.split(".")[0] for m in mods if m.split(".")[0] in FORBIDDEN})
    heavy = [m for m in ("hypothesis", "syrupy", "onnx", "onnxruntime", "rich") if m in mods]
    return [
        Row(
            "imports", "modules imported by verify --target onnx", "-", f"{len(mods)} modules",
            f"forbidden found: {', '.join(bad) or 'none'}", None, "no torch, no coremltools", not bad,
            f"also imported: {', '.join(heavy)}",
        )
    ]  # fmt: skip
