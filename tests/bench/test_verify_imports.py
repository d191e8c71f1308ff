"""``conv2d pack verify --target onnx`` and ``--target hailo`` must run without torch or coremltools (DESIGN.md:
verify on the device; the Hailo board has no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Runs the CLI in this interpreter and writes sys.modules at exit, so imports made inside checks count too.
DRIVER = """\
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["conv2d", *sys.argv[2:]]
from conv2d_bundle.cli import main
main()
"""


@pytest.mark.slow
@pytest.mark.parametrize(("target", "rc"), [("onnx", 0), ("hailo", 1)])  # hailo: no HEF attached, so it fails
def test_verify_imports_no_torch_no_coremltools(
    bundle_copy: Path, tmp_path: Path, target: str, rc: int
) -> None:
    out = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(out), "pack", "verify", bundle_copy.name,
         "--output-dir", str(bundle_copy.parent), "--target", target, "--profile", "quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert proc.returncode == rc, proc.stdout + proc.stderr
    modules = set(json.loads(out.read_text()))
    assert "onnxruntime" in modules  # the checks did run
    if target == "onnx":
        assert "hypothesis" in modules  # ... the fuzz checks too
    # onnxslim simplifies the Hailo device part at create time only
    heavy = sorted(m for m in modules if m.split(".")[0] in ("torch", "coremltools", "onnxslim", "sympy"))
    assert not heavy, f"verify --target {target} imported {heavy[:5]}"
