"""Promise 2: concurrent creates of the same inputs end with one valid bundle that both report; creates of
different models at once do not interfere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from conv2d_bundle.bundle import list_bundles
from conv2d_bundle.manifest import BundleManifest
from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL, ROOT


def _start(config: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conv2d_bundle.cli",
            "pack",
            "create",
            "--config",
            str(config),
            "--model",
            str(EXAMPLE_MODEL),
            "--output-dir",
            str(out),
            "--formats",
            "onnx",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _finish(p: subprocess.Popen[str]) -> dict:
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    return json.loads(out)


def test_same_inputs_from_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "art"
    procs = [_start(EXAMPLE_CONFIG, out) for _ in range(2)]
    infos = [_finish(p) for p in procs]
    assert infos[0]["exp_hash"] == infos[1]["exp_hash"]
    assert sorted(i["already_existed"] for i in infos) == [False, True]  # one built it, the other found it
    bundles = list_bundles(out)
    assert [b.exp_hash for b in bundles] == [infos[0]["exp_hash"]]
    assert BundleManifest.load(bundles[0].bundle_dir).verify(bundles[0].bundle_dir).ok
    assert not [d for d in out.iterdir() if d.name.startswith(".tmp-")]


def test_different_models_at_once(tmp_path: Path) -> None:
    out = tmp_path / "art"
    other = tmp_path / "other.yaml"
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["training"]["epochs"] = 99
    other.write_text(yaml.safe_dump(data))
    infos = [_finish(p) for p in [_start(EXAMPLE_CONFIG, out), _start(other, out)]]
    assert infos[0]["exp_hash"] != infos[1]["exp_hash"]
    for b in list_bundles(out):
        assert BundleManifest.load(b.bundle_dir).verify(b.bundle_dir).ok
    assert len(list_bundles(out)) == 2
