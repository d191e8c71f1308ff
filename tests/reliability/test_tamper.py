"""Promise 3: a changed byte anywhere, an added file or a symlink fails the general checks, naming the file;
verifying writes only under validation/."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.bundle.digest import sha256_file

SEALED = [
    "models/model.onnx",
    "config.yaml",
    "label_map.json",
    "metrics.json",
    "reference/inputs.npy",
    "reference/outputs.npz",
    "docs/README.md",
    "docs/api_reference.md",
    "VERSION",
    "COMMIT_SHA",
    "metadata.json",
]


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x20
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("relpath", SEALED)
def test_changed_byte_is_named(bundle_copy: Path, run_checks: Any, relpath: str) -> None:
    _flip_last_byte(bundle_copy / relpath)
    rc, report, out = run_checks(bundle_copy, "general")
    assert rc == 1, out
    manifest_errors = [e for e in report["errors"] if e.startswith("test_general.py::test_manifest_verifies")]
    assert manifest_errors and relpath in manifest_errors[0], report["errors"]


def test_added_file_and_symlink_fail(bundle_copy: Path, run_checks: Any) -> None:
    (bundle_copy / "docs" / "extra.md").write_text("added after sealing\n")
    os.symlink("/etc/hostname", bundle_copy / "models" / "link.onnx")
    rc, report, _ = run_checks(bundle_copy, "general")
    assert rc == 1
    text = " ".join(report["errors"])
    assert "docs/extra.md" in text and "models/link.onnx" in text


def test_verify_writes_only_under_validation(bundle_copy: Path, run_checks: Any) -> None:
    def snapshot() -> dict[str, tuple[str, int]]:
        return {
            str(p.relative_to(bundle_copy)): (sha256_file(p), p.stat().st_mtime_ns)
            for p in sorted(bundle_copy.rglob("*"))
            if p.is_file() and "validation" not in p.parts
        }

    before = snapshot()
    run_checks(bundle_copy, "all")
    assert before == snapshot()
    assert {p.name for p in (bundle_copy / "validation").iterdir()} >= {
        "general_validation.json",
        "onnx_validation.json",
    }
