"""Signed bundles: a signature by the trusted key passes; missing, invalid or foreign ones fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conv2d_bundle.bundle.digest import sha256_file
from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.bundle.signing import SIGNATURE_NAME, keygen, sign_bundle, verify_signature
from conv2d_bundle.cli import main
from conv2d_bundle.errors import BundleError, BundleIntegrityError


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    keygen(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    return tmp_path / "k.pem", tmp_path / "k.pub.pem"


def test_sign_verify_and_content_unchanged(bundle_copy: Path, keys: tuple[Path, Path]) -> None:
    before = {p: sha256_file(p) for p in bundle_copy.rglob("*") if p.is_file()}
    sign_bundle(bundle_copy, keys[0])
    after = {p: sha256_file(p) for p in bundle_copy.rglob("*") if p.is_file() and p.name != SIGNATURE_NAME}
    assert before == after
    verify_signature(bundle_copy, keys[1])
    assert BundleManifest.load(bundle_copy).verify(bundle_copy).ok
    assert oct(keys[0].stat().st_mode & 0o777) == "0o600"


def test_missing_invalid_and_foreign_signatures(
    bundle_copy: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(BundleIntegrityError, match="not signed"):
        verify_signature(bundle_copy, keys[1])
    sign_bundle(bundle_copy, keys[0])
    keygen(tmp_path / "other.pem", tmp_path / "other.pub.pem")
    with pytest.raises(BundleIntegrityError, match="does not verify"):
        verify_signature(bundle_copy, tmp_path / "other.pub.pem")
    manifest = bundle_copy / "MANIFEST.json"
    manifest.write_text(manifest.read_text().replace('"size"', '"size" ', 1))
    with pytest.raises(BundleIntegrityError, match="does not verify"):
        verify_signature(bundle_copy, keys[1])


def test_refuses_to_sign_a_tampered_bundle(bundle_copy: Path, keys: tuple[Path, Path]) -> None:
    (bundle_copy / "metrics.json").write_text("{}")
    with pytest.raises(BundleIntegrityError, match=r"metrics\.json"):
        sign_bundle(bundle_copy, keys[0])


def test_keygen_never_overwrites(keys: tuple[Path, Path]) -> None:
    with pytest.raises(BundleError, match="refusing to overwrite"):
        keygen(*keys)


def test_checks_with_trusted_key(
    bundle_copy: Path, keys: tuple[Path, Path], run_checks: Any, tmp_path: Path
) -> None:
    rc, report, out = run_checks(bundle_copy, "general", "--trusted-key", str(keys[1]))
    assert rc == 1 and any("not signed" in e for e in report["errors"]), out
    r = CliRunner().invoke(main, ["pack", "sign", str(bundle_copy), "--key", str(keys[0])])
    assert r.exit_code == 0, r.output
    rc, report, out = run_checks(bundle_copy, "general", "--trusted-key", str(keys[1]))
    assert rc == 0 and "test_general.py::test_signature" in report["checks_run"], out
    keygen(tmp_path / "o.pem", tmp_path / "o.pub.pem")
    rc, report, _ = run_checks(bundle_copy, "general", "--trusted-key", str(tmp_path / "o.pub.pem"))
    assert rc == 1 and any("does not verify" in e for e in report["errors"])
    rc, report, _ = run_checks(bundle_copy, "general")  # without a key the signature is not a check
    assert rc == 0 and "test_general.py::test_signature" not in report["checks_run"]
