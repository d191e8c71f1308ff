"""attach-hef: a valid HEF is sealed in; every bad one is refused with a clear message, bundle untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.cli import main
from conv2d_bundle.errors import BundleIntegrityError, HefError
from conv2d_bundle.targets.hailo.attach import attach_hef
from tests.conftest import reseal
from tests.hef_factory import make_hef


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["pack", "attach-hef", *args])
    return result.exit_code, result.output  # click >= 8.2: output holds stdout and stderr


def _configure(bundle: Path, hw_arch: str) -> None:
    meta = json.loads((bundle / "metadata.json").read_text())
    meta["formats"]["hailo"]["hw_arch"] = hw_arch
    (bundle / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    reseal(bundle)


def test_attach_valid_hef_seals_it(bundle_copy: Path, tmp_path: Path, run_checks) -> None:
    hef = tmp_path / "conv2d_fsq.hef"
    hef.write_bytes(make_hef(3, hw_arch_id=1, net_name="conv2d_fsq", sdk_version="3.33.0"))
    code, out = _cli(bundle_copy.name, str(hef), "--output-dir", str(bundle_copy.parent))
    assert code == 0, out
    assert "attached models/hailo.hef (HAILO8P" in out
    assert (bundle_copy / "models/hailo.hef").read_bytes() == hef.read_bytes()
    info = json.loads((bundle_copy / "metadata.json").read_text())["formats"]["hailo"]
    assert info["status"] == "built" and info["file"] == "models/hailo.hef" and "reason" not in info
    assert (info["hef_hw_arch"], info["sdk_version"], info["size_bytes"]) == (
        "HAILO8P",
        "3.33.0",
        hef.stat().st_size,
    )
    assert BundleManifest.load(bundle_copy).verify(bundle_copy).ok
    assert not list(bundle_copy.rglob("*.tmp"))
    rc, report, output = run_checks(bundle_copy, "hailo")
    assert rc == 0, output
    assert report is not None and report["passed"]
    assert any(
        s["id"] == "test_hailo.py::test_hef_parse_hef" and "hailortcli" in s["reason"]
        for s in report["skipped"]
    )


def test_hailo8l_hef_on_hailo8_is_accepted_with_a_warning(bundle_copy: Path, tmp_path: Path) -> None:
    hef = tmp_path / "l.hef"
    hef.write_bytes(make_hef(2, hw_arch_id=3))
    result = attach_hef(Bundle(bundle_copy), hef)
    assert result.hef.hw_arch == "HAILO8L"
    assert result.warnings and "Hailo-8L performance" in result.warnings[0]


REFUSALS = [
    ("corrupted", lambda: make_hef(2, corrupt=True), "integrity|hash|mismatch"),
    ("HAILO15H", lambda: make_hef(3, hw_arch_id=103), "HAILO15H"),
    ("another network", lambda: make_hef(0, net_name="yolov8n"), "another network"),
    ("not a HEF", lambda: b"PK\x03\x04 a zip, not a hef" * 50, "not a HEF"),
    ("empty", lambda: b"", "not a HEF"),
]


@pytest.mark.parametrize("name, content, message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_untouched(bundle_copy: Path, tmp_path: Path, name: str, content, message: str) -> None:
    import re

    hef = tmp_path / "bad.hef"
    hef.write_bytes(content())
    before = _tree(bundle_copy)
    code, out = _cli(str(bundle_copy), str(hef))
    assert code == 2, out
    assert "Traceback" not in out
    assert re.search(message, out, re.IGNORECASE), out
    assert len(out.strip().splitlines()) == 1
    assert _tree(bundle_copy) == before


def test_real_hef_of_another_network_refused(bundle_copy: Path, real_hef: Path) -> None:
    before = _tree(bundle_copy)
    with pytest.raises(HefError, match=r"x_feature_13.*another network"):
        attach_hef(Bundle(bundle_copy), real_hef)
    assert _tree(bundle_copy) == before


def test_hailo8l_bundle_refuses_hailo8p(bundle_copy: Path, tmp_path: Path) -> None:
    _configure(bundle_copy, "hailo8l")
    hef = tmp_path / "p.hef"
    hef.write_bytes(make_hef(1, hw_arch_id=1))
    before = _tree(bundle_copy)
    with pytest.raises(HefError, match=r"HAILO8P.*hailo8l"):
        attach_hef(Bundle(bundle_copy), hef)
    assert _tree(bundle_copy) == before
    hef.write_bytes(make_hef(1, hw_arch_id=3))
    assert attach_hef(Bundle(bundle_copy), hef).warnings == []


def test_tampered_bundle_is_not_resealed(bundle_copy: Path, tmp_path: Path) -> None:
    (bundle_copy / "label_map.json").write_text('{"0": "cat"}\n')
    hef = tmp_path / "ok.hef"
    hef.write_bytes(make_hef(0))
    before = _tree(bundle_copy)
    with pytest.raises(BundleIntegrityError, match=r"label_map\.json"):
        attach_hef(Bundle(bundle_copy), hef)
    assert _tree(bundle_copy) == before


def test_missing_hef_file_and_unknown_bundle(bundle_copy: Path, tmp_path: Path) -> None:
    code, out = _cli(str(bundle_copy), str(tmp_path / "nope.hef"))
    assert code == 2 and "no such file" in out and "Traceback" not in out
    code, out = _cli("ffffffff", str(tmp_path / "nope.hef"), "--output-dir", str(bundle_copy.parent))
    assert code == 2 and "no bundle matches" in out
