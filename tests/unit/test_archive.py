"""Archives of a bundle: the same bundle always gives the same bytes in a normalized layout, and import
refuses every unsafe or inauthentic archive before it can write outside its temporary directory.

The bundle here is the smallest one import accepts: the example's config.yaml and metadata.json (its identity
recomputes from those two), a model file, an executable script and the manifest."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from conv2d_bundle.bundle import archive
from conv2d_bundle.bundle.archive import create_archive, import_archive
from conv2d_bundle.bundle.digest import sha256_file
from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.errors import ArchiveError, BundleError

FORMATS = ["tar.gz", "zip"]


@pytest.fixture
def small(example_bundle: Path, tmp_path: Path) -> Path:
    root = tmp_path / "artifacts" / example_bundle.name
    (root / "models").mkdir(parents=True)
    for name in ("config.yaml", "metadata.json"):
        shutil.copy(example_bundle / name, root / name)
    (root / "models" / "model.onnx").write_bytes(b"\x08\x07onnx" * 100)
    (root / "docs").mkdir()
    (root / "docs" / "run.sh").write_text("#!/bin/sh\n")
    (root / "docs" / "run.sh").chmod(0o700)
    (root / "docs" / "sub").mkdir()
    (root / "docs" / "sub" / "notes.md").write_text("nested\n")
    BundleManifest.build(root).write(root)
    (root / "validation").mkdir()
    (root / "validation" / "onnx_validation.json").write_text("{}")  # a report: not archived
    return root


@pytest.fixture
def top(small: Path) -> str:
    return f"dogs_v1-{small.name}"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "imported"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# -- creating ---------------------------------------------------------------------------------------
def test_tar_gz_layout_is_normalized(small: Path, top: str, tmp_path: Path) -> None:
    tgz = create_archive(Bundle(small), "tar.gz", tmp_path / "a" / "b")  # the output directory is made
    assert tgz == tmp_path / "a" / "b" / f"{top}.tar.gz"
    raw = tgz.read_bytes()
    assert raw[4:8] == b"\0\0\0\0" and not raw[3] & 0x08  # gzip mtime 0, no file name
    with tarfile.open(tgz) as tf:
        members = {m.name: m for m in tf.getmembers()}
        assert tf.extractfile(f"{top}/models/model.onnx").read() == (small / "models/model.onnx").read_bytes()  # type: ignore[union-attr]
    assert list(members) == [
        top,
        f"{top}/MANIFEST.json",
        f"{top}/config.yaml",
        f"{top}/docs",
        f"{top}/docs/run.sh",
        f"{top}/docs/sub",
        f"{top}/docs/sub/notes.md",
        f"{top}/metadata.json",
        f"{top}/models",
        f"{top}/models/model.onnx",
    ]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members.values()} == {
        (0, 0, "", "", 315532800)
    }
    assert {n: m.mode for n, m in members.items() if m.isdir()} == dict.fromkeys(
        [top, f"{top}/docs", f"{top}/docs/sub", f"{top}/models"], 0o755
    )
    assert members[f"{top}/docs/run.sh"].mode == 0o755 and members[f"{top}/config.yaml"].mode == 0o644
    assert members[f"{top}/models/model.onnx"].size == 600
    assert {m.name for m in members.values() if m.isreg()} == {
        n for n in members if n.count("/") and not n.endswith(("docs", "sub", "models"))
    }


def test_zip_layout_is_normalized(small: Path, top: str, tmp_path: Path) -> None:
    z = create_archive(Bundle(small), "zip", tmp_path)
    with zipfile.ZipFile(z) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        assert zf.read(f"{top}/models/model.onnx") == (small / "models/model.onnx").read_bytes()
    assert list(infos) == [
        f"{top}/",
        f"{top}/MANIFEST.json",
        f"{top}/config.yaml",
        f"{top}/docs/",
        f"{top}/docs/run.sh",
        f"{top}/docs/sub/",
        f"{top}/docs/sub/notes.md",
        f"{top}/metadata.json",
        f"{top}/models/",
        f"{top}/models/model.onnx",
    ]
    assert {i.date_time for i in infos.values()} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.create_system for i in infos.values()} == {3}
    modes = {n: i.external_attr >> 16 for n, i in infos.items()}
    for d in (
        f"{top}/",
        f"{top}/docs/",
        f"{top}/models/",
    ):  # Unix 0755 directories, MS-DOS attribute 'directory'
        assert infos[d].external_attr == (stat.S_IFDIR | 0o755) << 16 | 0x10
        assert infos[d].file_size == 0
    assert modes[f"{top}/docs/run.sh"] == stat.S_IFREG | 0o755
    assert modes[f"{top}/config.yaml"] == stat.S_IFREG | 0o644
    assert infos[f"{top}/models/model.onnx"].compress_type == zipfile.ZIP_DEFLATED
    assert infos[f"{top}/models/model.onnx"].file_size == 600


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_bundle_same_bytes_with_a_checksum_file(small: Path, top: str, tmp_path: Path, fmt: str) -> None:
    first = create_archive(Bundle(small), fmt, tmp_path / "one")
    os.utime(small / "config.yaml", (0, 0))  # times on disk are not archived
    second = create_archive(Bundle(small), fmt, tmp_path / "two")
    assert first.read_bytes() == second.read_bytes()
    assert (first.parent / f"{top}.{fmt}.sha256").read_text() == f"{sha256_file(first)}  {top}.{fmt}\n"
    assert stat.S_IMODE(first.stat().st_mode) == 0o644
    assert leftovers(tmp_path / "one") == [f"{top}.{fmt}", f"{top}.{fmt}.sha256"]  # no temporary file


def test_archive_goes_beside_the_bundle_by_default(small: Path, top: str) -> None:
    assert create_archive(Bundle(small)) == small.parent / f"{top}.tar.gz"


def test_archive_of_a_bundle_without_a_name(small: Path, tmp_path: Path) -> None:
    from types import SimpleNamespace

    bundle = Bundle(small)
    nameless = SimpleNamespace(
        exp_name="", exp_hash=bundle.exp_hash, bundle_dir=small, manifest=bundle.manifest
    )
    assert create_archive(nameless, "zip", tmp_path).name == f"bundle-{small.name}.zip"  # type: ignore[arg-type]


def test_unknown_format_is_refused(small: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match=r"^archive format 'rar': use one of tar\.gz, zip$"):
        create_archive(Bundle(small), "rar", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_a_bundle_that_disagrees_with_its_manifest_is_not_archived(small: Path, tmp_path: Path) -> None:
    (small / "config.yaml").write_text("changed: true\n")
    (small / "notes.txt").write_text("added")
    with pytest.raises(ArchiveError) as info:
        create_archive(Bundle(small), "zip", tmp_path)
    assert str(info.value) == (
        f"{small.name} does not match its manifest, not archiving it: "
        "changed: config.yaml; extra (not in manifest): notes.txt"
    )
    assert leftovers(tmp_path) == ["artifacts"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failed_write_leaves_no_partial_archive(
    small: Path, tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive, "_write_zip" if fmt == "zip" else "_write_tar_gz", broken)
    with pytest.raises(OSError, match="No space left"):
        create_archive(Bundle(small), fmt, tmp_path / "o")
    assert leftovers(tmp_path / "o") == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_archive_being_written_is_hidden_beside_its_final_name(
    small: Path, top: str, tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until it is complete, the archive has another name: hidden, in the output directory (so that the
    rename into place is atomic), and saying what it will be."""
    during: list[str] = []
    writer = "_write_zip" if fmt == "zip" else "_write_tar_gz"
    write = getattr(archive, writer)

    def spy(raw: object, *args: object) -> None:
        during.extend(leftovers(tmp_path / "o"))
        write(raw, *args)

    monkeypatch.setattr(archive, writer, spy)
    create_archive(Bundle(small), fmt, tmp_path / "o")
    assert len(during) == 1 and re.fullmatch(rf"\.{re.escape(top)}\.{re.escape(fmt)}\.[^.]+\.tmp", during[0])


def test_signature_travels_with_the_archive_but_not_a_linked_one(
    small: Path, top: str, tmp_path: Path
) -> None:
    (small / "MANIFEST.json.sig").write_bytes(b"signature bytes")
    with zipfile.ZipFile(create_archive(Bundle(small), "zip", tmp_path)) as zf:
        assert zf.read(f"{top}/MANIFEST.json.sig") == b"signature bytes"
        assert zf.namelist().index(f"{top}/MANIFEST.json.sig") == 2  # in sorted place
    (small / "MANIFEST.json.sig").unlink()
    (small / "MANIFEST.json.sig").symlink_to(tmp_path / "elsewhere.sig")
    (tmp_path / "elsewhere.sig").write_bytes(b"not part of the bundle")
    with zipfile.ZipFile(create_archive(Bundle(small), "zip", tmp_path / "o")) as zf:
        assert f"{top}/MANIFEST.json.sig" not in zf.namelist()


# -- importing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(small: Path, tmp_path: Path, out: Path, fmt: str) -> None:
    packed = create_archive(Bundle(small), fmt, tmp_path)
    old = os.umask(0o077)  # directories made on import are world-readable whatever the umask
    try:
        result = import_archive(packed, out)
    finally:
        os.umask(old)
    digest = BundleManifest.load(small).content_digest
    assert result == archive.ImportResult(small.name, out / small.name, False, digest)
    assert BundleManifest.load(result.bundle_dir).files == BundleManifest.load(small).files
    assert BundleManifest.load(result.bundle_dir).verify(result.bundle_dir).ok
    assert not (result.bundle_dir / "validation").exists()
    assert stat.S_IMODE((result.bundle_dir / "docs" / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((result.bundle_dir / "config.yaml").stat().st_mode) == 0o644
    for d in (result.bundle_dir, result.bundle_dir / "models"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o755
    assert import_archive(packed, tmp_path / "a" / "b").bundle_dir == tmp_path / "a" / "b" / small.name
    again = import_archive(packed, out)
    assert again == archive.ImportResult(small.name, out / small.name, True, digest)  # nothing changed
    assert leftovers(out) == [small.name]  # no temporary directory left


def test_import_failing_to_move_into_place(
    small: Path, tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed = create_archive(Bundle(small), "zip", tmp_path)

    def refuse(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(archive.os, "rename", refuse)
    with pytest.raises(BundleError) as info:
        import_archive(packed, out)
    assert (
        str(info.value)
        == f"cannot move the bundle into place at {out / small.name}: Invalid cross-device link"
    )
    assert leftovers(out) == []


def test_import_extracts_into_a_hidden_directory_inside_the_destination(
    small: Path, tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside the bundle's final place (so that moving it there is a rename), hidden, and named as an import."""
    packed = create_archive(Bundle(small), "zip", tmp_path)
    during: list[str] = []
    extract = archive._extract_zip

    def spy(path: Path, ex: archive._Extractor, budget: archive._Budget) -> None:
        during.extend(leftovers(out))
        extract(path, ex, budget)

    monkeypatch.setattr(archive, "_extract_zip", spy)
    import_archive(packed, out)
    assert len(during) == 1 and during[0].startswith(".tmp-import-")


def test_an_extracted_file_is_never_written_over_or_through_an_existing_one(tmp_path: Path) -> None:
    ex = archive._Extractor(tmp_path)
    (tmp_path / "there").write_text("kept")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    for name in ("there", "link"):
        with pytest.raises(FileExistsError):
            ex.open_file(tmp_path / name, executable=False)
    assert (tmp_path / "there").read_text() == "kept" and not (tmp_path / "elsewhere").exists()


def test_import_needs_an_archive_file(tmp_path: Path, out: Path) -> None:
    with pytest.raises(ArchiveError, match=f"^{tmp_path / 'none.zip'}: no such archive file$"):
        import_archive(tmp_path / "none.zip", out)
    with pytest.raises(ArchiveError, match="no such archive file"):
        import_archive(tmp_path, out)
    text = tmp_path / "notes.txt"
    text.write_text("hello " * 200)
    with pytest.raises(ArchiveError, match=f"^{text}: neither a zip nor a tar archive$"):
        import_archive(text, out)
    assert not out.exists()


def test_import_into_a_directory_that_cannot_be_made(small: Path, tmp_path: Path) -> None:
    packed = create_archive(Bundle(small), "zip", tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ArchiveError, match=f"^cannot create {tmp_path / 'file' / 'sub'}: Not a directory$"):
        import_archive(packed, tmp_path / "file" / "sub")


@pytest.mark.parametrize("fmt", FORMATS)
def test_import_of_a_corrupt_archive(small: Path, tmp_path: Path, out: Path, fmt: str) -> None:
    packed = create_archive(Bundle(small), fmt, tmp_path)
    raw = bytearray(packed.read_bytes())
    if fmt == "zip":  # damage the compressed data of the model (the directory stays readable)
        at = raw.index(b"model.onnx") + 40
        raw[at : at + 20] = b"\xff" * 20
    else:
        raw = raw[: len(raw) // 2]
    packed.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match=f"^{packed.name}: corrupt or unreadable archive: "):
        import_archive(packed, out)
    assert leftovers(out) == []


def test_import_of_an_empty_archive(tmp_path: Path, out: Path) -> None:
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(ArchiveError, match=r"^empty\.zip: the archive is empty$"):
        import_archive(empty, out)
    assert leftovers(out) == []


def write_tar(path: Path, files: dict[str, bytes], *special: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in special:
            tf.addfile(info)
    return path


def write_zip(path: Path, files: dict[str, bytes], *infos: tuple[zipfile.ZipInfo, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for info, data in infos:
            zf.writestr(info, data)
    return path


def entries_of(small: Path, top: str) -> dict[str, bytes]:
    return {
        f"{top}/{p.relative_to(small).as_posix()}": p.read_bytes()
        for p in sorted(small.rglob("*"))
        if p.is_file() and not p.relative_to(small).as_posix().startswith("validation/")
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_only_the_owners_execute_bit_makes_an_extracted_file_executable(
    small: Path, top: str, tmp_path: Path, out: Path, fmt: str
) -> None:
    files = entries_of(small, top)
    modes = {f"{top}/docs/run.sh": 0o700, f"{top}/config.yaml": 0o611}  # the rest: 0644
    packed = tmp_path / f"modes.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(packed, "w") as zf:
            for name, data in files.items():
                info = zipfile.ZipInfo(name)
                info.create_system = 3
                info.external_attr = (stat.S_IFREG | modes.get(name, 0o644)) << 16
                zf.writestr(info, data)
    else:
        with tarfile.open(packed, "w:gz") as tf:
            for name, data in files.items():
                tinfo = tarfile.TarInfo(name)
                tinfo.size, tinfo.mode = len(data), modes.get(name, 0o644)
                tf.addfile(tinfo, io.BytesIO(data))
    imported = import_archive(packed, out).bundle_dir
    assert stat.S_IMODE((imported / "docs" / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((imported / "config.yaml").stat().st_mode) == 0o644


def test_import_refuses_a_tampered_bundle(small: Path, top: str, tmp_path: Path, out: Path) -> None:
    files = entries_of(small, top)
    files[f"{top}/models/model.onnx"] = b"swapped"
    with pytest.raises(ArchiveError) as info:
        import_archive(write_tar(tmp_path / "t.tar.gz", files), out)
    assert str(info.value) == "the archived bundle does not match its manifest: changed: models/model.onnx"
    assert leftovers(out) == []


def test_import_refuses_a_folder_that_is_not_a_bundle(tmp_path: Path, out: Path) -> None:
    with pytest.raises(ArchiveError, match=r"^the archive holds no MANIFEST\.json: not a bundle$"):
        import_archive(write_zip(tmp_path / "plain.zip", {"b-1/readme.txt": b"hi"}), out)


@pytest.mark.parametrize(
    ("exp_hash", "shown"),
    [(None, "None"), ("0123456789AB", "'0123456789AB'"), (12, "12"), ("abc", "'abc'")],
)
def test_import_refuses_a_malformed_identity(
    small: Path, top: str, tmp_path: Path, out: Path, exp_hash: object, shown: str
) -> None:
    import json

    meta = json.loads((small / "metadata.json").read_text())
    if exp_hash is None:
        del meta["exp_hash"]
    else:
        meta["exp_hash"] = exp_hash
    (small / "metadata.json").write_text(json.dumps(meta))
    BundleManifest.build(small).write(small)
    packed = write_zip(tmp_path / "x.zip", entries_of(small, top))
    with pytest.raises(ArchiveError, match=f"^metadata.json exp_hash {shown} is not a 12-hex bundle hash$"):
        import_archive(packed, out)


def test_import_refuses_a_bundle_without_readable_metadata(
    small: Path, top: str, tmp_path: Path, out: Path
) -> None:
    from conv2d_bundle.errors import BundleIntegrityError

    (small / "metadata.json").write_text("[]")  # JSON, but not an object
    BundleManifest.build(small).write(small)
    with pytest.raises(ArchiveError, match=r"^metadata\.json exp_hash None is not a 12-hex bundle hash$"):
        import_archive(write_zip(tmp_path / "list.zip", entries_of(small, top)), out)
    (small / "metadata.json").unlink()
    BundleManifest.build(small).write(small)
    with pytest.raises(BundleIntegrityError, match=r"^metadata\.json is missing$"):
        import_archive(write_zip(tmp_path / "none.zip", entries_of(small, top)), out)
    assert leftovers(out) == []


def test_import_refuses_a_bundle_whose_identity_was_rewritten(
    small: Path, top: str, tmp_path: Path, out: Path
) -> None:
    import json

    meta = json.loads((small / "metadata.json").read_text())
    meta["exp_hash"] = "abcdefabcdef"
    (small / "metadata.json").write_text(json.dumps(meta))
    BundleManifest.build(small).write(small)  # a re-sealed forgery
    with pytest.raises(ArchiveError) as info:
        import_archive(write_tar(tmp_path / "f.tar.gz", entries_of(small, top)), out)
    assert (
        str(info.value) == f"metadata.json says abcdefabcdef but the config and weights hash to {small.name}"
    )
    meta["exp_hash"] = small.name
    del meta["model"]["weights_sha256"]
    (small / "metadata.json").write_text(json.dumps(meta))
    BundleManifest.build(small).write(small)
    with pytest.raises(ArchiveError) as info:
        import_archive(write_tar(tmp_path / "g.tar.gz", entries_of(small, top)), out)
    assert str(info.value) == (
        "the archived bundle's identity cannot be recomputed: "
        "metadata.json model.weights_sha256 is missing: the hash cannot be recomputed"
    )
    assert leftovers(out) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_import_makes_directories_the_archive_does_not_list(tmp_path: Path, out: Path, fmt: str) -> None:
    """Archives made by other tools may list a file before its directory, a directory after its files, or a
    deep directory alone: all extract (and this folder is then judged: it is no bundle)."""
    files = {"b-1/x/y/f": b"data", "b-1/x/": b"", "b-1/z/w/": b""}
    if fmt == "zip":
        packed = write_zip(tmp_path / "d.zip", files)
    else:
        dirs = [tarfile.TarInfo(n.rstrip("/")) for n in files if n.endswith("/")]
        for d in dirs:
            d.type = tarfile.DIRTYPE
        packed = write_tar(tmp_path / "d.tar.gz", {"b-1/x/y/f": b"data"}, *dirs)
    with pytest.raises(ArchiveError, match=r"^the archive holds no MANIFEST\.json: not a bundle$"):
        import_archive(packed, out)


# -- unsafe entries ---------------------------------------------------------------------------------
UNSAFE_NAMES = {
    "/etc/x": "absolute path",
    "\\x": "absolute path",
    "C:/x": "absolute path",
    "b-1\\..\\x": "backslash or NUL in the name",
    "b-1/../x": "'..' in the path",
    "../x": "'..' in the path",
    "b-1//x": "empty, '.' or hidden path component",
    "b-1/./x": "empty, '.' or hidden path component",
    ".hidden/x": "empty, '.' or hidden path component",
}


@pytest.mark.parametrize("name", sorted(UNSAFE_NAMES))
@pytest.mark.parametrize("fmt", FORMATS)
def test_import_refuses_unsafe_names(tmp_path: Path, out: Path, name: str, fmt: str) -> None:
    files = {"b-1/ok": b"x", name: b"evil"}
    packed = write_zip(tmp_path / "e.zip", files) if fmt == "zip" else write_tar(tmp_path / "e.tar.gz", files)
    with pytest.raises(ArchiveError) as info:
        import_archive(packed, out)
    assert str(info.value) == f"refusing entry {name!r}: {UNSAFE_NAMES[name]}"
    assert leftovers(out) == []  # refused before anything was written


def test_entry_names_are_checked_one_by_one() -> None:
    check = archive._check_name
    assert check("b-1", None) == ("b-1", "")
    assert check("b-1/", None) == ("b-1", "")
    assert check("b-1/models/m.onnx", "b-1") == ("b-1", "models/m.onnx")
    assert check("ab:c/d", None) == ("ab:c", "d")  # a colon is a drive letter only second
    assert check("b.1/.x", None) == ("b.1", ".x")  # hidden files inside the folder are allowed
    assert check("b", None) == ("b", "")  # a one-letter top folder is no drive
    assert check("b-1/docs/INDEX", None) == ("b-1", "docs/INDEX")  # only trailing slashes are dropped
    with pytest.raises(ArchiveError, match=r"^refusing entry 'C:': absolute path$"):
        check("C:", None)
    for name, why in [
        ("", "absolute path"),
        ("a\0b/c", "backslash or NUL in the name"),
        ("/", "absolute path"),
    ]:
        with pytest.raises(ArchiveError, match=f"^refusing entry {name!r}: {why}$".replace("\\", "\\\\")):
            check(name, None)
    with pytest.raises(
        ArchiveError, match=r"^refusing entry 'b-2/x': outside the archive's top folder 'b-1'$"
    ):
        check("b-2/x", "b-1")


@pytest.mark.parametrize("fmt", FORMATS)
def test_import_refuses_two_top_folders_and_repeated_entries(tmp_path: Path, out: Path, fmt: str) -> None:
    def packed(name: str, files: dict[str, bytes]) -> Path:
        if fmt == "zip":
            with zipfile.ZipFile(tmp_path / f"{name}.zip", "w") as zf:
                for n, data in files.items():
                    zf.writestr(n, data)
                if name == "twice":
                    zf.writestr("b-1/ok", b"again")
            return tmp_path / f"{name}.zip"
        path = write_tar(tmp_path / f"{name}.tar.gz", files)
        if name == "twice":
            with tarfile.open(path) as src, tarfile.open(tmp_path / "t2.tar", "w") as dst:
                for m in src.getmembers():
                    dst.addfile(m, src.extractfile(m))
                    dst.addfile(m, io.BytesIO(b"x"))
            return tmp_path / "t2.tar"
        return path

    with pytest.raises(
        ArchiveError, match=r"^refusing entry 'b-2/x': outside the archive's top folder 'b-1'$"
    ):
        import_archive(packed("tops", {"b-1/ok": b"x", "b-2/x": b"y"}), out)
    with pytest.warns(UserWarning) if fmt == "zip" else contextlib.nullcontext():
        with pytest.raises(ArchiveError, match=r"^refusing entry 'b-1/ok': appears twice$"):
            import_archive(packed("twice", {"b-1/ok": b"x"}), out)
    assert leftovers(out) == []


def special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    ("info", "why"),
    [
        (special("b-1/link", tarfile.SYMTYPE, "/etc/passwd"), "symlink"),
        (special("b-1/hard", tarfile.LNKTYPE, "b-1/ok"), "hard link"),
        (special("b-1/fifo", tarfile.FIFOTYPE), "device file, fifo or special entry"),
        (special("b-1/dev", tarfile.CHRTYPE), "device file, fifo or special entry"),
        (special("b-1/blk", tarfile.BLKTYPE), "device file, fifo or special entry"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_import_refuses_tar_links_and_special_files(
    tmp_path: Path, out: Path, info: tarfile.TarInfo, why: str
) -> None:
    packed = write_tar(tmp_path / "s.tar.gz", {"b-1/ok": b"x"}, info)
    with pytest.raises(ArchiveError) as raised:
        import_archive(packed, out)
    assert str(raised.value) == f"refusing entry {info.name!r}: {why}"
    assert leftovers(out) == []


def zip_entry(name: str, mode: int, *, system: int = 3, flags: int = 0) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = system
    info.external_attr = mode << 16
    info.flag_bits |= flags
    return info, b"data"


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (zip_entry("b-1/link", stat.S_IFLNK | 0o777), "symlink"),
        (zip_entry("b-1/fifo", stat.S_IFIFO | 0o644), "device file, fifo or special entry"),
        (zip_entry("b-1/dev", stat.S_IFCHR | 0o644), "device file, fifo or special entry"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_import_refuses_zip_links_and_special_files(
    tmp_path: Path, out: Path, entry: tuple[zipfile.ZipInfo, bytes], why: str
) -> None:
    packed = write_zip(tmp_path / "s.zip", {"b-1/ok": b"x"}, entry)
    with pytest.raises(ArchiveError) as raised:
        import_archive(packed, out)
    assert str(raised.value) == f"refusing entry {entry[0].filename!r}: {why}"
    assert leftovers(out) == []


def test_import_refuses_an_encrypted_zip_entry(tmp_path: Path, out: Path) -> None:
    packed = write_zip(tmp_path / "enc.zip", {"b-1/ok": b"x"})
    raw = bytearray(packed.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # general purpose flags: bit 0 = encrypted
        at = raw.index(sig)
        raw[at + offset] |= 1
    packed.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match=r"^refusing entry 'b-1/ok': encrypted$"):
        import_archive(packed, out)


def test_zip_modes_of_other_systems_are_not_read(tmp_path: Path, out: Path) -> None:
    """A DOS-made zip's attribute bits are not a Unix mode: its entries are plain files, never links."""
    packed = write_zip(tmp_path / "dos.zip", {}, zip_entry("b-1/file", stat.S_IFLNK | 0o777, system=0))
    with pytest.raises(ArchiveError, match="not a bundle"):  # extracted as a file, then found not a bundle
        import_archive(packed, out)


# -- limits -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_entry_count_limit(tmp_path: Path, out: Path, fmt: str) -> None:
    files = {f"b-1/f{i}": b"" for i in range(4)}
    packed = write_zip(tmp_path / "m.zip", files) if fmt == "zip" else write_tar(tmp_path / "m.tar.gz", files)
    with pytest.raises(ArchiveError, match=r"^archive has 4 entries, more than the limit of 3$"):
        import_archive(packed, out, max_entries=3)
    with pytest.raises(ArchiveError, match="not a bundle"):  # at the limit: extracted, then judged
        import_archive(packed, out, max_entries=4)
    assert leftovers(out) == []


def test_tar_headers_stop_being_read_past_the_entry_limit(tmp_path: Path, out: Path) -> None:
    """A tar of endless entries is refused at limit + 1, before a bad entry further on is even seen."""
    files = {f"b-1/f{i}": b"" for i in range(3)}
    packed = write_tar(tmp_path / "m.tar.gz", files, special("b-1/link", tarfile.SYMTYPE, "/"))
    with pytest.raises(ArchiveError, match=r"^archive has 3 entries, more than the limit of 2$"):
        import_archive(packed, out, max_entries=2)


@pytest.mark.parametrize("fmt", FORMATS)
def test_declared_size_limit(tmp_path: Path, out: Path, fmt: str) -> None:
    files = {"b-1/a": b"\0" * 600, "b-1/b": b"\0" * 400}
    packed = write_zip(tmp_path / "z.zip", files) if fmt == "zip" else write_tar(tmp_path / "z.tar.gz", files)
    with pytest.raises(
        ArchiveError, match=r"^archive expands to 1000 bytes, past the limit of 999 \(zip bomb\?\)$"
    ):
        import_archive(packed, out, max_bytes=999)
    with pytest.raises(ArchiveError, match="not a bundle"):
        import_archive(packed, out, max_bytes=1000)


def test_byte_budget_counts_what_is_read() -> None:
    budget = archive._Budget(max_bytes=15, max_entries=10)
    dst = io.BytesIO()
    budget.copy(io.BytesIO(b"a" * 10), dst, "a", declared=10)  # exactly the declared size
    assert dst.getvalue() == b"a" * 10 and budget.used == 10
    with pytest.raises(ArchiveError, match=r"^b: expands past its declared size of 4 bytes$"):
        budget.copy(io.BytesIO(b"b" * 5), io.BytesIO(), "b", declared=4)
    budget = archive._Budget(max_bytes=15, max_entries=10)
    budget.copy(io.BytesIO(b"a" * 10), io.BytesIO(), "a", declared=10)
    budget.copy(io.BytesIO(b"c" * 5), io.BytesIO(), "c", declared=5)  # exactly the total limit
    with pytest.raises(ArchiveError, match=r"^archive expands past the limit of 15 bytes \(zip bomb\?\)$"):
        budget.copy(io.BytesIO(b"d"), io.BytesIO(), "d", declared=1)


def test_byte_budget_copies_large_entries_in_chunks() -> None:
    big = bytes(range(256)) * ((3 << 20) // 256 + 1)
    dst = io.BytesIO()
    archive._Budget(max_bytes=len(big), max_entries=1).copy(io.BytesIO(big), dst, "big", declared=len(big))
    assert dst.getvalue() == big
    with pytest.raises(ArchiveError, match=r"^big: expands past its declared size of 2097152 bytes$"):
        archive._Budget(max_bytes=len(big), max_entries=1).copy(
            io.BytesIO(big), io.BytesIO(), "big", declared=2 << 20
        )


def test_budget_declare_limits() -> None:
    budget = archive._Budget(max_bytes=100, max_entries=5)
    budget.declare(100, 5)
    with pytest.raises(ArchiveError, match=r"^archive has 6 entries, more than the limit of 5$"):
        budget.declare(0, 6)
    with pytest.raises(ArchiveError, match=r"^archive expands to 101 bytes"):
        budget.declare(101, 1)
