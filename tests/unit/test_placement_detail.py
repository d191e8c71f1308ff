"""Placing by content: the one-line refusal names files only one side has and every file that differs in
exact placing, and a failed rename into an empty place is reported as it was.

Written for survivors of the 2026-12-05 mutation run (tests/README.md); the helpers are
tests/unit/test_placement.py's.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conv2d_bundle.bundle import atomic, placement
from conv2d_bundle.bundle.placement import place, replace_dir
from conv2d_bundle.errors import ArchiveError
from tests.unit.test_placement import GOOD, HASH, HERE, arrived, sealed, visible


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    out = tmp_path / "artifacts"
    out.mkdir()
    return out


def test_other_content_names_the_files_only_here_and_only_arriving(artifacts: Path) -> None:
    good = sealed(artifacts / HASH, GOOD)
    other = {k: v for k, v in GOOD.items() if k != "docs/README.md"}
    root, new = arrived(artifacts, {**other, "models/model.onnx": b"other", "docs/new.md": b"new"})
    with pytest.raises(ArchiveError) as info:
        place(root, artifacts / HASH, new, HERE, force=False)
    assert str(info.value) == (
        f"{HASH} already exists with other content ({good.content_digest} here, {new.content_digest} in the "
        "test; differs: models/model.onnx, docs/README.md (only here), docs/new.md (only in the test)); "
        "--force replaces it"
    )


def test_exact_placing_names_both_the_manifest_text_and_the_signature(artifacts: Path) -> None:
    existing = sealed(artifacts / HASH, GOOD)
    manifest_path = artifacts / HASH / "MANIFEST.json"
    manifest_path.write_text(manifest_path.read_text() + "\n")
    (artifacts / HASH / "MANIFEST.json.sig").write_bytes(b"sig")
    root, manifest = arrived(artifacts, GOOD)
    with pytest.raises(ArchiveError) as info:
        place(root, artifacts / HASH, manifest, HERE, force=False, exact=True)
    assert str(info.value) == (
        f"{HASH} already exists with this content ({existing.content_digest}) but another MANIFEST.json and "
        "MANIFEST.json.sig; --force replaces it"
    )


def test_a_failed_rename_into_an_empty_place_raises_that_error(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    root, _ = arrived(artifacts, GOOD)
    refused = OSError(28, "No space left on device")
    rename = os.rename

    def refuse_the_new_one(src: Path, dst: Path) -> None:
        if Path(src) == root:
            raise refused
        rename(src, dst)

    monkeypatch.setattr(placement.os, "rename", refuse_the_new_one)
    with pytest.raises(OSError) as info:
        replace_dir(root, artifacts / HASH)
    assert info.value is refused  # nothing was moved aside, so nothing is moved back
    assert visible(artifacts) == [] and root.is_dir()
