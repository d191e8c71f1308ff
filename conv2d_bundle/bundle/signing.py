"""Signed bundles: a detached Ed25519 signature of MANIFEST.json (``MANIFEST.json.sig``).

The manifest already pins every file by sha256, so signing it signs the whole bundle. The signature file
is not content (the manifest does not list it), so signing never changes what is hashed. Uses the
``cryptography`` package, imported only here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conv2d_bundle.bundle import atomic
from conv2d_bundle.bundle.manifest import MANIFEST_NAME, SIGNATURE_NAME
from conv2d_bundle.errors import BundleError, BundleIntegrityError


def _crypto() -> tuple[Any, Any, Any]:
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise BundleError("signing needs the cryptography package: pip install cryptography") from exc
    return ed25519, serialization, InvalidSignature


def keygen(private_path: Path, public_path: Path) -> None:
    """A new Ed25519 key pair as PEM files; the private key is written 0600 and never overwritten."""
    ed25519, serialization, _ = _crypto()
    for p in (private_path, public_path):
        if p.exists():
            raise BundleError(f"{p} exists; refusing to overwrite a key")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic.write_bytes(private_path, private, mode=0o600)
    atomic.write_bytes(public_path, public)


def _load(path: Path, *, private: bool) -> Any:
    ed25519, serialization, _ = _crypto()
    try:
        data = path.read_bytes()
        key = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except FileNotFoundError as exc:
        raise BundleError(f"key file not found: {path}") from exc
    except (ValueError, TypeError) as exc:
        raise BundleError(
            f"{path} is not an unencrypted PEM {'private' if private else 'public'} key"
        ) from exc
    expected = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, expected):
        raise BundleError(f"{path} is not an Ed25519 key")
    return key


def sign_bundle(bundle_dir: Path, private_key: Path) -> Path:
    """Write ``MANIFEST.json.sig`` beside the manifest; the manifest must still verify first."""
    from conv2d_bundle.bundle.manifest import BundleManifest

    diff = BundleManifest.load(bundle_dir).verify(bundle_dir)
    if not diff.ok:
        raise BundleIntegrityError(
            f"refusing to sign a bundle whose files disagree with its manifest: {diff.describe()}"
        )
    key = _load(private_key, private=True)
    signature = key.sign((bundle_dir / MANIFEST_NAME).read_bytes())
    target = bundle_dir / SIGNATURE_NAME
    atomic.write_bytes(target, signature)
    os.chmod(target, 0o644)
    return target


def verify_signature(bundle_dir: Path, public_key: Path) -> None:
    """Raise BundleIntegrityError unless MANIFEST.json carries a valid signature by ``public_key``."""
    _, _, invalid_signature = _crypto()
    key = _load(public_key, private=False)
    sig_path = bundle_dir / SIGNATURE_NAME
    if not sig_path.is_file():
        raise BundleIntegrityError(f"{SIGNATURE_NAME} is missing: the bundle is not signed")
    try:
        key.verify(sig_path.read_bytes(), (bundle_dir / MANIFEST_NAME).read_bytes())
    except invalid_signature as exc:
        raise BundleIntegrityError(
            f"{SIGNATURE_NAME} does not verify with {public_key.name}: MANIFEST.json changed, or signed by "
            "another key"
        ) from exc


def sign_bytes(private_key: Path, data: bytes) -> tuple[bytes, str]:
    """(Ed25519 signature of ``data``, key id) with the key ``sign`` uses; for evidence envelopes."""
    key = _load(private_key, private=True)
    return key.sign(data), key_id(key.public_key())


def verify_bytes(public_key: Path, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``public_key`` (a PEM file)."""
    _, _, invalid_signature = _crypto()
    key = _load(public_key, private=False)
    try:
        key.verify(signature, data)
    except invalid_signature:
        return False
    return True


def public_key_id(public_key: Path) -> str:
    return key_id(_load(public_key, private=False))


def key_id(public_key: Any) -> str:
    """``sha256:<hex>`` of the raw 32-byte Ed25519 public key: names a key without revealing anything."""
    import hashlib

    _, serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()
