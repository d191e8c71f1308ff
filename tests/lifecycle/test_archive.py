"""archive and import: deterministic bytes, round trip, and refusal of unsafe archives."""

from __future__ import annotations

import io
import json
import shutil
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from conv2d_bundle import cli
from conv2d_bundle.bundle.archive import IMPORT_PREFIX, create_archive, import_archive
from conv2d_bundle.bundle.digest import recompute_exp_hash, sha256_file
from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.errors import ArchiveError


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli.main, list(args))
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_archive_twice_is_byte_identical_and_imports_with_original_hash(
    example_bundle: Path, tmp_path: Path, fmt: str
) -> None:
    art = str(example_bundle.parent)
    h = example_bundle.name
    paths = []
    for run in ("one", "two"):
        code, out, err = invoke(
            "pack", "archive", h[:6], "--output-dir", art, "--format", fmt, "--output", str(tmp_path / run)
        )
        assert code == 0, err
        paths.append(Path(out.splitlines()[0]))
    a1, a2 = paths
    assert a1.name == f"dogs_v1-{h}.{fmt}"
    assert a1.read_bytes() == a2.read_bytes()
    assert (a1.parent / f"{a1.name}.sha256").read_text() == f"{sha256_file(a1)}  {a1.name}\n"

    imported = tmp_path / "imported"
    code, out, err = invoke("pack", "import", str(a1), "--output-dir", str(imported))
    assert code == 0, err
    assert f"imported: {h}" in out
    assert BundleManifest.load(imported / h).verify(imported / h).ok
    assert recompute_exp_hash(imported / h) == h
    assert BundleManifest.load(imported / h).files == BundleManifest.load(example_bundle).files
    assert sorted(p.name for p in imported.iterdir()) == [h]  # no temporary directory left

    code, out, _ = invoke("pack", "import", str(a2), "--output-dir", str(imported))
    assert code == 0 and "already exists" in out


def test_archive_layout_is_normalized(example_bundle: Path, tmp_path: Path) -> None:
    bundle = Bundle(example_bundle)
    tgz = bundle.create_archive(format="tar.gz", output_dir=tmp_path)
    raw = tgz.read_bytes()
    assert raw[4:8] == b"\0\0\0\0" and not raw[3] & 0x08  # gzip mtime 0, no FNAME field
    top = f"dogs_v1-{example_bundle.name}"
    with tarfile.open(tgz) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and names[0] == top
    assert all(n == top or n.startswith(top + "/") for n in names)
    assert not any("/validation/" in n for n in names)  # reports are not the bundle's content
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 315532800)}
    assert {m.mode for m in members if m.isdir()} == {0o755}
    assert {m.mode for m in members if m.isreg()} <= {0o644, 0o755}
    z = create_archive(bundle, "zip", tmp_path)
    with zipfile.ZipFile(z) as zf:
        infos = zf.infolist()
    assert [i.filename.rstrip("/") for i in infos] == names
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_archive_refuses_a_bundle_that_does_not_match_its_manifest(bundle_copy: Path, tmp_path: Path) -> None:
    (bundle_copy / "metrics.json").write_text("{}\n")
    code, _, err = invoke(
        "pack",
        "archive",
        bundle_copy.name,
        "--output-dir",
        str(bundle_copy.parent),
        "--output",
        str(tmp_path / "o"),
    )
    assert code == 2 and "does not match its manifest" in err
    assert not list((tmp_path / "o").glob("*.tar.gz"))


# ------------------------------------------------------------------------------------- unsafe archives


def _tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


UNSAFE_TARS = {
    "dotdot": ([_file("b-1/ok"), _file("../x")], "'..'"),
    "dotdot_inside": ([_file("b-1/../../x")], "'..'"),
    "absolute": ([_file("/tmp/conv2d-lifecycle-abs-x")], "absolute path"),
    "symlink": ([_file("b-1/ok"), _special("b-1/link", tarfile.SYMTYPE, "/etc/passwd")], "symlink"),
    "hardlink": ([_file("b-1/ok"), _special("b-1/hard", tarfile.LNKTYPE, "b-1/ok")], "hard link"),
    "fifo": ([_special("b-1/fifo", tarfile.FIFOTYPE)], "fifo"),
    "device": ([_special("b-1/dev", tarfile.CHRTYPE)], "device"),
    "two_tops": ([_file("b-1/ok"), _file("b-2/other")], "outside the archive's top folder"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TARS))
def test_import_refuses_unsafe_tar(tmp_path: Path, case: str) -> None:
    entries, why = UNSAFE_TARS[case]
    work = tmp_path / "work"
    work.mkdir()
    archive = _tar(work / "evil.tar.gz", entries)
    out = work / "deep" / "artifacts"
    code, _, err = invoke("pack", "import", str(archive), "--output-dir", str(out))
    assert code == 2
    assert why in err, err
    assert list(out.iterdir()) == []  # nothing left behind, not even the temporary directory
    assert sorted(p.name for p in work.iterdir()) == ["deep", "evil.tar.gz"]
    assert not (work / "deep" / "x").exists() and not Path("/tmp/conv2d-lifecycle-abs-x").exists()


def test_import_refuses_zip_that_expands_past_the_limit(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("b-1/zeros", b"\0" * (3 << 20))
    assert archive.stat().st_size < 10_000
    out = tmp_path / "out"
    code, _, err = invoke("pack", "import", str(archive), "--output-dir", str(out), "--max-size", "1M")
    assert code == 2 and "past the limit" in err
    assert list(out.iterdir()) == []


def test_import_counts_bytes_when_a_zip_lies_about_its_sizes(tmp_path: Path) -> None:
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("b-1/zeros", b"\0" * (2 << 20))
    raw = bytearray(archive.read_bytes())
    for sig, offset in (
        (b"PK\x03\x04", 22),
        (b"PK\x01\x02", 24),
    ):  # uncompressed size: local header, central dir
        at = raw.index(sig)
        raw[at + offset : at + offset + 4] = struct.pack("<I", 100)
    archive.write_bytes(bytes(raw))
    out = tmp_path / "out"
    # zipfile itself stops reading at the declared size (then the CRC fails); our byte count is the second guard
    with pytest.raises(ArchiveError, match=r"declared size|Bad CRC-32"):
        import_archive(archive, out, max_bytes=1 << 20)
    assert list(out.iterdir()) == []


def test_import_refuses_zip_symlink_and_too_many_entries(tmp_path: Path) -> None:
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("b-1/link")
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="symlink"):
        import_archive(link, tmp_path / "out")
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(20):
            zf.writestr(f"b-1/f{i}", b"")
    with pytest.raises(ArchiveError, match="entries, more than the limit"):
        import_archive(many, tmp_path / "out", max_entries=10)
    assert list((tmp_path / "out").iterdir()) == []


def test_import_refuses_a_tampered_bundle_and_a_non_bundle(example_bundle: Path, tmp_path: Path) -> None:
    good = create_archive(Bundle(example_bundle), "tar.gz", tmp_path)
    top = f"dogs_v1-{example_bundle.name}"
    entries = []
    with tarfile.open(good) as tf:
        for m in tf.getmembers():
            data = tf.extractfile(m).read() if m.isreg() else None  # type: ignore[union-attr]  # regular member
            if m.name == f"{top}/metrics.json":
                data = json.dumps({"accuracy": 1.0}).encode()
            entries.append((m, data))
    bad = _tar(tmp_path / "tampered.tar.gz", entries)
    with pytest.raises(ArchiveError, match=r"does not match its manifest: changed: metrics\.json"):
        import_archive(bad, tmp_path / "out")
    plain = _tar(tmp_path / "plain.tar.gz", [_file("b-1/readme.txt")])
    with pytest.raises(ArchiveError, match="not a bundle"):
        import_archive(plain, tmp_path / "out")
    assert not [p for p in (tmp_path / "out").iterdir()]


def test_import_refuses_a_bundle_whose_identity_was_rewritten(bundle_copy: Path, tmp_path: Path) -> None:
    from tests.conftest import reseal

    fake = bundle_copy.parent / "abcdefabcdef"
    shutil.move(bundle_copy, fake)
    meta = json.loads((fake / "metadata.json").read_text())
    meta["exp_hash"] = fake.name
    (fake / "metadata.json").write_text(json.dumps(meta))
    reseal(fake)
    archive = create_archive(Bundle(fake), "zip", tmp_path)
    with pytest.raises(ArchiveError, match="config and weights hash to"):
        import_archive(archive, tmp_path / "out")
    assert not any(p.name.startswith(IMPORT_PREFIX) for p in (tmp_path / "out").iterdir())


def test_byte_budget_stops_at_declared_size_and_total_limit() -> None:
    from conv2d_bundle.bundle.archive import _Budget

    with pytest.raises(ArchiveError, match="past its declared size of 10"):
        _Budget(1 << 20, 10).copy(io.BytesIO(b"\0" * 11), io.BytesIO(), "f", declared=10)
    budget = _Budget(15, 10)
    budget.copy(io.BytesIO(b"\0" * 10), io.BytesIO(), "a", declared=10)
    with pytest.raises(ArchiveError, match="past the limit of 15 bytes"):
        budget.copy(io.BytesIO(b"\0" * 10), io.BytesIO(), "b", declared=10)


def test_signature_travels_with_the_archive(bundle_copy: Path, tmp_path: Path) -> None:
    (bundle_copy / "MANIFEST.json.sig").write_bytes(b"signature bytes")
    archive = create_archive(Bundle(bundle_copy), "zip", tmp_path)
    result = import_archive(archive, tmp_path / "out")
    assert (result.bundle_dir / "MANIFEST.json.sig").read_bytes() == b"signature bytes"
    assert not result.already_existed


# ------------------------------------------------------------------ same EXP_HASH, other content (issue 23)


def _good_and_bad_archive(example_bundle: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(artifacts dir holding the good bundle with a passing report, the good one there, bad's archive)."""
    from tests.same_hash import bad_copy

    good = tmp_path / "artifacts" / example_bundle.name
    shutil.copytree(example_bundle, good)
    (good / "validation").mkdir(exist_ok=True)
    (good / "validation" / "onnx_validation.json").write_text('{"target": "onnx", "passed": true}\n')
    bad = bad_copy(example_bundle, tmp_path / "bad-artifacts")
    return good.parent, good, create_archive(Bundle(bad), "tar.gz", tmp_path / "archives")


def _files(bundle: Path) -> dict[str, bytes]:
    return {
        p.relative_to(bundle).as_posix(): p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file()
    }


def test_import_of_other_content_under_an_existing_hash_is_refused_naming_both_digests(
    example_bundle: Path, tmp_path: Path
) -> None:
    """The attack: bad's archive imported where good is used to say "already exists ... nothing changed"."""
    artifacts, good, bad_archive = _good_and_bad_archive(example_bundle, tmp_path)
    before = _files(good)
    here = BundleManifest.load(good).content_digest
    there = BundleManifest.load(tmp_path / "bad-artifacts" / good.name).content_digest
    code, out, err = invoke("pack", "import", str(bad_archive), "--output-dir", str(artifacts))
    assert (code, out) == (2, "")
    assert err == (
        f"error: {good.name} already exists with other content ({here} here, {there} in the archive; "
        "differs: models/model.onnx); --force replaces it\n"
    )
    assert "nothing changed" not in out + err
    assert _files(good) == before  # untouched, its report included
    assert sorted(p.name for p in artifacts.iterdir()) == [good.name]  # no temporary directory left


def test_import_force_replaces_other_content_and_drops_the_old_reports(
    example_bundle: Path, tmp_path: Path
) -> None:
    artifacts, good, bad_archive = _good_and_bad_archive(example_bundle, tmp_path)
    here = BundleManifest.load(good).content_digest
    bad = tmp_path / "bad-artifacts" / good.name
    there = BundleManifest.load(bad).content_digest
    code, out, err = invoke("pack", "import", str(bad_archive), "--output-dir", str(artifacts), "--force")
    assert code == 0, err
    assert out.splitlines() == [
        f"Bundle replaced: {good.name}",
        f"  Path: {good}",
        f"  Content: {there}",
        f"  content changed: {here} -> {there} (models/model.onnx)",
    ]
    assert _files(good) == _files(bad)  # bad's bytes, and no report about good's left beside them
    assert not (good / "validation").exists()
    assert sorted(p.name for p in artifacts.iterdir()) == [good.name]
    code, out, err = invoke("pack", "import", str(bad_archive), "--output-dir", str(artifacts), "--json")
    assert code == 0, err
    info = json.loads(out)  # the same content again: nothing changed
    assert info["already_existed"] is True and info["replaced_content_digest"] is None
    assert info["content_digest"] == there


def test_import_force_moves_in_only_a_complete_bundle_and_removes_the_old_one_after(
    example_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the moment the name changes hands, the new copy is whole (its manifest verifies) and the old one is
    still whole at the name (a swap) or aside (two renames, where no swap exists)."""
    from conv2d_bundle.bundle import atomic, placement

    artifacts, good, bad_archive = _good_and_bad_archive(example_bundle, tmp_path)
    here = BundleManifest.load(good).content_digest
    there = BundleManifest.load(tmp_path / "bad-artifacts" / good.name).content_digest
    moments: list[tuple[str, str]] = []

    def digest_of_whole(path: Path) -> str:
        manifest = BundleManifest.load(path)
        assert manifest.verify(path).ok, f"{path} is not a whole bundle"
        return manifest.content_digest

    exchange = atomic.exchange

    def watched(a: Path, b: Path) -> bool:
        if Path(b) == good:
            moments.append((digest_of_whole(Path(a)), digest_of_whole(Path(b))))
        return exchange(a, b)

    monkeypatch.setattr(atomic, "exchange", watched)
    code, _, err = invoke("pack", "import", str(bad_archive), "--output-dir", str(artifacts), "--force")
    assert code == 0, err
    # asked to swap a whole new copy with the whole old one (asked even where the system cannot swap: then it
    # takes two renames, see tests/unit/test_placement.py)
    assert moments == [(there, here)]
    assert digest_of_whole(good) == there
    assert not [p for p in artifacts.iterdir() if p.name.startswith((placement.OLD_PREFIX, IMPORT_PREFIX))]


def test_import_of_the_same_content_still_says_nothing_changed(example_bundle: Path, tmp_path: Path) -> None:
    artifacts, good, _ = _good_and_bad_archive(example_bundle, tmp_path)
    same = create_archive(Bundle(good), "zip", tmp_path / "archives")
    code, out, err = invoke("pack", "import", str(same), "--output-dir", str(artifacts))
    assert code == 0, err
    assert out.splitlines()[0] == f"Bundle already exists (archive verified, nothing changed): {good.name}"
    assert (good / "validation" / "onnx_validation.json").is_file()  # the same bytes: its report still holds


def test_import_over_a_copy_that_no_longer_matches_its_manifest_is_refused(
    example_bundle: Path, tmp_path: Path
) -> None:
    """Same manifest, but the files here were changed after sealing: not "nothing changed" either."""
    artifacts, good, _ = _good_and_bad_archive(example_bundle, tmp_path)
    same = create_archive(Bundle(good), "zip", tmp_path / "archives")
    (good / "metrics.json").write_text('{"accuracy": 1.0}\n')
    code, _, err = invoke("pack", "import", str(same), "--output-dir", str(artifacts))
    assert code == 2
    assert "but its files do not match it (changed: metrics.json); --force replaces it" in err
    code, out, err = invoke("pack", "import", str(same), "--output-dir", str(artifacts), "--force")
    assert code == 0 and "restored sha256:" in out, err
    assert BundleManifest.load(good).verify(good).ok
