"""Signed bundles: keys are made safely, only a bundle that matches its manifest is signed, and a signature
verifies only for the same manifest and the same key; every refusal says what is wrong."""

from __future__ import annotations

import builtins
import stat
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.errors import BundleError, BundleIntegrityError
from conv2d_bundle.manifest import BundleManifest
from conv2d_bundle.signing import keygen, sign_bundle, verify_signature


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
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = tmp_path / "ec.pem", tmp_path / "ec.pub"
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
