"""A target from another package: one module plus one entry point in the ``conv2d_bundle.targets`` group.

The package below is written by the test into a temporary directory with its own ``.dist-info`` (so
``importlib.metadata`` finds its entry point) and put on ``PYTHONPATH`` of the processes it runs: nothing of
it is in conv2d_bundle. It exports a file of its own, adds one structural check, and runs the ONNX file
through onnxruntime as its runtime, so the shared parity check executes for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL, ROOT, conv2d, last_json

TARGET_MODULE = """
from conv2d_bundle.targets import Target


class TinyTarget(Target):
    name = "tiny"
    format = "tiny"
    title = "Tiny (a target from another package)"
    checks = "tinytarget.test_tiny"
    runs_as = "onnxruntime on the bundle's ONNX file"

    def export(self, ctx):
        path = ctx.staging / "models" / "tiny.txt"
        path.write_text(ctx.exp_hash + "\\n")
        return {"status": "built", "file": "models/tiny.txt", **ctx.size_entry(path)}

    def runner(self, bundle):
        from conv2d_bundle.targets.onnx.runner import session_runner

        return session_runner(bundle.path("models/model.onnx"), bundle.config.model.input_name)

    def guide(self, meta):
        return "## Tiny\\n`models/tiny.txt` names the bundle.\\n"


TARGET = TinyTarget()
"""

CHECKS_MODULE = """
import pytest

pytestmark = pytest.mark.conv2d_target("tiny")


def test_tiny_file_names_the_bundle(bundle, metadata):
    text = bundle.path("models/tiny.txt").read_text().strip()
    if text != metadata["exp_hash"]:
        pytest.fail(f"models/tiny.txt says {text!r}")
"""


def _install(site: Path) -> dict[str, str]:
    pkg = site / "tinytarget"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(TARGET_MODULE)
    (pkg / "test_tiny.py").write_text(CHECKS_MODULE)
    dist = site / "tinytarget-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tinytarget\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[conv2d_bundle.targets]\ntiny = tinytarget:TARGET\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def test_a_target_from_another_package_exports_verifies_and_is_listed(tmp_path: Path) -> None:
    env = _install(tmp_path / "site")
    listed = json.loads(conv2d("pack", "targets", "--json", env=env).stdout)
    tiny = next(t for t in listed if t["name"] == "tiny")
    assert tiny["parity"] == {"executes": True, "reason": "executes here"}
    assert tiny["checks_added"] == ["test_format_built", "test_parity", "test_tiny_file_names_the_bundle"]

    made = conv2d(
        "pack", "create", "--config", str(EXAMPLE_CONFIG), "--model", str(EXAMPLE_MODEL),
        "--output-dir", str(tmp_path / "artifacts"), "--formats", "onnx,tiny", "--json", env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    info = last_json(made.stdout)
    built = {name: status for name, status in info["formats"].items() if status != "not_requested"}
    assert built == {"onnx": "built", "tiny": "built"}  # the others are recorded as never asked for
    assert info["verdicts"]["tiny"]["status"] == "passed"  # its checks ran at seal time too
    bundle = Path(info["bundle_dir"])
    assert "## Tiny" in (bundle / "docs" / "deployment_guide.md").read_text()

    checks = [sys.executable, "-m", "pytest", str(ROOT / "checks"), "-q", "-p", "no:cacheprovider"]
    p = subprocess.run(
        [*checks, "--bundle", str(bundle), "--target", "tiny", "--check-profile", "quick"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-2000:]
    report = json.loads((bundle / "validation" / "tiny_validation.json").read_text())
    assert report["verdict"] == "passed" and report["complete"] is True
    ran = set(report["checks_run"])
    assert "test_tiny.py::test_tiny_file_names_the_bundle" in ran
    assert "test_targets.py::test_parity[tiny-confidence-64]" in ran  # parity executed, not skipped
    assert "test_targets.py::test_format_built[tiny]" in ran

    (bundle / "models" / "tiny.txt").write_text("someone else\n")
    v = conv2d("pack", "verify", str(bundle), "--target", "tiny", "--profile", "quick", env=env)
    assert v.returncode == 1 and "models/tiny.txt says 'someone else'" in v.stdout, v.stdout + v.stderr
