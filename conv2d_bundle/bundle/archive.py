"""Deterministic archives of a bundle (zip, tar.gz) and their safe import.

An archive holds one top-level folder ``<exp_name>-<exp_hash>/`` with the bundle's sealed files (those in
MANIFEST.json, plus the manifest and its signature if any); ``validation/`` reports are left out, since they change with every
verify and are not part of the bundle's identity. Entries are sorted, with fixed times (1980-01-01), fixed
modes (0644, 0755 for directories and executables), uid/gid 0 and no owner names; the gzip header has mtime
0 and no file name. The same bundle therefore always gives the same archive bytes.

Import never trusts the archive: each entry is checked before anything is written (no absolute paths, no
``..``, no links or device files, one top folder, size and entry-count limits that hold for the declared
sizes and for the bytes actually read), extraction goes to a ``.tmp-import-*`` directory inside the
destination, the manifest and the bundle's identity are verified, and only then is it renamed into place
(:mod:`conv2d_bundle.bundle.placement`): a bundle of the same EXP_HASH already there is kept if it is the same content,
and other content is refused, or replaced with ``force``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from conv2d_bundle.bundle import atomic
from conv2d_bundle.bundle.digest import sha256_file
from conv2d_bundle.bundle.manifest import MANIFEST_NAME, SIGNATURE_NAME, BundleManifest
from conv2d_bundle.bundle.placement import Arrival, ContentChange, check_unpacked, place
from conv2d_bundle.errors import ArchiveError


class Archivable(Protocol):
    """What an archive needs of a bundle (:class:`~conv2d_bundle.bundle.store.Bundle` is one): its names, its
    directory and its manifest. The store calls this module (``Bundle.create_archive``); this module never
    imports the store."""

    @property
    def exp_hash(self) -> str: ...

    @property
    def exp_name(self) -> str | None: ...

    @property
    def bundle_dir(self) -> Path: ...

    @property
    def manifest(self) -> BundleManifest: ...


FORMATS = ("tar.gz", "zip")
FIXED_MTIME = 315532800  # 1980-01-01T00:00:00Z: the earliest time a zip entry can hold
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
DEFAULT_MAX_BYTES = 4 << 30  # 4 GiB uncompressed: far above any edge bundle, far below a zip bomb
DEFAULT_MAX_ENTRIES = 10_000
IMPORT_PREFIX = ".tmp-import-"
_CHUNK = 1 << 20
#: not listed in the manifest (manifest.UNSEALED_FILES), but archived when present


def archive_name(bundle: Archivable, fmt: str) -> str:
    return f"{archive_root(bundle)}.{fmt}"


def archive_root(bundle: Archivable) -> str:
    return f"{bundle.exp_name or 'bundle'}-{bundle.exp_hash}"


def _members(bundle: Archivable) -> list[tuple[str, Path | None, int]]:
    """(relpath, source or None for a directory, mode) of every archived entry, sorted; the manifest must verify."""
    root = bundle.bundle_dir
    manifest = bundle.manifest
    diff = manifest.verify(root)
    if not diff.ok:
        raise ArchiveError(
            f"{bundle.exp_hash} does not match its manifest, not archiving it: {diff.describe()}"
        )
    files = sorted([*manifest.files, MANIFEST_NAME])
    if (root / SIGNATURE_NAME).is_file() and not (root / SIGNATURE_NAME).is_symlink():
        files.append(SIGNATURE_NAME)  # a signed bundle stays signed: the signature covers MANIFEST.json
        files.sort()
    dirs = sorted({"/".join(f.split("/")[:i]) for f in files for i in range(1, f.count("/") + 1)})
    out: list[tuple[str, Path | None, int]] = [(d, None, 0o755) for d in dirs]
    for rel in files:
        src = root / rel
        out.append((rel, src, 0o755 if src.stat().st_mode & stat.S_IXUSR else 0o644))
    return sorted(out, key=lambda m: m[0])


def create_archive(bundle: Archivable, fmt: str = "tar.gz", output_dir: Path | None = None) -> Path:
    """Write ``<output_dir>/<exp_name>-<exp_hash>.<fmt>`` and its ``.sha256``; return the archive's path."""
    if fmt not in FORMATS:
        raise ArchiveError(f"archive format {fmt!r}: use one of {', '.join(FORMATS)}")
    out_dir = Path(output_dir) if output_dir is not None else bundle.bundle_dir.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / archive_name(bundle, fmt)
    top = archive_root(bundle)
    members = _members(bundle)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            if fmt == "zip":
                _write_zip(raw, top, members)
            else:
                _write_tar_gz(raw, top, members)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    atomic.write_text(target.with_name(target.name + ".sha256"), f"{sha256_file(target)}  {target.name}\n")
    return target


def _write_zip(raw: IO[bytes], top: str, members: list[tuple[str, Path | None, int]]) -> None:
    with zipfile.ZipFile(raw, "w") as zf:
        for rel, src, mode in [(top, None, 0o755), *((f"{top}/{r}", s, m) for r, s, m in members)]:
            info = zipfile.ZipInfo(rel + ("/" if src is None else ""), date_time=FIXED_DATE_TIME)
            info.create_system = 3  # unix, so that the modes below are read back
            if src is None:
                info.external_attr = ((stat.S_IFDIR | mode) << 16) | 0x10
                zf.writestr(info, b"")
                continue
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = src.stat().st_size
            with open(src, "rb") as f, zf.open(info, "w", force_zip64=info.file_size > 0x7FFFFFFF) as dst:
                shutil.copyfileobj(f, dst, _CHUNK)


def _write_tar_gz(raw: IO[bytes], top: str, members: list[tuple[str, Path | None, int]]) -> None:
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf,
    ):
        for rel, src, mode in [(top, None, 0o755), *((f"{top}/{r}", s, m) for r, s, m in members)]:
            info = tarfile.TarInfo(rel)
            info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = (
                FIXED_MTIME,
                mode,
                0,
                0,
                "",
                "",
            )
            if src is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
                continue
            info.size = src.stat().st_size
            with open(src, "rb") as f:
                tf.addfile(info, f)


# ---------------------------------------------------------------------------------------------- import


ARCHIVED = Arrival("the archived bundle", "the archive", "in the archive", ArchiveError)


@dataclass(frozen=True)
class ImportResult:
    exp_hash: str
    bundle_dir: Path
    already_existed: bool  # this content was there already (nothing changed)
    content_digest: str
    replaced: ContentChange | None = None  # other content of the same EXP_HASH that this import replaced


@dataclass
class _Budget:
    max_bytes: int
    max_entries: int
    used: int = 0

    def count(self, entries: int) -> None:
        if entries > self.max_entries:
            raise ArchiveError(f"archive has {entries} entries, more than the limit of {self.max_entries}")

    def declare(self, total: int, entries: int) -> None:
        self.count(entries)
        if total > self.max_bytes:
            raise ArchiveError(
                f"archive expands to {total} bytes, past the limit of {self.max_bytes} (zip bomb?)"
            )

    def copy(self, src: IO[bytes], dst: IO[bytes], name: str, declared: int) -> None:
        """Copy, counting bytes: stop at the entry's declared size and at the total limit."""
        written = 0
        while block := src.read(_CHUNK):
            written += len(block)
            self.used += len(block)
            if written > declared:
                raise ArchiveError(f"{name}: expands past its declared size of {declared} bytes")
            if self.used > self.max_bytes:
                raise ArchiveError(f"archive expands past the limit of {self.max_bytes} bytes (zip bomb?)")
            dst.write(block)


def _check_name(name: str, top: str | None) -> tuple[str, str]:
    """(top folder, path inside it) of a safe entry name; ArchiveError saying why otherwise."""
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"refusing entry {name!r}: absolute path")
    if "\\" in name or "\0" in name:
        raise ArchiveError(f"refusing entry {name!r}: backslash or NUL in the name")
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        raise ArchiveError(f"refusing entry {name!r}: '..' in the path")
    if any(p in ("", ".") for p in parts) or parts[0].startswith("."):
        raise ArchiveError(f"refusing entry {name!r}: empty, '.' or hidden path component")
    if top is not None and parts[0] != top:
        raise ArchiveError(f"refusing entry {name!r}: outside the archive's top folder {top!r}")
    return parts[0], "/".join(parts[1:])


class _Extractor:
    """Writes checked entries under ``root``; regular files and directories only, never over an entry."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.top: str | None = None
        self.seen: set[str] = set()

    def target(self, name: str) -> Path:
        top, inner = _check_name(name, self.top)
        self.top = top
        key = f"{top}/{inner}"
        if key in self.seen:
            raise ArchiveError(f"refusing entry {name!r}: appears twice")
        self.seen.add(key)
        return self.root / top / inner  # inner is "" for the top folder itself: the same path

    def mkdir(self, path: Path) -> None:
        path.mkdir(mode=0o755, parents=True, exist_ok=True)

    def open_file(self, path: Path, executable: bool) -> IO[bytes]:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        os.fchmod(fd, 0o755 if executable else 0o644)
        return os.fdopen(fd, "wb")


def _extract_tar(path: Path, ex: _Extractor, budget: _Budget) -> None:
    with tarfile.open(path, "r:*") as tf:
        members = []
        for m in tf:  # headers only: refuse before anything is written
            members.append(m)
            budget.count(len(members))
            kind = ("symlink" if m.issym() else "hard link" if m.islnk() else None) or (
                None if m.isreg() or m.isdir() else "device file, fifo or special entry"
            )
            if kind:
                raise ArchiveError(f"refusing entry {m.name!r}: {kind}")
            _check_name(m.name, None)
        budget.declare(sum(m.size for m in members if m.isreg()), len(members))
        for m in members:
            dest = ex.target(m.name)
            if m.isdir():
                ex.mkdir(dest)
                continue
            src = tf.extractfile(m)
            if src is None:
                raise ArchiveError(f"{m.name}: cannot read the entry")
            with src, ex.open_file(dest, bool(m.mode & 0o100)) as dst:
                budget.copy(src, dst, m.name, m.size)


def _extract_zip(path: Path, ex: _Extractor, budget: _Budget) -> None:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        budget.count(len(infos))
        for info in infos:
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            if stat.S_ISLNK(mode):
                raise ArchiveError(f"refusing entry {info.filename!r}: symlink")
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ArchiveError(f"refusing entry {info.filename!r}: device file, fifo or special entry")
            if info.flag_bits & 0x1:
                raise ArchiveError(f"refusing entry {info.filename!r}: encrypted")
            _check_name(info.filename, None)
        budget.declare(sum(i.file_size for i in infos), len(infos))
        for info in infos:
            dest = ex.target(info.filename)
            if info.is_dir():
                ex.mkdir(dest)
                continue
            with zf.open(info) as src, ex.open_file(dest, bool((info.external_attr >> 16) & 0o100)) as dst:
                budget.copy(src, dst, info.filename, info.file_size)


def _chmod_dirs(root: Path) -> None:
    """Directories made by mkdtemp/mkdir may carry a umask; a bundle is world-readable (0755)."""
    for dirpath, _dirs, _files in os.walk(root):
        os.chmod(dirpath, 0o755)


def import_archive(
    archive: Path,
    artifacts_dir: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    force: bool = False,
) -> ImportResult:
    """Extract ``archive`` safely and move the verified bundle to ``<artifacts_dir>/<exp_hash>``. A bundle
    already there stays if it holds this content; other content is refused (ArchiveError naming both content
    digests and the files that differ) or, with ``force``, replaced."""
    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"{archive}: no such archive file")
    if zipfile.is_zipfile(archive):
        extract: Any = _extract_zip
    elif _is_tar(archive):
        extract = _extract_tar
    else:
        raise ArchiveError(f"{archive}: neither a zip nor a tar archive")
    artifacts_dir = Path(artifacts_dir)
    try:
        artifacts_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchiveError(f"cannot create {artifacts_dir}: {exc.strerror}") from exc
    work = Path(tempfile.mkdtemp(prefix=IMPORT_PREFIX, dir=artifacts_dir))
    try:
        ex = _Extractor(work)
        try:
            extract(archive, ex, _Budget(max_bytes, max_entries))
        except (
            tarfile.TarError,
            zipfile.BadZipFile,
            EOFError,
            gzip.BadGzipFile,
            OSError,
            zlib.error,
            NotImplementedError,  # zipfile: an unsupported compression method
        ) as exc:
            raise ArchiveError(f"{archive.name}: corrupt or unreadable archive: {exc}") from exc
        if ex.top is None:
            raise ArchiveError(f"{archive.name}: the archive is empty")
        extracted = work / ex.top
        exp_hash, manifest = check_unpacked(extracted, ARCHIVED)
        _chmod_dirs(extracted)
        placed = place(extracted, artifacts_dir / exp_hash, manifest, ARCHIVED, force=force)
        return ImportResult(
            exp_hash, placed.bundle_dir, placed.already_existed, placed.content_digest, placed.replaced
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, tarfile.TarError, EOFError):
        return False
