"""A bundle as one OCI artifact, pushed and pulled.

Layout (README "Sharing bundles" says why):

- an OCI image manifest with ``artifactType`` :data:`ARTIFACT_TYPE` and the annotation
  ``org.conv2d-bundle.exp-hash``; no timestamp, so the same bundle always gives the same manifest digest;
- the config blob (:data:`CONFIG_MEDIA_TYPE`): exp_hash, exp_name, the sha256 of MANIFEST.json, formats;
- one raw layer per sealed file (plus MANIFEST.json and its signature), sorted by path, each annotated
  with its path (``org.opencontainers.image.title`` and ModelPack's ``org.cncf.model.filepath``) and typed
  with ModelPack's raw media types: ``models/`` are weights, ``reference/`` a dataset, ``docs/`` docs,
  scripts code, the rest weight config. A layer's digest *is* the file's sha256 in MANIFEST.json, so a
  re-push of an unchanged model finds its weights in the registry and sends none of their bytes.

``validation/`` is not part of the artifact: reports travel as referrers (:mod:`.evidence`).

A pull trusts nothing it is served: the manifest's digest is checked against the reference, every blob
against its descriptor while it streams to disk, then MANIFEST.json and the bundle's identity exactly as
``conv2d pack import`` checks them, all inside a ``.tmp-pull-*`` directory that is renamed into place only
when everything holds. A bad or interrupted pull leaves nothing (a killed one leaves a ``.tmp-*`` directory
for ``conv2d pack clean``). A bundle of the same EXP_HASH already in place is kept only if it is the same
content; other content is refused, or replaced with ``force`` (:mod:`conv2d_bundle.bundle.placement`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conv2d_bundle.bundle.digest import canonical_json
from conv2d_bundle.bundle.manifest import MANIFEST_NAME, SIGNATURE_NAME, BundleManifest, is_sealed_path
from conv2d_bundle.bundle.placement import Arrival, ContentChange, check_unpacked, place
from conv2d_bundle.bundle.schema import read_json
from conv2d_bundle.errors import RegistryError
from conv2d_bundle.oci.client import OCI_MANIFEST, RegistryClient, TransferStats
from conv2d_bundle.oci.reference import OciRef

ARTIFACT_TYPE = "application/vnd.conv2d-bundle.bundle.v1"
CONFIG_MEDIA_TYPE = "application/vnd.conv2d-bundle.bundle.config.v1+json"
# ModelPack (CNCF model-spec) raw layer media types: one unarchived file each
WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
WEIGHT_CONFIG = "application/vnd.cncf.model.weight.config.v1.raw"
DOC = "application/vnd.cncf.model.doc.v1.raw"
CODE = "application/vnd.cncf.model.code.v1.raw"
DATASET = "application/vnd.cncf.model.dataset.v1.raw"
TITLE = "org.opencontainers.image.title"
FILEPATH = "org.cncf.model.filepath"
MODE = "org.conv2d-bundle.file.mode"
EXP_HASH = "org.conv2d-bundle.exp-hash"
CONFIG_SCHEMA_VERSION = 1
PULL_PREFIX = ".tmp-pull-"
_MAX_LAYERS = 10_000
#: files below this size are pushed and pulled several at once (each costs round trips more than bytes)
_PARALLEL_BELOW = 8 << 20
_PARALLEL_UPLOADS = 4
#: how often a manifest the registry refused for a blob it should have is sent again (after re-sending the blobs)
_MANIFEST_RETRIES = 2

log = logging.getLogger("conv2d_bundle.oci")
PULLED = Arrival("the pulled bundle", "the artifact", "in the registry", RegistryError)


@dataclass(frozen=True)
class Layer:
    relpath: str
    digest: str
    size: int
    media_type: str
    executable: bool

    def descriptor(self) -> dict[str, Any]:
        annotations = {TITLE: self.relpath, FILEPATH: self.relpath}
        if self.executable:
            annotations[MODE] = "0755"
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
            "annotations": annotations,
        }


@dataclass(frozen=True)
class Artifact:
    """What a push sends: the layers (files), the config blob and the manifest, all bytes fixed."""

    exp_hash: str
    layers: list[Layer]
    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return _sha256(self.manifest)

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class PushResult:
    ref: OciRef
    digest: str
    exp_hash: str
    stats: TransferStats
    size: int


@dataclass(frozen=True)
class PullResult:
    ref: OciRef
    digest: str  # the OCI manifest's
    exp_hash: str
    bundle_dir: Path
    already_existed: bool  # this content was there already (nothing changed)
    content_digest: str  # the bundle's (its MANIFEST.json)
    replaced: ContentChange | None = None  # other content of the same EXP_HASH that this pull replaced


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def media_type_of(relpath: str, executable: bool) -> str:
    if executable or relpath.endswith((".sh", ".py")):
        return CODE
    if relpath.startswith("models/"):
        return WEIGHT
    if relpath.startswith("reference/"):
        return DATASET
    if relpath.startswith("docs/"):
        return DOC
    return WEIGHT_CONFIG


def build_artifact(bundle_dir: Path, *, verify: bool = True) -> Artifact:
    """The artifact of a sealed bundle; RegistryError if its files disagree with MANIFEST.json.

    ``verify=False`` checks only that every file is there with its size: push hashes each file as it sends
    it (and the registry checks the digest too), and a blob the registry already holds is not read at all."""
    manifest = BundleManifest.load(bundle_dir)
    if verify:
        diff = manifest.verify(bundle_dir)
        if not diff.ok:
            raise RegistryError(
                f"{bundle_dir.name} does not match its manifest, not pushing it: {diff.describe()}"
            )
    else:
        for rel, entry in manifest.files.items():
            path = bundle_dir / rel
            if path.is_symlink() or not path.is_file() or path.stat().st_size != entry["size"]:
                raise RegistryError(f"{bundle_dir.name}: {rel} is missing or changed, not pushing it")
    entries: dict[str, tuple[str, int]] = {
        rel: (entry["sha256"], entry["size"]) for rel, entry in manifest.files.items()
    }
    for extra in (MANIFEST_NAME, SIGNATURE_NAME):
        path = bundle_dir / extra
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            entries[extra] = (hashlib.sha256(data).hexdigest(), len(data))
    layers = []
    for rel in sorted(entries):
        sha, size = entries[rel]
        executable = bool((bundle_dir / rel).stat().st_mode & 0o100)
        layers.append(Layer(rel, f"sha256:{sha}", size, media_type_of(rel, executable), executable))
    meta = read_json(bundle_dir / "metadata.json", what="metadata.json")
    exp_hash = str(meta.get("exp_hash", ""))
    formats = meta.get("formats") if isinstance(meta.get("formats"), dict) else {}
    config = canonical_json(
        {
            "schema_version": CONFIG_SCHEMA_VERSION,
            "exp_hash": exp_hash,
            "exp_name": meta.get("exp_name"),
            "manifest_sha256": entries[MANIFEST_NAME][0],
            "formats": {
                k: (v.get("status") if isinstance(v, dict) else v) for k, v in sorted(formats.items())
            },
        }
    ).encode()
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": _sha256(config), "size": len(config)},
        "layers": [layer.descriptor() for layer in layers],
        "annotations": {EXP_HASH: exp_hash, TITLE: str(meta.get("exp_name") or exp_hash)},
    }
    return Artifact(exp_hash, layers, config, canonical_json(body).encode())


def push_bundle(client: RegistryClient, bundle_dir: Path, ref: OciRef) -> PushResult:
    """Send what the registry lacks (smallest first), then the config and the manifest; tag it if asked."""
    artifact = build_artifact(bundle_dir, verify=False)
    if ref.digest and ref.digest != artifact.digest:
        raise RegistryError(f"{ref}: this bundle's manifest digest is {artifact.digest}, not {ref.digest}")

    def send(layer: Layer) -> None:
        sent = client.push_blob(layer.digest, layer.size, bundle_dir / layer.relpath, name=layer.relpath)
        log.info("%s %s (%d bytes)", "pushed" if sent else "already there:", layer.relpath, layer.size)

    layers = sorted(artifact.layers, key=lambda x: (x.size, x.relpath))
    small = [layer for layer in layers if layer.size < _PARALLEL_BELOW]
    send(layers[0])  # the first request settles the scheme and the credentials, before any concurrency
    if len(small) > 1:  # many small files: a registry round trip each, so several at once (as docker pushes)
        with ThreadPoolExecutor(max_workers=_PARALLEL_UPLOADS) as pool:
            list(pool.map(send, small[1:]))
    for layer in layers[max(len(small), 1) :]:  # large ones one at a time, so Ctrl-C stops promptly
        send(layer)
    client.push_blob(_sha256(artifact.config), len(artifact.config), artifact.config)
    for attempt in range(_MANIFEST_RETRIES + 1):
        try:
            resp = client.put_manifest(ref.tag or artifact.digest, artifact.manifest)
            break
        except RegistryError as exc:
            # Another push of the same blobs into this repository can race ours: distribution 2.8's filesystem
            # driver rewrites a blob's repository link in place, and a manifest checked meanwhile is refused with
            # MANIFEST_BLOB_UNKNOWN (measured: two concurrent pushes of one bundle, one of them failed so, once in
            # several runs). Send what is missing again (each blob is looked up first) and retry; any other
            # refusal, or the same one after the retries, is the error.
            if "MANIFEST_BLOB_UNKNOWN" not in str(exc) or attempt == _MANIFEST_RETRIES:
                raise
            log.info("registry %s: %s; sending the missing blobs again", ref.registry, exc)
            time.sleep(0.2 * (attempt + 1))
            for layer in layers:
                send(layer)
            client.push_blob(_sha256(artifact.config), len(artifact.config), artifact.config)
    served = resp.headers.get("Docker-Content-Digest")
    if served and served != artifact.digest:
        raise RegistryError(f"registry {ref.registry} stored the manifest as {served}, not {artifact.digest}")
    return PushResult(
        ref.with_digest(artifact.digest), artifact.digest, artifact.exp_hash, client.stats, artifact.size
    )


# ---------------------------------------------------------------------------------------------- pull


def fetch_manifest(client: RegistryClient, ref: OciRef) -> tuple[str, dict[str, Any]]:
    """(digest, manifest) of a bundle artifact; the digest is computed here and must match a digest ref."""
    got = client.get_manifest(ref.reference)
    if got is None:
        raise RegistryError(f"{ref}: no such manifest in the registry")
    body, _media_type = got
    digest = _sha256(body)
    if ref.digest and digest != ref.digest:
        raise RegistryError(f"{ref}: the registry served a manifest whose digest is {digest}: refusing it")
    try:
        manifest = json.loads(body)
    except ValueError as exc:
        raise RegistryError(f"{ref}: the manifest is not JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("artifactType") != ARTIFACT_TYPE:
        found = manifest.get("artifactType") if isinstance(manifest, dict) else None
        raise RegistryError(f"{ref}: not a conv2d bundle (artifactType {found!r}, expected {ARTIFACT_TYPE})")
    return digest, manifest


def _layers_of(manifest: dict[str, Any]) -> list[tuple[str, str, int, bool]]:
    """(relpath, digest, size, executable) of each layer, every path checked safe and unique."""
    raw = manifest.get("layers")
    if not isinstance(raw, list) or not raw or len(raw) > _MAX_LAYERS:
        raise RegistryError("the bundle manifest has no usable layer list")
    out, seen = [], set()
    for layer in raw:
        annotations = layer.get("annotations") if isinstance(layer, dict) else None
        if not isinstance(annotations, dict):
            raise RegistryError("refusing a layer without annotations: its path is unknown")
        rel = annotations.get(TITLE)
        digest, size = layer.get("digest"), layer.get("size")
        if not isinstance(rel, str) or not _safe_relpath(rel):
            raise RegistryError(f"refusing layer path {rel!r}: not a safe relative path")
        if rel in seen:
            raise RegistryError(f"refusing layer path {rel!r}: appears twice")
        if not is_sealed_path(rel) and rel not in (MANIFEST_NAME, SIGNATURE_NAME):
            raise RegistryError(f"refusing layer path {rel!r}: validation/ is not part of a bundle")
        if not (isinstance(digest, str) and digest.startswith("sha256:") and len(digest) == 71):
            raise RegistryError(f"{rel}: layer digest {digest!r} is not sha256")
        if not isinstance(size, int) or size < 0:
            raise RegistryError(f"{rel}: layer size {size!r} is not a size")
        seen.add(rel)
        out.append((rel, digest, size, annotations.get(MODE) == "0755"))
    return out


def _safe_relpath(rel: str) -> bool:
    if (
        not rel
        or rel.startswith(("/", "\\"))
        or "\\" in rel
        or "\0" in rel
        or (len(rel) > 1 and rel[1] == ":")
    ):
        return False
    parts = rel.split("/")
    return all(p not in ("", ".", "..") for p in parts) and not parts[0].startswith(".")


def _download(client: RegistryClient, rel: str, digest: str, size: int, dest: Path, executable: bool) -> None:
    """Receive one blob into ``dest`` (a new file), hashing each block as it is written: one pass over the
    bytes, no re-read. RegistryError when the bytes are not the ones the layer's digest and size name."""
    dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    h = hashlib.sha256()

    def consume(block: memoryview) -> None:
        h.update(block)
        while block:
            block = block[os.write(fd, block) :]

    try:
        os.fchmod(fd, 0o755 if executable else 0o644)
        n = client.download_blob(digest, size, consume, name=rel)
    finally:
        os.close(fd)
    actual = "sha256:" + h.hexdigest()
    if actual != digest or n != size:
        raise RegistryError(
            f"{rel}: the registry served {n} bytes with digest {actual}, but the manifest says {size} bytes "
            f"{digest}: corrupt blob, refusing the pull"
        )


def pull_bundle(
    client: RegistryClient,
    ref: OciRef,
    artifacts_dir: Path,
    fetched: tuple[str, dict[str, Any]] | None = None,
    *,
    force: bool = False,
    by_content: bool = False,
) -> PullResult:
    """Pull ``ref`` into ``<artifacts_dir>/<exp_hash>``, every byte verified first (see the module doc). A
    bundle already there stays if it holds this content; other content is refused (RegistryError naming both
    content digests and the files that differ) or, with ``force``, replaced. ``by_content`` (the pull cache):
    into ``<artifacts_dir>/<content dir>/<exp_hash>`` (:func:`content_dir`), so that contents of one EXP_HASH
    live side by side, and a copy there is kept only if its MANIFEST.json and signature are also the ones
    served."""
    digest, manifest = fetched or fetch_manifest(client, ref)
    layers = _layers_of(manifest)
    config = manifest.get("config") or {}
    config_digest = config.get("digest") if isinstance(config, dict) else None
    if not isinstance(config_digest, str):
        raise RegistryError(f"{ref}: the manifest has no config descriptor")
    config_bytes = client.fetch_blob(config_digest)
    if _sha256(config_bytes) != config_digest:
        raise RegistryError(
            f"{ref}: the config blob does not match its digest {config_digest}: refusing the pull"
        )
    artifacts_dir = Path(artifacts_dir)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=PULL_PREFIX, dir=artifacts_dir))
    try:
        root = work / "bundle"
        root.mkdir(mode=0o755)
        verified = {
            rel: (layer_digest.removeprefix("sha256:"), size) for rel, layer_digest, size, _ in layers
        }

        def fetch(layer: tuple[str, str, int, bool]) -> None:
            rel, layer_digest, size, executable = layer
            _download(client, rel, layer_digest, size, root / rel, executable)

        small = [layer for layer in layers if layer[2] < _PARALLEL_BELOW]
        with ThreadPoolExecutor(max_workers=_PARALLEL_UPLOADS) as pool:  # small files: several at once
            list(pool.map(fetch, small))
        for layer in layers:  # large ones one at a time, so Ctrl-C stops promptly
            if layer[2] >= _PARALLEL_BELOW:
                fetch(layer)
        exp_hash, bundle_manifest = check_unpacked(root, PULLED, verified)
        if manifest.get("annotations", {}).get(EXP_HASH) not in (None, exp_hash):
            raise RegistryError(f"{ref}: the manifest is annotated for another bundle than {exp_hash}")
        for dirpath, _dirs, _files in os.walk(root):
            os.chmod(dirpath, 0o755)
        parent = artifacts_dir
        if by_content:
            parent = artifacts_dir / content_dir(bundle_manifest.content_digest)
            parent.mkdir(mode=0o755, exist_ok=True)
        placed = place(root, parent / exp_hash, bundle_manifest, PULLED, force=force, exact=by_content)
        return PullResult(
            ref.with_digest(digest),
            digest,
            exp_hash,
            placed.bundle_dir,
            placed.already_existed,
            placed.content_digest,
            placed.replaced,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def content_dir(content_digest: str) -> str:
    """The directory name of a content digest: ``sha256:<hex>`` -> ``sha256-<hex>``."""
    return content_digest.replace(":", "-")
