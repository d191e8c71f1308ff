"""deploy: verify first, copy to a local directory through a verified temporary copy, or rsync to host:path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from conv2d_bundle import cli
from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.lifecycle.deploy import parse_destination
from conv2d_bundle.lifecycle.retention import deployed
from tests.conftest import reseal


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli.main, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_deploy_to_local_dir(bundle_copy: Path, tmp_path: Path) -> None:
    art, h = bundle_copy.parent, bundle_copy.name
    dest = tmp_path / "device" / "opt" / "models"
    code, out, err = invoke("pack", "deploy", h[:5], "--output-dir", str(art), "--to", str(dest))
    assert code == 0, err
    assert f"deployed to {dest.absolute() / h}" in out
    assert sorted(p.name for p in dest.iterdir()) == [h]  # no .tmp-deploy-* left
    assert BundleManifest.load(bundle_copy).verify(dest / h).ok
    assert (dest / h / "validation" / "general_validation.json").exists()
    record = json.loads((art / ".conv2d" / "deployments.json").read_text())
    assert record["deployments"][0]["exp_hash"] == h and record["deployments"][0]["verified"] is True
    assert deployed(art) == {h}

    code, out, _ = invoke("pack", "deploy", h, "--output-dir", str(art), "--to", str(dest))
    assert code == 0 and "already deployed" in out


def test_deploy_refuses_a_failing_bundle(bundle_copy: Path, tmp_path: Path) -> None:
    metrics = json.loads((bundle_copy / "metrics.json").read_text())
    (bundle_copy / "metrics.json").write_text(json.dumps({**metrics, "accuracy": 1.5}))
    reseal(bundle_copy)
    dest = tmp_path / "dest"
    args = ("pack", "deploy", bundle_copy.name, "--output-dir", str(bundle_copy.parent), "--to", str(dest))
    code, _, err = invoke(*args)
    assert code == 1
    assert "fails its general checks" in err and "accuracy=1.5" in err
    assert not dest.exists() or list(dest.iterdir()) == []
    assert not (bundle_copy.parent / ".conv2d" / "deployments.json").exists()

    code, _, err = invoke(*args, "--force")
    assert code == 0 and "despite failing" in err
    assert (dest / bundle_copy.name / "MANIFEST.json").exists()


def test_deploy_replaces_a_damaged_copy_only_with_force(bundle_copy: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    shutil.copytree(bundle_copy, dest / bundle_copy.name)
    (dest / bundle_copy.name / "metrics.json").write_text("{}")
    args = ("pack", "deploy", bundle_copy.name, "--output-dir", str(bundle_copy.parent), "--to", str(dest))
    code, _, err = invoke(*args)
    assert code == 2 and "does not match the bundle" in err
    code, _, err = invoke(*args, "--force")
    assert code == 0, err
    assert BundleManifest.load(bundle_copy).verify(dest / bundle_copy.name).ok
    assert sorted(p.name for p in dest.iterdir()) == [bundle_copy.name]


def test_deploy_remote_dry_run_prints_rsync(bundle_copy: Path) -> None:
    h = bundle_copy.name
    code, out, _ = invoke(
        "pack",
        "deploy",
        h,
        "--output-dir",
        str(bundle_copy.parent),
        "--to",
        "pi@edge-01:/opt/models",
        "--dry-run",
    )
    assert code == 0
    assert f"rsync -a --delete -e ssh {bundle_copy}/ pi@edge-01:/opt/models/.tmp-deploy-{h}/" in out
    assert f"rename it to pi@edge-01:/opt/models/{h} over ssh" in out
    assert not (bundle_copy.parent / ".conv2d" / "deployments.json").exists()


def test_dry_run_verifies_and_exits_as_the_deploy_would(bundle_copy: Path, tmp_path: Path) -> None:
    art, h = bundle_copy.parent, bundle_copy.name
    dest = tmp_path / "dest"
    args = ("pack", "deploy", h, "--output-dir", str(art), "--to", str(dest))
    real_code, _, _ = invoke(*args, "--target", "hailo")  # no HEF: the hailo checks fail, deploy refuses
    code, out, err = invoke(*args, "--target", "hailo", "--dry-run")
    assert real_code == 1 and code == 1, out + err
    assert "would be refused" in err and "HEF not compiled" in err
    assert "would copy" not in out
    assert not dest.exists() and not (art / ".conv2d" / "deployments.json").exists()

    code, out, err = invoke(*args, "--target", "onnx", "--dry-run")
    assert code == 0, err
    assert f"copy {bundle_copy} -> {dest.absolute() / h}" in out and "passed" in out
    assert not dest.exists() and not (art / ".conv2d" / "deployments.json").exists()


def test_parse_destination(tmp_path: Path) -> None:
    assert parse_destination("pi@edge-01:/opt/models") == ("pi@edge-01", "/opt/models")
    assert parse_destination("edge:models") == ("edge", "models")
    assert parse_destination("/opt/models") == (None, "/opt/models")
    assert parse_destination(str(tmp_path)) == (None, str(tmp_path))
