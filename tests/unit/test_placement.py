"""Placing an arrived bundle at its EXP_HASH by content: kept when it is the same content, intact; refused with
one line naming both content digests and what differs; replaced with force, complete before it takes the name,
the old copy deleted only after. The bundles here are small directories with a manifest: placing checks
content, not identity (``check_unpacked`` does that, see tests/unit/test_archive.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from conv2d_bundle.bundle import atomic, placement
from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.bundle.placement import (
    Arrival,
    ContentChange,
    Placed,
    check_unpacked,
    files_that_differ,
    place,
    replace_dir,
)
from conv2d_bundle.errors import ArchiveError, BundleError

HASH = "0123456789ab"
HERE = Arrival("the test bundle", "the test", "in the test", ArchiveError)


def sealed(root: Path, files: dict[str, bytes]) -> BundleManifest:
    """A directory holding ``files`` and a MANIFEST.json sealing them."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    manifest = BundleManifest.build(root)
    manifest.write(root)
    return manifest


GOOD = {"models/model.onnx": b"good model", "metadata.json": b"{}", "docs/README.md": b"readme"}
BAD = {**GOOD, "models/model.onnx": b"bad model"}


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    out = tmp_path / "artifacts"
    out.mkdir()
    return out


def arrived(artifacts: Path, files: dict[str, bytes], name: str = "new") -> tuple[Path, BundleManifest]:
    root = artifacts / f".tmp-test-{name}" / "bundle"
    root.mkdir(parents=True)
    return root, sealed(root, files)


def contents(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def visible(artifacts: Path) -> list[str]:
    return sorted(p.name for p in artifacts.iterdir() if not p.name.startswith(".tmp-test-"))


# -- check_unpacked (identity: tests/unit/test_archive.py) ---------------------------------------------------
def test_check_unpacked_compares_the_hashes_taken_on_arrival_with_the_manifest(artifacts: Path) -> None:
    root, manifest = arrived(artifacts, GOOD)
    hashed = {rel: (str(e["sha256"]), int(e["size"])) for rel, e in manifest.files.items()}
    hashed["MANIFEST.json"] = ("0" * 64, 1)  # the manifest and its signature are not content: not compared
    hashed["MANIFEST.json.sig"] = ("0" * 64, 1)
    wrong = {**hashed, "models/model.onnx": ("0" * 64, 10), "extra.txt": ("1" * 64, 1)}
    del wrong["docs/README.md"]
    with pytest.raises(ArchiveError) as info:
        check_unpacked(root, HERE, wrong)
    assert str(info.value) == (
        "the test bundle does not match its manifest: changed: models/model.onnx; missing: docs/README.md; "
        "extra (not in manifest): extra.txt"
    )
    # the right hashes get as far as the identity, which this small bundle does not have
    with pytest.raises(ArchiveError, match=r"^metadata\.json exp_hash None is not a 12-hex bundle hash$"):
        check_unpacked(root, HERE, hashed)
    (root / "models" / "model.onnx").write_bytes(
        b"changed on disk"
    )  # read and hashed here without ``hashed``
    with pytest.raises(ArchiveError, match=r"^the test bundle does not match its manifest: changed: models/"):
        check_unpacked(root, HERE)
    (root / "MANIFEST.json").unlink()
    with pytest.raises(ArchiveError, match=r"^the test holds no MANIFEST\.json: not a bundle$"):
        check_unpacked(root, HERE)


# -- place ------------------------------------------------------------------------------------------------
def test_a_bundle_goes_where_there_is_none(artifacts: Path) -> None:
    root, manifest = arrived(artifacts, GOOD)
    placed = place(root, artifacts / HASH, manifest, HERE, force=False)
    assert placed == Placed(artifacts / HASH, manifest.content_digest, already_existed=False)
    assert placed.exp_hash == HASH and not root.exists()
    assert contents(artifacts / HASH) == {
        **GOOD,
        "MANIFEST.json": (artifacts / HASH / "MANIFEST.json").read_bytes(),
    }


def test_reports_that_arrive_with_a_bundle_are_not_kept(artifacts: Path) -> None:
    """validation/ is not sealed: reports inside an archive are whoever made it's claim (a forged pass
    bound to the arriving content digest would otherwise read as this host's verdict)."""
    root, manifest = arrived(artifacts, GOOD)
    (root / "validation").mkdir()
    (root / "validation" / "onnx_validation.json").write_text('{"verdict": "passed"}')
    place(root, artifacts / HASH, manifest, HERE, force=False)
    assert not (artifacts / HASH / "validation").exists()


def test_the_same_content_already_there_changes_nothing(artifacts: Path) -> None:
    existing = sealed(artifacts / HASH, GOOD)
    (artifacts / HASH / "validation").mkdir()
    (artifacts / HASH / "validation" / "onnx_validation.json").write_text("{}")  # reports: not content
    before = contents(artifacts / HASH)
    root, manifest = arrived(artifacts, GOOD)
    placed = place(root, artifacts / HASH, manifest, HERE, force=False)
    assert placed == Placed(artifacts / HASH, existing.content_digest, already_existed=True)
    assert contents(artifacts / HASH) == before
    assert root.exists()  # the caller's temporary copy, which it removes


def test_other_content_under_the_same_hash_is_refused_naming_both_digests_and_the_file(
    artifacts: Path,
) -> None:
    good = sealed(artifacts / HASH, GOOD)
    before = contents(artifacts / HASH)
    root, bad = arrived(artifacts, BAD)
    with pytest.raises(ArchiveError) as info:
        place(root, artifacts / HASH, bad, HERE, force=False)
    assert str(info.value) == (
        f"{HASH} already exists with other content ({good.content_digest} here, {bad.content_digest} in the "
        "test; differs: models/model.onnx); --force replaces it"
    )
    assert good.content_digest != bad.content_digest
    assert contents(artifacts / HASH) == before


def test_force_replaces_other_content_and_its_reports(artifacts: Path) -> None:
    good = sealed(artifacts / HASH, GOOD)
    (artifacts / HASH / "validation").mkdir()
    (artifacts / HASH / "validation" / "onnx_validation.json").write_text('{"passed": true}')
    root, bad = arrived(artifacts, BAD)
    expected = contents(root)
    placed = place(root, artifacts / HASH, bad, HERE, force=True)
    assert placed == Placed(
        artifacts / HASH,
        bad.content_digest,
        already_existed=False,
        replaced=ContentChange(good.content_digest, bad.content_digest, "models/model.onnx"),
    )
    assert contents(artifacts / HASH) == expected  # the reports about the old bytes went with them
    assert visible(artifacts) == [HASH]  # no old copy left beside it


def test_a_copy_that_does_not_match_its_own_manifest_is_not_the_same_content(artifacts: Path) -> None:
    good = sealed(artifacts / HASH, GOOD)
    (artifacts / HASH / "models" / "model.onnx").write_bytes(b"edited after sealing")
    root, manifest = arrived(artifacts, GOOD)
    with pytest.raises(ArchiveError) as info:
        place(root, artifacts / HASH, manifest, HERE, force=False)
    assert str(info.value) == (
        f"{HASH} already exists with this content ({good.content_digest}) but its files do not match it "
        "(changed: models/model.onnx); --force replaces it"
    )
    placed = place(root, artifacts / HASH, manifest, HERE, force=True)
    assert placed.replaced == ContentChange(
        good.content_digest, good.content_digest, "changed: models/model.onnx"
    )
    assert (artifacts / HASH / "models" / "model.onnx").read_bytes() == b"good model"


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        (
            lambda p: (p / "MANIFEST.json").write_text((p / "MANIFEST.json").read_text() + "\n"),
            "MANIFEST.json",
        ),
        (lambda p: (p / "MANIFEST.json.sig").write_bytes(b"sig"), "MANIFEST.json.sig"),
    ],
    ids=["manifest-text", "signature"],
)
def test_exact_placing_wants_the_manifest_text_and_signature_too(
    artifacts: Path, edit: Callable[[Path], object], found: str
) -> None:
    """The pull cache holds what it was served: the same content with another MANIFEST.json text or signature
    (the signature is checked against that text) is replaced; for import and pull it is the same content."""
    existing = sealed(artifacts / HASH, GOOD)
    edit(artifacts / HASH)
    root, manifest = arrived(artifacts, GOOD)
    assert place(root, artifacts / HASH, manifest, HERE, force=False).already_existed
    with pytest.raises(ArchiveError) as info:
        place(root, artifacts / HASH, manifest, HERE, force=False, exact=True)
    assert str(info.value) == (
        f"{HASH} already exists with this content ({existing.content_digest}) but another {found}; "
        "--force replaces it"
    )
    expected = contents(root)
    placed = place(root, artifacts / HASH, manifest, HERE, force=True, exact=True)
    assert placed.replaced == ContentChange(
        existing.content_digest, existing.content_digest, f"another {found}"
    )
    assert contents(artifacts / HASH) == expected
    root, manifest = arrived(artifacts, GOOD, "again")
    assert place(root, artifacts / HASH, manifest, HERE, force=False, exact=True).already_existed


@pytest.mark.parametrize(
    ("make", "refusal", "detail"),
    [
        (lambda p: p.mkdir(), "without a MANIFEST.json", "no MANIFEST.json"),
        (lambda p: p.write_text("a file"), "and is not a bundle directory", "not a bundle directory"),
        (
            lambda p: (p.mkdir(), (p / "MANIFEST.json").write_text("[]")),
            "with an unreadable MANIFEST.json (MANIFEST.json: expected schema_version 1)",
            "MANIFEST.json: expected schema_version 1",
        ),
    ],
    ids=["empty-directory", "file", "bad-manifest"],
)
def test_what_is_not_a_readable_bundle_is_refused_and_replaced_only_with_force(
    artifacts: Path, make: Callable[[Path], object], refusal: str, detail: str
) -> None:
    make(artifacts / HASH)
    root, manifest = arrived(artifacts, GOOD)
    with pytest.raises(ArchiveError) as info:
        place(root, artifacts / HASH, manifest, HERE, force=False)
    assert str(info.value) == f"{HASH} already exists {refusal}; --force replaces it"
    placed = place(root, artifacts / HASH, manifest, HERE, force=True)
    assert placed.replaced == ContentChange(None, manifest.content_digest, detail)
    assert BundleManifest.load(artifacts / HASH).verify(artifacts / HASH).ok


def test_a_symlink_in_the_bundles_place_is_not_followed(artifacts: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    sealed(elsewhere, GOOD)
    (artifacts / HASH).symlink_to(elsewhere)
    root, manifest = arrived(artifacts, GOOD)
    with pytest.raises(ArchiveError, match="already exists and is not a bundle directory"):
        place(root, artifacts / HASH, manifest, HERE, force=False)
    place(root, artifacts / HASH, manifest, HERE, force=True)
    assert not (artifacts / HASH).is_symlink() and (elsewhere / "MANIFEST.json").is_file()
    assert not root.exists() and not root.is_symlink()  # the link it swapped out was removed, not followed


def test_a_bundle_placed_by_another_process_meanwhile_is_judged_like_any_other(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing there when looked at; by the rename, another import has put other content there."""
    root, bad = arrived(artifacts, BAD)
    rename = os.rename

    def racing(src: Path, dst: Path) -> None:
        if Path(dst) == artifacts / HASH and not (artifacts / HASH).exists():
            sealed(artifacts / HASH, GOOD)
        rename(src, dst)

    monkeypatch.setattr(placement.os, "rename", racing)
    with pytest.raises(
        ArchiveError, match=r"already exists with other content .* differs: models/model\.onnx"
    ):
        place(root, artifacts / HASH, bad, HERE, force=False)
    assert (artifacts / HASH / "models" / "model.onnx").read_bytes() == b"good model"


def test_a_failed_move_is_one_line_naming_the_place(artifacts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, manifest = arrived(artifacts, GOOD)

    def refuse(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(placement.os, "rename", refuse)
    with pytest.raises(BundleError) as info:
        place(root, artifacts / HASH, manifest, HERE, force=False)
    assert (
        str(info.value)
        == f"cannot move the bundle into place at {artifacts / HASH}: Invalid cross-device link"
    )


def test_a_failed_replacement_is_one_line_and_keeps_the_old_bundle(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed(artifacts / HASH, GOOD)
    root, bad = arrived(artifacts, BAD)

    def refuse(a: Path, b: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(placement, "replace_dir", refuse)
    with pytest.raises(BundleError) as info:
        place(root, artifacts / HASH, bad, HERE, force=True)
    assert (
        str(info.value) == f"cannot move the bundle into place at {artifacts / HASH}: No space left on device"
    )
    assert (artifacts / HASH / "models" / "model.onnx").read_bytes() == b"good model"


# -- replace_dir: the new copy complete before it takes the name, the old one deleted only after ------------
@pytest.fixture(params=["swap", "two-renames"])
def swap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    if request.param == "two-renames":
        monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    else:
        probe = [tmp_path / "probe-a", tmp_path / "probe-b"]
        for d in probe:
            d.mkdir()
        if not atomic.exchange(*probe):
            pytest.skip("no atomic directory swap (renameat2 RENAME_EXCHANGE) on this file system")
    return str(request.param)


def test_replace_dir_puts_only_a_whole_bundle_at_the_name_and_deletes_the_old_one_after(
    artifacts: Path, swap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever takes the final name is the complete new bundle; with a swap the name never lacks a whole
    bundle, with two renames the old one is aside (whole) while the new one moves in; then the old is deleted."""
    final = artifacts / HASH
    good = sealed(final, GOOD)
    root, _bad = arrived(artifacts, BAD)
    seen: list[tuple[str, str, str]] = []

    def whole(path: Path) -> str:
        manifest = BundleManifest.load(path)
        assert manifest.verify(path).ok, path
        return "good" if manifest.content_digest == good.content_digest else "bad"

    def old_copy() -> str:
        aside = [p / HASH for p in artifacts.glob(f"{placement.OLD_PREFIX}{HASH}-*")]
        return whole(final) if final.exists() else ", ".join(whole(p) for p in aside) + " aside"

    rename, exchange = os.rename, atomic.exchange

    def spy_rename(src: Path, dst: Path) -> None:
        if Path(dst) == final:
            seen.append(("rename", whole(Path(src)), old_copy()))
        rename(src, dst)

    def spy_exchange(a: Path, b: Path) -> bool:
        if Path(b) == final:
            seen.append(("swap", whole(a), whole(b)))
        return exchange(a, b)

    monkeypatch.setattr(placement.os, "rename", spy_rename)
    if swap == "swap":
        monkeypatch.setattr(atomic, "exchange", spy_exchange)
    replace_dir(root, final)
    assert seen == ([("swap", "bad", "good")] if swap == "swap" else [("rename", "bad", "good aside")])
    assert whole(final) == "bad" and not root.exists()
    assert visible(artifacts) == [HASH]  # the old copy deleted once the new one had the name


def test_replace_dir_puts_the_old_bundle_back_when_the_new_one_cannot_take_the_name(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    final = artifacts / HASH
    sealed(final, GOOD)
    root, _bad = arrived(artifacts, BAD)
    rename = os.rename

    def refuse_the_new_one(src: Path, dst: Path) -> None:
        if Path(src) == root:
            raise OSError(5, "Input/output error")
        rename(src, dst)

    monkeypatch.setattr(placement.os, "rename", refuse_the_new_one)
    with pytest.raises(OSError, match="Input/output error"):
        replace_dir(root, final)
    assert (final / "models" / "model.onnx").read_bytes() == b"good model"
    assert visible(artifacts) == [HASH] and root.is_dir()


def test_replace_dir_where_nothing_is_there_any_more_is_a_rename(artifacts: Path) -> None:
    root, _ = arrived(artifacts, GOOD)
    replace_dir(root, artifacts / HASH)
    assert (artifacts / HASH / "models" / "model.onnx").read_bytes() == b"good model"
    assert visible(artifacts) == [HASH]


# -- what differs, in one line ----------------------------------------------------------------------------
def manifest_of(files: dict[str, str]) -> BundleManifest:
    return BundleManifest({rel: {"sha256": sha * 64, "size": 1} for rel, sha in files.items()})


def test_files_that_differ_lists_models_then_golden_data_then_the_rest_with_where_each_is_only() -> None:
    old = manifest_of(
        {"metadata.json": "a", "models/model.onnx": "a", "reference/outputs.npz": "a", "gone": "a"}
    )
    new = manifest_of(
        {"metadata.json": "b", "models/model.onnx": "b", "reference/outputs.npz": "a", "models/x": "a"}
    )
    assert files_that_differ(old, new, only_old="only here", only_new="only there") == (
        "models/model.onnx, models/x (only there), gone (only here), metadata.json"
    )
    assert files_that_differ(old, new, only_old="removed", only_new="new", limit=2) == (
        "models/model.onnx, models/x (new) +2 more"
    )
    assert files_that_differ(old, old, only_old="-", only_new="-") == ""


def test_a_file_whose_size_alone_differs_differs() -> None:
    old = manifest_of({"config.yaml": "a"})
    new = BundleManifest({"config.yaml": {"sha256": "a" * 64, "size": 2}})
    assert files_that_differ(old, new, only_old="-", only_new="-") == "config.yaml"


def test_the_reference_data_comes_before_other_files() -> None:
    old = manifest_of({"a.txt": "a", "reference/inputs.npy": "a", "models/m": "a"})
    new = manifest_of({"a.txt": "b", "reference/inputs.npy": "b", "models/m": "b"})
    assert files_that_differ(old, new, only_old="-", only_new="-") == "models/m, reference/inputs.npy, a.txt"


def test_five_files_show_four_and_one_more() -> None:
    old = manifest_of({f"f{i}": "a" for i in range(5)})
    new = manifest_of({f"f{i}": "b" for i in range(5)})
    assert files_that_differ(old, new, only_old="-", only_new="-") == "f0, f1, f2, f3 +1 more"
    four = manifest_of({f"f{i}": "b" for i in range(4)})
    assert files_that_differ(
        manifest_of({f"f{i}": "a" for i in range(4)}), four, only_old="-", only_new="-"
    ) == ("f0, f1, f2, f3")


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            ContentChange("sha256:old", "sha256:new", "models/model.onnx"),
            "content changed: sha256:old -> sha256:new (models/model.onnx)",
        ),
        (
            ContentChange("sha256:same", "sha256:same", "changed: models/model.onnx"),
            "restored sha256:same: the files there did not match it (changed: models/model.onnx)",
        ),
        (
            ContentChange(None, "sha256:new", "no MANIFEST.json"),
            "replaced what was there (no MANIFEST.json) with sha256:new",
        ),
    ],
    ids=["other-content", "repaired", "unreadable"],
)
def test_a_content_change_is_one_line(change: ContentChange, line: str) -> None:
    assert change.describe() == line
