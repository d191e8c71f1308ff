"""The pull cache: ``verify oci://...`` and ``pytest checks --bundle oci://...`` check a local copy.

``$CONV2D_CACHE`` (else ``$XDG_CACHE_HOME/conv2d-bundle``, else ``~/.cache/conv2d-bundle``) holds
``bundles/sha256-<content hex>/<exp_hash>/`` (pulled exactly as ``conv2d pack pull`` pulls; the bundle directory
keeps its EXP_HASH name, which the checks compare with metadata.json) and ``manifests/sha256-<hex>.json``,
which maps an OCI manifest digest to the bundle's exp_hash, content digest and the sha256 of the MANIFEST.json
pulled. The cache is keyed by content: two bundles of one EXP_HASH with other bytes (a re-export under another
toolchain, a re-sealed forgery) are two entries side by side, and a cached copy serves only a reference whose
manifest names that content. A reference by digest that is already cached needs no registry at all; one by
tag costs one manifest GET. A cached copy is reused only while its MANIFEST.json and signature are the ones
pulled (the checks then verify every file against the manifest); a damaged one is replaced by a fresh pull.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from conv2d_bundle.bundle import atomic
from conv2d_bundle.bundle.digest import is_exp_hash
from conv2d_bundle.bundle.manifest import MANIFEST_NAME, SIGNATURE_NAME, BundleManifest
from conv2d_bundle.errors import BundleIntegrityError
from conv2d_bundle.oci.artifact import content_dir, fetch_manifest, pull_bundle
from conv2d_bundle.oci.client import RegistryClient
from conv2d_bundle.oci.reference import OciRef


def cache_root() -> Path:
    explicit = os.environ.get("CONV2D_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "conv2d-bundle"


@dataclass(frozen=True)
class CachedBundle:
    bundle_dir: Path
    digest: str  # the OCI manifest's
    exp_hash: str
    content_digest: str  # the bundle's (its MANIFEST.json)
    reused: bool


def _entry(root: Path, digest: str) -> Path:
    return root / "manifests" / f"{digest.replace(':', '-')}.json"


def _is_content_digest(value: object) -> bool:
    return (
        isinstance(value, str)
        and value.startswith("sha256:")
        and len(value) == 71
        and all(c in "0123456789abcdef" for c in value[7:])
    )


def _lookup(root: Path, digest: str) -> CachedBundle | None:
    """The cached copy of the OCI manifest ``digest``, if its MANIFEST.json and signature are the ones pulled."""
    try:
        entry = json.loads(_entry(root, digest).read_text(encoding="utf-8"))
        exp_hash, content = entry["exp_hash"], entry["content_digest"]
        if not (isinstance(exp_hash, str) and is_exp_hash(exp_hash) and _is_content_digest(content)):
            return None  # not an entry this cache wrote (or one of an older layout, keyed by exp_hash)
        bundle_dir = root / "bundles" / content_dir(content) / exp_hash
        raw = (bundle_dir / MANIFEST_NAME).read_bytes()
        if hashlib.sha256(raw).hexdigest() != entry.get("manifest_sha256"):
            return None
        if _signature_sha256(bundle_dir) != entry.get("signature_sha256"):
            return None
        if BundleManifest.parse(raw).content_digest != content:
            return None
    except (OSError, ValueError, KeyError, TypeError, BundleIntegrityError):
        return None
    return CachedBundle(bundle_dir, digest, exp_hash, content, reused=True)


def pull_cached(client: RegistryClient, ref: OciRef, root: Path | None = None) -> CachedBundle:
    """The cached copy of ``ref``, pulled first if the cache does not hold that content."""
    root = root or cache_root()
    if ref.digest:
        hit = _lookup(root, ref.digest)
        if hit:
            return hit
    digest, manifest = fetch_manifest(client, ref)
    hit = _lookup(root, digest)
    if hit:
        return hit
    # force: a copy already in this content's place that does not match it (damaged) gives way to the pull
    result = pull_bundle(
        client, ref, root / "bundles", fetched=(digest, manifest), force=True, by_content=True
    )
    manifest_sha = hashlib.sha256((result.bundle_dir / MANIFEST_NAME).read_bytes()).hexdigest()
    entry = _entry(root, digest)
    entry.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(
        entry,
        json.dumps(
            {
                "exp_hash": result.exp_hash,
                "content_digest": result.content_digest,
                "manifest_sha256": manifest_sha,
                "signature_sha256": _signature_sha256(result.bundle_dir),
            },
            sort_keys=True,
        )
        + "\n",
    )
    return CachedBundle(result.bundle_dir, digest, result.exp_hash, result.content_digest, reused=False)


def _signature_sha256(bundle_dir: Path) -> str | None:
    try:
        return hashlib.sha256((bundle_dir / SIGNATURE_NAME).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def pull_from_registry(text: str) -> Path:
    """The cached bundle directory of ``oci://...`` (credentials from the docker config): for ``--bundle``."""
    from conv2d_bundle.oci import credentials
    from conv2d_bundle.oci.reference import parse_ref

    ref = parse_ref(text)
    with RegistryClient(ref, credentials.resolve(ref.registry)) as client:
        return pull_cached(client, ref).bundle_dir
