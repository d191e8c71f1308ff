"""The read side of a bundle, and finding bundles in an artifacts directory by hash prefix.

Nothing here imports torch or loads a model: listing thousands of bundles reads only metadata.json.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from conv2d_bundle.bundle.digest import is_exp_hash
from conv2d_bundle.bundle.manifest import MANIFEST_NAME, BundleManifest
from conv2d_bundle.bundle.schema import check_label_map, check_metadata, read_json
from conv2d_bundle.errors import AmbiguousBundleError, BundleIntegrityError, BundleNotFoundError

METADATA_SCHEMA_VERSION = 1
MIN_PREFIX = 4
DEFAULT_ARTIFACTS = "artifacts"
#: the name prefix of every directory the tools write before renaming it into place (never a bundle)
STAGING_PREFIX = ".tmp-"


def default_artifacts_dir() -> Path:
    """``$CONV2D_ARTIFACTS``, else ``artifacts`` in the working directory."""
    return Path(os.environ.get("CONV2D_ARTIFACTS") or DEFAULT_ARTIFACTS)


class Bundle:
    """A read-only view of one bundle directory. Files are read lazily, once."""

    def __init__(self, bundle_dir: str | Path) -> None:
        self.bundle_dir = Path(bundle_dir).absolute()
        self.already_existed = False  # set by ArtifactBundler.create_bundle when it found this bundle

    def __repr__(self) -> str:
        return f"Bundle({str(self.bundle_dir)!r})"

    def path(self, relpath: str) -> Path:
        return self.bundle_dir / relpath

    @cached_property
    def metadata(self) -> Mapping[str, Any]:
        return check_metadata(read_json(self.path("metadata.json"), what="metadata.json"))

    @property
    def exp_hash(self) -> str:
        return str(self.metadata.get("exp_hash", self.bundle_dir.name))

    @property
    def exp_name(self) -> str:
        return str(self.metadata.get("exp_name", ""))

    @property
    def created_at(self) -> str:
        return str(self.metadata.get("created_at", ""))

    @cached_property
    def metrics(self) -> Mapping[str, Any]:
        data = read_json(self.path("metrics.json"), what="metrics.json")
        return data if isinstance(data, dict) else {}

    @cached_property
    def label_map(self) -> Mapping[str, str]:
        return check_label_map(read_json(self.path("label_map.json"), what="label_map.json"))

    @cached_property
    def config(self) -> Any:
        from conv2d_bundle.config import load_config

        return load_config(self.path("config.yaml"))

    @cached_property
    def manifest(self) -> BundleManifest:
        try:
            return BundleManifest.load(self.bundle_dir)
        except FileNotFoundError as exc:
            raise BundleIntegrityError(f"{MANIFEST_NAME} is missing") from exc

    @property
    def content_digest(self) -> str:
        """What this bundle's bytes are (:attr:`BundleManifest.content_digest`); BundleIntegrityError when
        MANIFEST.json is missing or malformed."""
        return self.manifest.content_digest

    def content_digest_or_none(self) -> str | None:
        """:attr:`content_digest`, or None when MANIFEST.json cannot be read: nothing can be bound to it."""
        try:
            return self.content_digest
        except BundleIntegrityError:
            return None

    def format_info(self, name: str) -> Mapping[str, Any]:
        formats = self.metadata.get("formats", {})
        info = formats.get(name) if isinstance(formats, dict) else None
        return info if isinstance(info, dict) else {}

    def get_available_formats(self) -> list[str]:
        """Formats built into this bundle (``status: built``) whose file is present."""
        return [name for name, status in self.format_status().items() if status == "built"]

    def format_status(self) -> dict[str, str]:
        """Formats present in this bundle: ``built``, or ``kit`` (a compile kit whose device binary is still
        to be compiled, as Hailo's before ``attach-hef``)."""
        formats = self.metadata.get("formats", {})
        out = {}
        for name, info in sorted(formats.items() if isinstance(formats, dict) else []):
            if not isinstance(info, dict):
                continue
            if info.get("status") == "built" and self.path(str(info.get("file"))).exists():
                out[name] = "built"
            elif info.get("status") == "kit" and self.path(str(info.get("kit_dir"))).is_dir():
                out[name] = "kit"
        return out

    def describe_formats(self) -> list[str]:
        """``["coreml", "hailo (kit)", "onnx"]``: what ``list`` and ``compare`` show."""
        return [n if s == "built" else f"{n} ({s})" for n, s in self.format_status().items()]

    def create_archive(self, format: str = "tar.gz", output_dir: str | Path | None = None) -> Path:
        """This bundle as a deterministic ``<exp_name>-<exp_hash>.<format>`` (tar.gz or zip), + ``.sha256``."""
        from conv2d_bundle.bundle.archive import create_archive

        return create_archive(self, format, Path(output_dir) if output_dir is not None else None)


def is_bundle_dir(path: Path) -> bool:
    """A directory named by a 12-hex hash whose metadata.json says that same hash (no links followed)."""
    if not is_exp_hash(path.name) or path.is_symlink() or not path.is_dir():
        return False
    try:
        meta = json.loads((path / "metadata.json").read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("exp_hash") == path.name


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Thousands of parsed metadata dicts kept alive make every cyclic-GC pass longer (~30% of ``list``
    with 10,000 bundles); nothing here makes cycles, so collection waits until the listing is read."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def list_bundles(artifacts_dir: Path) -> list[Bundle]:
    """Every valid bundle in ``artifacts_dir``, newest first (by created_at), each with its checked metadata."""
    found: list[tuple[str, str, Bundle]] = []
    with _gc_paused():
        for bundle_dir, meta in _valid_metadata(artifacts_dir):
            b = Bundle(bundle_dir)
            b.__dict__["metadata"] = meta  # what the cached_property would read and check: read once
            found.append((meta["created_at"], meta["exp_hash"], b))
        found.sort(key=lambda row: (row[0], row[1]), reverse=True)
    return [b for _, _, b in found]


class ListedBundle(NamedTuple):
    """What ``conv2d pack list`` shows of a bundle (its order: ``created_at`` then ``exp_hash``)."""

    created_at: str
    exp_hash: str
    exp_name: str
    bundle_dir: str


def list_summaries(artifacts_dir: Path) -> list[ListedBundle]:
    """The bundles :func:`list_bundles` finds (each metadata.json read and checked the same way), newest first,
    keeping only what ``list`` shows: 10,000 parsed metadata dicts kept alive cost more (the cyclic GC walks
    them) than reading them."""
    found = [
        ListedBundle(meta["created_at"], meta["exp_hash"], str(meta.get("exp_name", "")), bundle_dir)
        for bundle_dir, meta in _valid_metadata(artifacts_dir)
    ]
    found.sort(reverse=True)  # exp_hash is unique: exp_name never decides
    return found


def _valid_metadata(artifacts_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(absolute bundle directory, checked metadata) for every bundle directory in ``artifacts_dir`` whose
    metadata.json is valid and names its directory's hash; paths as strings (a ``Path`` per file cost as much
    as the JSON decoding with 10,000 bundles)."""
    if not artifacts_dir.is_dir():
        return
    with os.scandir(artifacts_dir.absolute()) as it:
        for entry in it:
            if not is_exp_hash(entry.name) or entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                meta = check_metadata(
                    read_json(os.path.join(entry.path, "metadata.json"), what="metadata.json")
                )
            except BundleIntegrityError:
                continue
            if meta.get("exp_hash") == entry.name:
                yield entry.path, meta


def get_bundle(artifacts_dir: Path, ref: str) -> Bundle:
    """A bundle by unique hash prefix (>= 4 hex digits), by full hash, or by directory path."""
    candidate = Path(ref)
    hex_prefix = len(ref) >= MIN_PREFIX and all(c in "0123456789abcdef" for c in ref.strip().lower())
    # a directory is taken as a path when it is written as one, when it cannot be a hash prefix, or when it
    # holds a bundle (users copy bundles under names of their own); else a hex name looks in artifacts_dir
    if candidate.is_dir() and (
        os.sep in ref or ref.startswith(".") or not hex_prefix or (candidate / "metadata.json").exists()
    ):
        if candidate.resolve().name.startswith(STAGING_PREFIX):
            raise BundleNotFoundError(
                f"{ref} is a staging directory an interrupted create, import or pull left behind, not a bundle "
                "(conv2d pack clean removes it)"
            )
        if not (candidate / "metadata.json").exists():
            raise BundleNotFoundError(f"{ref} is not a bundle (no metadata.json)")
        return Bundle(candidate)
    ref = ref.strip().lower()
    if len(ref) < MIN_PREFIX or not all(c in "0123456789abcdef" for c in ref):
        raise BundleNotFoundError(
            f"{ref!r}: give a hash prefix of at least {MIN_PREFIX} hex digits, or a path"
        )
    if not artifacts_dir.is_dir():
        raise BundleNotFoundError(f"no bundle {ref}: artifacts directory {artifacts_dir} does not exist")
    matches = sorted(
        e.name
        for e in os.scandir(artifacts_dir)
        if is_exp_hash(e.name) and e.name.startswith(ref) and e.is_dir(follow_symlinks=False)
    )
    if not matches:
        raise BundleNotFoundError(f"no bundle matches {ref!r} in {artifacts_dir}")
    if len(matches) > 1:
        raise AmbiguousBundleError(f"{ref!r} is ambiguous in {artifacts_dir}: {', '.join(matches)}")
    bundle_dir = artifacts_dir / matches[0]
    if not is_bundle_dir(bundle_dir):
        raise BundleNotFoundError(
            f"{bundle_dir} is not a valid bundle (metadata.json missing or names another hash)"
        )
    return Bundle(bundle_dir)
