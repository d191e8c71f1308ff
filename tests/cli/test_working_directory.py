"""Runs that build or verify a bundle write nothing outside the artifacts directory (the working directory
stays as it was): no ``.hypothesis/`` from the fuzz checks, no ``.pytest_cache/`` from pytest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conv2d_bundle.verify.runner import CHECKS_DIR
from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL, ROOT, conv2d


@pytest.mark.slow
def test_create_and_verify_leave_the_working_directory_alone(tmp_path: Path) -> None:
    cwd = tmp_path / "project"
    cwd.mkdir()
    create = conv2d(
        "pack", "create", "--config", str(EXAMPLE_CONFIG), "--model", str(EXAMPLE_MODEL),
        "--output-dir", "artifacts", "--formats", "onnx", "--json", cwd=cwd,
    )  # fmt: skip
    assert create.returncode == 0, create.stderr
    assert sorted(p.name for p in cwd.iterdir()) == ["artifacts"]
    exp_hash = json.loads(create.stdout)["exp_hash"]
    for workers in ([], ["-n", "2"]):
        verify = conv2d(
            "pack", "verify", exp_hash, "--target", "onnx", "--profile", "quick", *workers, cwd=cwd
        )  # fmt: skip
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert sorted(p.name for p in cwd.iterdir()) == ["artifacts"], workers
    bundle = cwd / "artifacts" / exp_hash
    assert not list(bundle.rglob(".hypothesis")) and not list(bundle.rglob(".pytest_cache"))
    assert not (CHECKS_DIR / ".pytest_cache").exists() and not (ROOT / "checks" / ".pytest_cache").exists()
