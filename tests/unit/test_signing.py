"""Signed bundles: keys are made safely, only a bundle that matches its manifest is signed, and a signature
verifies only for the same manifest and the same key; every refusal says what is wrong."""

from __future__ import annotations

import builtins
import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.bundle.signing import (
    keygen,
    public_key_id,
    sign_bundle,
    sign_bytes,
    verify_bytes,
    verify_signature,
)
from conv2d_bundle.errors import BundleError, BundleIntegrityError


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "keys" / "signing.pem", tmp_path / "keys" / "signing.pub"
    private.parent.mkdir()
    keygen(private, public)
    return private, public


@pytest.fixture
def sealed(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    (root / "models" / "model.onnx").write_bytes(b"\x08\x07onnx")
    (root / "config.yaml").write_text("a: 1\n")
    BundleManifest.build(root).write(root)
    return root


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keygen_writes_a_private_pem_readable_by_the_owner_only(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert mode(private) == 0o600
    assert mode(public) & 0o044 == 0o044  # the public key is for others to read


@pytest.mark.parametrize("existing", [0, 1])
def test_keygen_never_overwrites_a_key(keys: tuple[Path, Path], tmp_path: Path, existing: int) -> None:
    kept = keys[existing]
    before = kept.read_bytes()
    other = tmp_path / "other.pem"
    pair = (kept, other) if existing == 0 else (other, kept)
    with pytest.raises(BundleError, match=f"^{kept} exists; refusing to overwrite a key$"):
        keygen(*pair)
    assert kept.read_bytes() == before
    assert not other.exists()


def test_sign_and_verify(sealed: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    sig = sign_bundle(sealed, private)
    assert sig == sealed / "MANIFEST.json.sig"
    assert len(sig.read_bytes()) == 64  # a raw Ed25519 signature
    assert mode(sig) == 0o644
    verify_signature(sealed, public)
    assert BundleManifest.load(sealed).verify(sealed).ok  # the signature is not content


def test_a_bundle_that_disagrees_with_its_manifest_is_not_signed(
    sealed: Path, keys: tuple[Path, Path]
) -> None:
    (sealed / "config.yaml").write_text("a: 2\n")
    with pytest.raises(BundleIntegrityError) as info:
        sign_bundle(sealed, keys[0])
    assert str(info.value) == (
        "refusing to sign a bundle whose files disagree with its manifest: changed: config.yaml"
    )
    assert not (sealed / "MANIFEST.json.sig").exists()


def test_unsigned_bundle_is_refused(sealed: Path, keys: tuple[Path, Path]) -> None:
    with pytest.raises(
        BundleIntegrityError, match=r"^MANIFEST.json.sig is missing: the bundle is not signed$"
    ):
        verify_signature(sealed, keys[1])
    (sealed / "MANIFEST.json.sig").mkdir()  # not a file either
    with pytest.raises(BundleIntegrityError, match="is missing: the bundle is not signed"):
        verify_signature(sealed, keys[1])


def test_resealed_manifest_fails_the_signature(sealed: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    sign_bundle(sealed, private)
    (sealed / "config.yaml").write_text("a: 2\n")
    BundleManifest.build(sealed).write(sealed)  # a tamperer who re-seals cannot re-sign
    with pytest.raises(BundleIntegrityError) as info:
        verify_signature(sealed, public)
    assert str(info.value) == (
        "MANIFEST.json.sig does not verify with signing.pub: MANIFEST.json changed, or signed by another key"
    )


def test_signature_of_another_key_fails(sealed: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    sign_bundle(sealed, keys[0])
    keygen(tmp_path / "b.pem", tmp_path / "b.pub")
    with pytest.raises(BundleIntegrityError, match=r"does not verify with b\.pub"):
        verify_signature(sealed, tmp_path / "b.pub")


def test_key_files_are_checked(sealed: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, public = keys
    sign_bundle(sealed, private)
    missing = tmp_path / "nope.pem"
    with pytest.raises(BundleError, match=f"^key file not found: {missing}$"):
        sign_bundle(sealed, missing)
    with pytest.raises(BundleError, match=f"^key file not found: {missing}$"):
        verify_signature(sealed, missing)
    with pytest.raises(BundleError, match=f"^{public} is not an unencrypted PEM private key$"):
        sign_bundle(sealed, public)  # the public key where the private one belongs
    with pytest.raises(BundleError, match=f"^{private} is not an unencrypted PEM public key$"):
        verify_signature(sealed, private)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    with pytest.raises(BundleError, match="is not an unencrypted PEM public key"):
        verify_signature(sealed, garbage)


def test_keys_of_another_algorithm_are_refused(sealed: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = tmp_path / "ec.pem", tmp_path / "ec.pub"
    write_pem_pair(key, private, public)
    with pytest.raises(BundleError, match=f"^{private} is not an Ed25519 key$"):
        sign_bundle(sealed, private)
    with pytest.raises(BundleError, match=f"^{public} is not an Ed25519 key$"):
        verify_signature(sealed, public)


def test_without_cryptography_signing_says_what_to_install(
    keys: tuple[Path, Path], sealed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_cryptography(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("cryptography"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cryptography)
    message = "^signing needs the cryptography package: pip install cryptography$"
    with pytest.raises(BundleError, match=message):
        verify_signature(sealed, keys[1])
    with pytest.raises(BundleError, match=message):
        keygen(sealed / "k.pem", sealed / "k.pub")


# -- signing bytes: the evidence envelopes (DSSE / in-toto) a registry carries -------------------------------

#: RFC 8032 section 7.1, TEST 2: Ed25519 is deterministic, so a key's signature of a message is fixed
RFC8032_SECRET = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC8032_PUBLIC = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC8032_MESSAGE = bytes.fromhex("72")
RFC8032_SIGNATURE = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)
#: what the key is called in an envelope: sha256 of the raw 32-byte public key
RFC8032_KEY_ID = "sha256:" + hashlib.sha256(RFC8032_PUBLIC).hexdigest()


@pytest.fixture
def rfc_keys(tmp_path: Path) -> tuple[Path, Path]:
    """The RFC 8032 test key as the PEM files ``conv2d pack keygen`` writes."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
    private, public = tmp_path / "rfc.pem", tmp_path / "rfc.pub"
    write_pem_pair(key, private, public)
    return private, public


def test_sign_bytes_is_plain_ed25519_named_by_the_raw_public_key(rfc_keys: tuple[Path, Path]) -> None:
    """Any Ed25519 verifier reads the signature (RFC 8032's own vector); the key id is the sha256 of the raw
    32-byte public key, the same from the private or the public file."""
    private, public = rfc_keys
    assert sign_bytes(private, RFC8032_MESSAGE) == (RFC8032_SIGNATURE, RFC8032_KEY_ID)
    assert public_key_id(public) == RFC8032_KEY_ID
    assert verify_bytes(public, RFC8032_SIGNATURE, RFC8032_MESSAGE) is True


def test_verify_bytes_refuses_other_data_and_other_keys(
    rfc_keys: tuple[Path, Path], keys: tuple[Path, Path]
) -> None:
    private, public = rfc_keys
    data = b'{"payloadType": "application/vnd.in-toto+json"}'
    signature, key = sign_bytes(private, data)
    assert verify_bytes(public, signature, data) is True
    assert verify_bytes(public, signature, data + b" ") is False
    assert verify_bytes(public, bytes([signature[0] ^ 1]) + signature[1:], data) is False
    assert verify_bytes(keys[1], signature, data) is False  # signed by another key
    other_signature, other_key = sign_bytes(keys[0], data)
    assert other_key == public_key_id(keys[1]) != key
    assert verify_bytes(keys[1], other_signature, data) is True


def test_byte_signing_checks_its_key_files(rfc_keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, public = rfc_keys
    missing = tmp_path / "nope.pem"
    with pytest.raises(BundleError, match=f"^key file not found: {missing}$"):
        sign_bytes(missing, b"x")
    with pytest.raises(BundleError, match=f"^{public} is not an unencrypted PEM private key$"):
        sign_bytes(public, b"x")
    with pytest.raises(BundleError, match=f"^{private} is not an unencrypted PEM public key$"):
        verify_bytes(private, RFC8032_SIGNATURE, RFC8032_MESSAGE)
    with pytest.raises(BundleError, match=f"^{private} is not an unencrypted PEM public key$"):
        public_key_id(private)


def test_byte_signing_without_cryptography_says_what_to_install(
    rfc_keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = rfc_keys
    real_import = builtins.__import__

    def no_cryptography(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("cryptography"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cryptography)
    message = "^signing needs the cryptography package: pip install cryptography$"
    for call in (
        lambda: sign_bytes(private, b"x"),
        lambda: verify_bytes(public, RFC8032_SIGNATURE, RFC8032_MESSAGE),
        lambda: public_key_id(public),
    ):
        with pytest.raises(BundleError, match=message):
            call()


def write_pem_pair(key: Any, private: Path, public: Path) -> None:
    """``key`` as a PKCS#8 private PEM and its SubjectPublicKeyInfo public PEM, as ``conv2d pack keygen`` writes."""
    from cryptography.hazmat.primitives import serialization

    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
