"""MANIFEST.json: the exact shape, and every kind of change after sealing is named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.errors import BundleIntegrityError


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


def test_only_the_top_level_reports_manifest_and_signature_are_unsealed(tree: Path) -> None:
    (tree / "MANIFEST.json.sig").write_bytes(b"sig")
    (tree / "models" / "validation").mkdir()
    (tree / "models" / "validation" / "x.json").write_text("{}")  # content, though named like the reports
    (tree / "models" / "MANIFEST.json").write_text("{}")
    (tree / "validation" / "deep").mkdir()
    (tree / "validation" / "deep" / "r.json").write_text("{}")
    files = BundleManifest.build(tree).files
    assert sorted(files) == [
        "config.yaml",
        "models/MANIFEST.json",
        "models/model.onnx",
        "models/validation/x.json",
    ]


def test_describe_names_every_kind_of_difference_in_order() -> None:
    from conv2d_bundle.bundle.manifest import ManifestDiff

    diff = ManifestDiff(missing=["a", "b"], changed=["c"], extra=["d"], not_regular=["e", "f"])
    assert not diff.ok
    assert diff.describe() == (
        "changed: c; missing: a, b; extra (not in manifest): d; not a regular file: e, f"
    )
    assert ManifestDiff().ok and ManifestDiff().describe() == "all files match"
    for kind in ("missing", "changed", "extra", "not_regular"):
        assert not ManifestDiff(**{kind: ["x"]}).ok


def test_a_link_to_a_regular_file_is_not_sealed(tree: Path) -> None:
    os.symlink(tree / "config.yaml", tree / "alias.yaml")
    with pytest.raises(BundleIntegrityError) as info:
        BundleManifest.build(tree)
    assert str(info.value) == "alias.yaml: not a regular file; a bundle holds regular files only"
    diff = BundleManifest.load(tree).verify(tree)
    assert diff.not_regular == ["alias.yaml"] and diff.extra == []


def test_size_change_with_the_same_prefix_is_caught(tree: Path) -> None:
    with open(tree / "config.yaml", "ab") as f:
        f.write(b"# appended\n")
    assert BundleManifest.load(tree).verify(tree).changed == ["config.yaml"]


def test_written_manifest_is_sorted_and_parses_back(tree: Path) -> None:
    manifest = BundleManifest({"b": {"sha256": "0" * 64, "size": 0}, "a/x": {"sha256": "1" * 64, "size": 2}})
    manifest.write(tree)
    raw = (tree / "MANIFEST.json").read_bytes()
    assert list(json.loads(raw)["files"]) == ["a/x", "b"]
    assert BundleManifest.parse(raw) == BundleManifest(dict(sorted(manifest.files.items())))
    assert BundleManifest.load(tree).to_json() == manifest.to_json()


ENTRY = {"sha256": "0" * 64, "size": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "MANIFEST.json is not valid JSON: "),
        (b"{", "MANIFEST.json is not valid JSON: "),
        ({"algorithm": "sha256", "files": {}}, "MANIFEST.json: expected schema_version 1"),
        ({"schema_version": 1, "files": {}}, "MANIFEST.json: expected algorithm sha256 and a files mapping"),
        (
            {"schema_version": 1, "algorithm": "sha256"},
            "MANIFEST.json: expected algorithm sha256 and a files mapping",
        ),
        (
            {"schema_version": 1, "algorithm": "sha256", "files": []},
            "MANIFEST.json: expected algorithm sha256 and a files mapping",
        ),
        ({"files": {"a": "x"}}, "MANIFEST.json: bad entry for 'a'"),
        ({"files": {"a": {"size": 1}}}, "MANIFEST.json: bad entry for 'a'"),
        ({"files": {"a": {"sha256": 7, "size": 1}}}, "MANIFEST.json: bad entry for 'a'"),
        ({"files": {"a": {"sha256": "0" * 63, "size": 1}}}, "MANIFEST.json: bad entry for 'a'"),
        ({"files": {"a": {"sha256": "0" * 65, "size": 1}}}, "MANIFEST.json: bad entry for 'a'"),
        ({"files": {"a": {"sha256": "0" * 64}}}, "MANIFEST.json: bad entry for 'a'"),
        ({"files": {"a": {"sha256": "0" * 64, "size": "1"}}}, "MANIFEST.json: bad entry for 'a'"),
        ({"files": {"a": {"sha256": "0" * 64, "size": -1}}}, "MANIFEST.json: bad entry for 'a'"),
        ({"files": {"": ENTRY}}, "MANIFEST.json: bad entry for ''"),
        ({"files": {"/etc/passwd": ENTRY}}, "MANIFEST.json: bad entry for '/etc/passwd'"),
        ({"files": {"a\\b": ENTRY}}, "MANIFEST.json: bad entry for 'a\\\\b'"),
        ({"files": {"a//b": ENTRY}}, "MANIFEST.json: bad entry for 'a//b'"),
        ({"files": {"a/./b": ENTRY}}, "MANIFEST.json: bad entry for 'a/./b'"),
        ({"files": {"a/": ENTRY}}, "MANIFEST.json: bad entry for 'a/'"),
        ({"files": {"a/../../b": ENTRY}}, "MANIFEST.json: bad entry for 'a/../../b'"),
    ],
)
def test_each_malformed_manifest_is_refused_with_its_reason(data: object, message: str) -> None:
    if isinstance(data, dict) and set(data) == {"files"}:
        data = {"schema_version": 1, "algorithm": "sha256", **data}
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with pytest.raises(BundleIntegrityError) as info:
        BundleManifest.parse(raw)
    assert str(info.value).startswith(message)
    if not message.endswith(": "):
        assert str(info.value) == message


def test_well_formed_entries_are_accepted() -> None:
    files = {"a": {"sha256": "f" * 64, "size": 0}, "models/m.onnx": {"sha256": "0" * 64, "size": 9}}
    raw = json.dumps({"schema_version": 1, "algorithm": "sha256", "files": files}).encode()
    assert BundleManifest.parse(raw).files == files


def test_safe_relpath() -> None:
    from conv2d_bundle.bundle.manifest import safe_relpath

    assert safe_relpath("a") and safe_relpath("models/m.onnx") and safe_relpath("a/.hidden")
    for bad in (None, 3, "", "/a", "a\\b", "a//b", "./a", "a/..", "a/"):
        assert not safe_relpath(bad), bad


def test_the_content_digest_names_every_files_hash_and_size(tmp_path: Path) -> None:
    import hashlib

    from conv2d_bundle.bundle.digest import canonical_json

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.onnx").write_bytes(b"weights")
    manifest = BundleManifest.build(tmp_path)
    expected = "sha256:" + hashlib.sha256(canonical_json(manifest.to_json()).encode()).hexdigest()
    assert manifest.content_digest == expected
    # the same files, written with other whitespace: the same content
    assert BundleManifest.parse(json.dumps(manifest.to_json(), indent=4).encode()).content_digest == expected
    (tmp_path / "models" / "m.onnx").write_bytes(b"weightz")  # one byte, same size
    assert BundleManifest.build(tmp_path).content_digest != expected
    (tmp_path / "models" / "m.onnx").write_bytes(b"weights")
    (tmp_path / "extra.txt").write_text("")
    assert BundleManifest.build(tmp_path).content_digest != expected
