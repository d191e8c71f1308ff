"""MANIFEST.json: the exact shape, and every kind of change after sealing is named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conv2d_bundle.errors import BundleIntegrityError
from conv2d_bundle.manifest import BundleManifest


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.onnx").write_bytes(b"\x08\x07onnx")
    (tmp_path / "config.yaml").write_text("a: 1\n")
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "onnx_validation.json").write_text("{}")
    BundleManifest.build(tmp_path).write(tmp_path)
    return tmp_path


def test_shape_is_the_designed_one(tree: Path) -> None:
    data = json.loads((tree / "MANIFEST.json").read_text())
    assert data["schema_version"] == 1 and data["algorithm"] == "sha256"
    assert set(data["files"]) == {"config.yaml", "models/model.onnx"}  # not itself, not validation/
    import hashlib

    assert data["files"]["config.yaml"] == {"sha256": hashlib.sha256(b"a: 1\n").hexdigest(), "size": 5}


def test_clean_tree_verifies(tree: Path) -> None:
    assert BundleManifest.load(tree).verify(tree).ok


def test_changed_missing_extra_are_named(tree: Path) -> None:
    (tree / "config.yaml").write_text("a: 2\n")
    (tree / "models" / "model.onnx").unlink()
    (tree / "models" / "notes.txt").write_text("x")
    (tree / "validation" / "new.json").write_text("{}")  # reports are not content
    diff = BundleManifest.load(tree).verify(tree)
    assert diff.changed == ["config.yaml"]
    assert diff.missing == ["models/model.onnx"]
    assert diff.extra == ["models/notes.txt"]
    assert "notes.txt" in diff.describe()


def test_same_size_change_is_caught(tree: Path) -> None:
    p = tree / "models" / "model.onnx"
    data = bytearray(p.read_bytes())
    data[2] ^= 1
    p.write_bytes(bytes(data))
    assert BundleManifest.load(tree).verify(tree).changed == ["models/model.onnx"]


def test_symlinks_fail_verification(tree: Path) -> None:
    os.symlink("/etc/passwd", tree / "link.txt")
    os.symlink(tree / "models", tree / "linkdir")
    diff = BundleManifest.load(tree).verify(tree)
    assert sorted(diff.not_regular) == ["link.txt", "linkdir"]
    with pytest.raises(BundleIntegrityError, match="not a regular file"):
        BundleManifest.build(tree)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"schema_version": 2, "algorithm": "sha256", "files": {}}',
        b'{"schema_version": 1, "algorithm": "md5", "files": {}}',
        b'{"schema_version": 1, "algorithm": "sha256", "files": {"../x": {"sha256": "'
        + b"0" * 64
        + b'", "size": 1}}}',
        b'{"schema_version": 1, "algorithm": "sha256", "files": {"a": {"sha256": "short", "size": 1}}}',
    ],
)
def test_malformed_manifests_raise_our_error(raw: bytes) -> None:
    with pytest.raises(BundleIntegrityError):
        BundleManifest.parse(raw)
