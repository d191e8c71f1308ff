"""``conv2d pack verify`` loads no pytest plugin by entry point: an installed plugin cannot touch the verdict.

The plugin below is written by the test into a temporary directory with its own ``.dist-info`` (a ``pytest11``
entry point, as any installed plugin has) and put on ``PYTHONPATH``. It turns every failed test into a pass
and leaves a file behind when it is imported. Plain pytest loads it (the control below); verify does not, so
a broken bundle still fails. (It also keeps start-up down: bench/README.md, row 1.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, conv2d

LENIENT_PLUGIN = """
import os
from pathlib import Path

import pytest

Path(os.environ["LENIENT_LOADED"]).write_text("loaded\\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.outcome = "passed"
"""


def _install(site: Path, marker: Path) -> dict[str, str]:
    site.mkdir(parents=True)
    (site / "lenient_plugin.py").write_text(LENIENT_PLUGIN)
    dist = site / "lenient_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lenient-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[pytest11]\nlenient = lenient_plugin\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    return {**env, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "LENIENT_LOADED": str(marker)}


def test_an_installed_plugin_cannot_pass_a_broken_bundle(bundle_copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "lenient-loaded"
    env = _install(tmp_path / "site", marker)

    # the control: under plain pytest the plugin loads and a failing test passes
    failing = tmp_path / "control" / "test_fails.py"
    failing.parent.mkdir()
    failing.write_text("def test_fails():\n    assert False\n")
    control = subprocess.run(
        [sys.executable, "-m", "pytest", str(failing), "-q", "-p", "no:cacheprovider", "-c", os.devnull],
        capture_output=True, text=True, cwd=failing.parent, env=env, timeout=120,
    )  # fmt: skip
    assert control.returncode == 0 and marker.exists(), control.stdout + control.stderr
    marker.unlink()

    model = bundle_copy / "models" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    v = conv2d("pack", "verify", str(bundle_copy), "--target", "onnx", "--profile", "quick", env=env)
    assert v.returncode == 1 and "--target onnx: failed" in v.stdout, v.stdout + v.stderr
    assert not marker.exists()  # never imported, not merely outvoted
