"""A bundle that arrives from elsewhere (``import`` of an archive, ``pull`` from a registry, the pull cache):
checked once unpacked, then put at its name by content.

EXP_HASH names the experiment, not the bytes: the same config and weights exported by another toolchain, or a
re-sealed forgery, are other files under the same name. So a bundle already at ``<dir>/<exp_hash>`` is kept
only when its content digest (its MANIFEST.json: every file's sha256 and size) is the arriving one's and its
files match that manifest. Other content is refused with one line naming both digests and the files that
differ or, with ``force``, replaced (:func:`replace_dir`): the new copy is complete before it takes the name,
and the old one, with its ``validation/`` reports (they were about the old bytes), is deleted only after.
``create --force`` replaces a bundle the same way and describes the change with :class:`ContentChange`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from conv2d_bundle.bundle import atomic
from conv2d_bundle.bundle.digest import is_exp_hash, recompute_exp_hash
from conv2d_bundle.bundle.manifest import MANIFEST_NAME, SIGNATURE_NAME, BundleManifest, ManifestDiff
from conv2d_bundle.bundle.schema import read_json
from conv2d_bundle.errors import BundleError, BundleIntegrityError

#: where a replaced bundle waits for deletion when directories cannot be swapped in one step (``clean``
#: removes one left by a crash)
OLD_PREFIX = ".tmp-old-"
#: how many file names a one-line difference shows before "+N more"
SHOWN_FILES = 4


@dataclass(frozen=True)
class Arrival:
    """Where a bundle comes from: the words of its messages and the error its refusals raise."""

    bundle: str  # "the archived bundle": the subject of a failed check
    holder: str  # "the archive": what lacks a MANIFEST.json when it holds no bundle
    there: str  # "in the archive": where the arriving content digest was found
    error: type[BundleError]


@dataclass(frozen=True)
class ContentChange:
    """A bundle replaced by other content under the same name: the old digest (None when its MANIFEST.json
    was unreadable), the new one, and what differs."""

    old: str | None
    new: str
    detail: str

    def describe(self) -> str:
        if self.old is None:
            return f"replaced what was there ({self.detail}) with {self.new}"
        if self.old == self.new:
            return f"restored {self.new}: the files there did not match it ({self.detail})"
        return f"content changed: {self.old} -> {self.new} ({self.detail})"


@dataclass(frozen=True)
class Placed:
    """A bundle at its name: put there now, found there already with this content, or replacing other content."""

    bundle_dir: Path
    content_digest: str
    already_existed: bool
    replaced: ContentChange | None = None

    @property
    def exp_hash(self) -> str:
        return self.bundle_dir.name


def check_unpacked(
    root: Path, arrival: Arrival, hashed: Mapping[str, tuple[str, int]] | None = None
) -> tuple[str, BundleManifest]:
    """(exp_hash, manifest) of an unpacked bundle whose files match its MANIFEST.json and whose identity (its
    config and weights) is the exp_hash its metadata.json claims; ``arrival.error`` saying why not.

    ``hashed``: relpath -> (sha256 hex, size) of every file written, each hashed as it arrived, in a fresh
    directory that holds nothing else: comparing them with the manifest is its verification, without reading
    the bytes a second time. Without it, the files are read and hashed here."""
    try:
        manifest = BundleManifest.load(root)
    except FileNotFoundError as exc:
        raise arrival.error(f"{arrival.holder} holds no {MANIFEST_NAME}: not a bundle") from exc
    if hashed is None:
        diff = manifest.verify(root)
    else:
        files = {rel: (e["sha256"], e["size"]) for rel, e in manifest.files.items()}
        got = {rel: v for rel, v in hashed.items() if rel not in (MANIFEST_NAME, SIGNATURE_NAME)}
        diff = ManifestDiff(
            missing=sorted(set(files) - set(got)),
            changed=sorted(r for r in set(files) & set(got) if files[r] != got[r]),
            extra=sorted(set(got) - set(files)),
        )
    if not diff.ok:
        raise arrival.error(f"{arrival.bundle} does not match its manifest: {diff.describe()}")
    meta = read_json(root / "metadata.json", what="metadata.json")
    exp_hash = meta.get("exp_hash") if isinstance(meta, dict) else None
    if not isinstance(exp_hash, str) or not is_exp_hash(exp_hash):
        raise arrival.error(f"metadata.json exp_hash {exp_hash!r} is not a 12-hex bundle hash")
    try:
        actual = recompute_exp_hash(root)
    except BundleError as exc:
        raise arrival.error(f"{arrival.bundle}'s identity cannot be recomputed: {exc}") from exc
    if actual != exp_hash:
        raise arrival.error(f"metadata.json says {exp_hash} but the config and weights hash to {actual}")
    return exp_hash, manifest


def place(
    root: Path, final: Path, manifest: BundleManifest, arrival: Arrival, *, force: bool, exact: bool = False
) -> Placed:
    """Put the checked bundle ``root`` (whose manifest is ``manifest``) at ``final``, beside it on the same
    file system. What is there already stays if it is this content, intact; anything else is refused
    (``arrival.error``, one line naming both digests and what differs) or, with ``force``, replaced.
    ``exact`` (the pull cache, which must hold what it was served): the same content with another
    MANIFEST.json text or signature is not the same either."""
    digest = manifest.content_digest
    # reports that arrive with a bundle are someone else's claim about it: this host has verified nothing yet
    shutil.rmtree(root / "validation", ignore_errors=True)
    if not _occupied(final):
        try:
            os.rename(root, final)
            return Placed(final, digest, already_existed=False)
        except OSError as exc:
            if not _occupied(final):
                raise BundleError(f"cannot move the bundle into place at {final}: {exc.strerror}") from exc
            # another process put a bundle there meanwhile: judged below like any other
    old, refusal, detail = _judge(final, manifest, arrival, root if exact else None)
    if refusal is None:
        return Placed(final, digest, already_existed=True)
    if not force:
        raise arrival.error(f"{final.name} already exists {refusal}; --force replaces it")
    try:
        replace_dir(root, final)
    except OSError as exc:
        raise BundleError(f"cannot move the bundle into place at {final}: {exc.strerror}") from exc
    return Placed(final, digest, already_existed=False, replaced=ContentChange(old, digest, detail))


def _occupied(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _judge(
    final: Path, manifest: BundleManifest, arrival: Arrival, exactly: Path | None
) -> tuple[str | None, str | None, str]:
    """(content digest found at ``final`` or None if unreadable, why that is not ``manifest``'s content intact
    or None if it is, what differs) of whatever is at ``final``; with ``exactly``, its MANIFEST.json and
    signature must also be that directory's, byte for byte."""
    if final.is_symlink() or not final.is_dir():
        return None, "and is not a bundle directory", "not a bundle directory"
    try:
        old = BundleManifest.load(final)
    except FileNotFoundError:
        return None, f"without a {MANIFEST_NAME}", f"no {MANIFEST_NAME}"
    except (OSError, BundleIntegrityError) as exc:
        return None, f"with an unreadable {MANIFEST_NAME} ({exc})", str(exc)
    here, new = old.content_digest, manifest.content_digest
    if here != new:
        differs = files_that_differ(old, manifest, only_old="only here", only_new=f"only {arrival.there}")
        return here, f"with other content ({here} here, {new} {arrival.there}; differs: {differs})", differs
    diff = old.verify(final)
    if not diff.ok:
        found = diff.describe()
        return here, f"with this content ({here}) but its files do not match it ({found})", found
    if exactly is not None:
        other = [n for n in (MANIFEST_NAME, SIGNATURE_NAME) if _read(final / n) != _read(exactly / n)]
        if other:
            found = f"another {' and '.join(other)}"
            return here, f"with this content ({here}) but {found}", found
    return here, None, ""


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def files_that_differ(
    old: BundleManifest, new: BundleManifest, *, only_old: str, only_new: str, limit: int = SHOWN_FILES
) -> str:
    """The files whose entries differ between two manifests, models first, then the golden data, then the
    rest: ``models/model.onnx, docs/x.md (only here) +2 more``."""
    before, after = old.files, new.files
    items = [(rel, "") for rel in before.keys() & after.keys() if dict(before[rel]) != dict(after[rel])]
    items += [(rel, f" ({only_old})") for rel in before.keys() - after.keys()]
    items += [(rel, f" ({only_new})") for rel in after.keys() - before.keys()]
    items.sort(key=lambda item: (_rank(item[0]), item[0]))
    shown = ", ".join(rel + note for rel, note in items[:limit])
    return shown + (f" +{len(items) - limit} more" if len(items) > limit else "")


def _rank(relpath: str) -> int:
    """What a reader most needs to know changed comes first: the models, then the golden data."""
    return 0 if relpath.startswith("models/") else 1 if relpath.startswith("reference/") else 2


def replace_dir(new: Path, final: Path) -> None:
    """Put the complete directory ``new`` at ``final`` in place of what is there. Where directories can be
    swapped in one step (``atomic.exchange``) a reader finds the old bundle or the new, never none and never
    half; elsewhere the old one is moved aside first, then the new one renamed in. The old copy is deleted only
    once the new one has the name; if the new one cannot take it, the old one goes back. OSError on failure."""
    if _swap(new, final):
        _remove(new)  # ``new`` holds what was at ``final`` now
        return
    aside = None
    if _occupied(final):
        aside = Path(tempfile.mkdtemp(prefix=f"{OLD_PREFIX}{final.name}-", dir=final.parent))
        os.rename(final, aside / final.name)
    try:
        os.rename(new, final)
    except OSError:
        if aside is not None:
            os.rename(aside / final.name, final)
            aside.rmdir()
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():  # a link is removed, never followed
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _swap(new: Path, final: Path) -> bool:
    try:
        return atomic.exchange(new, final)
    except FileNotFoundError:  # nothing at ``final`` (removed meanwhile, by clean): a rename will do
        return False
