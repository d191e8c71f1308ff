"""Promise 5: bad input gets exit 2, one line naming the problem, no traceback, and nothing left behind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from conv2d_bundle.models import Conv2dFSQ
from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL, ROOT, conv2d, create_args


def _config(tmp: Path, edit: Callable[[dict], None] | None = None) -> Path:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    if edit:
        edit(data)
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _checkpoint(tmp: Path, mutate: Callable[[dict], None]) -> Path:
    state = Conv2dFSQ().state_dict()
    mutate(state)
    path = tmp / "ckpt.pt"
    torch.save(state, path)
    return path


def _nan(state: dict) -> None:
    state["classifier.0.weight"][0, 0] = float("nan")


CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "missing checkpoint": (lambda t: ["--model", str(t / "absent.pt")], "checkpoint not found"),
    "config is a directory": (lambda t: ["--config", str(t)], "is not a file"),
    "checkpoint of another architecture": (
        lambda t: ["--model", str(_checkpoint(t, lambda s: s.update({"extra.weight": torch.zeros(1)})))],
        "unexpected keys [extra.weight]",
    ),
    "forward fails on the declared shape": (
        lambda t: ["--config", str(_config(t, lambda c: c["model"].update(input_shape=[1, 5, 2, 100])))],
        "fails on its declared input shape",
    ),
    "NaN weights": (lambda t: ["--model", str(_checkpoint(t, _nan))], "non-finite weights"),
    "output dir is a file": (lambda t: ["--output-dir", str(t / "afile")], "not a directory"),
    "name with a slash": (lambda t: ["--name", "a/b"], "--name"),
    "name with ..": (lambda t: ["--name", ".."], "--name"),
    "very long name": (lambda t: ["--name", "x" * 300], "--name"),
    "non-UTF-8 name": (lambda t: ["--name", b"caf\xe9".decode("utf-8", "surrogateescape")], "--name"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(tmp_path: Path, case: str) -> None:
    make_args, words = CASES[case]
    (tmp_path / "afile").write_text("a file, not a directory\n")
    out = tmp_path / "art"
    args = {
        "--config": str(EXAMPLE_CONFIG),
        "--model": str(EXAMPLE_MODEL),
        "--output-dir": str(out),
        "--name": "ok",
        "--formats": "onnx",
    }
    extra = make_args(tmp_path)
    args.update(dict(zip(extra[::2], extra[1::2], strict=True)))
    argv = [a for kv in args.items() for a in kv]
    p = conv2d("pack", "create", *argv)
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert p.returncode == 2, p.stderr
    assert len(errors) == 1 and words in errors[0], p.stderr
    assert "Traceback" not in p.stderr
    leftovers = [d.name for d in out.iterdir() if d.name != ".conv2d"] if out.is_dir() else []
    assert leftovers == []


def test_read_only_output_dir(tmp_path: Path) -> None:
    """As root, permission bits do not stop writes: the read-only filesystem is simulated at mkdtemp."""
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability.driver",
            "staging",
            "erofs",
            "--",
            *create_args(tmp_path / "art"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert p.returncode == 2 and len(errors) == 1 and "Read-only file system" in errors[0], p.stderr
