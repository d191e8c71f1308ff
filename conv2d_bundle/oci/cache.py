"""The pull cache: ``verify oci://...`` and ``pytest checks --bundle oci://...`` check a local copy.

``$CONV2D_CACHE`` (else ``$XDG_CACHE_HOME/conv2d-bundle``, else ``~/.cache/conv2d-bundle``) holds
``bundles/<exp_hash>/`` (pulled exactly as ``conv2d pack pull`` pulls) and ``manifests/sha256-<hex>.json``,
which maps a bundle manifest digest to its bundle and the sha256 of its MANIFEST.json. A reference by
digest that is already cached needs no registry at all; one by tag costs one manifest GET. A cached bundle
is reused only while its MANIFEST.json is the one pulled (the checks then verify every file against it).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from conv2d_bundle import atomic
from conv2d_bundle.oci.artifact import fetch_manifest, pull_bundle
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
    digest: str
    exp_hash: str
    reused: bool


def _entry(root: Path, digest: str) -> Path:
    return root / "manifests" / f"{digest.replace(':', '-')}.json"


def _lookup(root: Path, digest: str) -> CachedBundle | None:
    try:
        entry = json.loads(_entry(root, digest).read_text(encoding="utf-8"))
        bundle_dir = root / "bundles" / str(entry["exp_hash"])
        actual = hashlib.sha256((bundle_dir / "MANIFEST.json").read_bytes()).hexdigest()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if actual != entry.get("manifest_sha256"):
        return None
    return CachedBundle(bundle_dir, digest, str(entry["exp_hash"]), reused=True)


def pull_cached(client: RegistryClient, ref: OciRef, root: Path | None = None) -> CachedBundle:
    """The cached copy of ``ref``, pulled first if the cache does not hold it."""
    root = root or cache_root()
    if ref.digest:
        hit = _lookup(root, ref.digest)
        if hit:
            return hit
    digest, manifest = fetch_manifest(client, ref)
    hit = _lookup(root, digest)
    if hit:
        return hit
    result = pull_bundle(client, ref, root / "bundles", fetched=(digest, manifest))
    manifest_sha = hashlib.sha256((result.bundle_dir / "MANIFEST.json").read_bytes()).hexdigest()
    entry = _entry(root, digest)
    entry.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(
        entry, json.dumps({"exp_hash": result.exp_hash, "manifest_sha256": manifest_sha}) + "\n"
    )
    return CachedBundle(result.bundle_dir, digest, result.exp_hash, reused=False)


def pull_from_registry(text: str) -> Path:
    """The cached bundle directory of ``oci://...`` (credentials from the docker config): for ``--bundle``."""
    from conv2d_bundle.oci import credentials
    from conv2d_bundle.oci.reference import parse_ref

    ref = parse_ref(text)
    with RegistryClient(ref, credentials.resolve(ref.registry)) as client:
        return pull_cached(client, ref).bundle_dir
