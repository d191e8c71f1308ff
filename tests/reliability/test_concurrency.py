"""Promise 2: concurrent creates of the same inputs end with one valid bundle that both report; creates of
different models at once do not interfere; a create that found a bundle reads it whole even while a
create --force replaces it or clean removes it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conv2d_bundle.bundle import atomic
from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.bundle.store import list_bundles
from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL, ROOT, conv2d, create_args


def _start(config: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conv2d_bundle.cli",
            "pack",
            "create",
            "--config",
            str(config),
            "--model",
            str(EXAMPLE_MODEL),
            "--output-dir",
            str(out),
            "--formats",
            "onnx",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _finish(p: subprocess.Popen[str]) -> dict:
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    return json.loads(out)


def test_same_inputs_from_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "art"
    procs = [_start(EXAMPLE_CONFIG, out) for _ in range(2)]
    infos = [_finish(p) for p in procs]
    assert infos[0]["exp_hash"] == infos[1]["exp_hash"]
    assert sorted(i["already_existed"] for i in infos) == [False, True]  # one built it, the other found it
    bundles = list_bundles(out)
    assert [b.exp_hash for b in bundles] == [infos[0]["exp_hash"]]
    assert BundleManifest.load(bundles[0].bundle_dir).verify(bundles[0].bundle_dir).ok
    assert not [d for d in out.iterdir() if d.name.startswith(".tmp-")]


def test_different_models_at_once(tmp_path: Path) -> None:
    out = tmp_path / "art"
    other = tmp_path / "other.yaml"
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["training"]["epochs"] = 99
    other.write_text(yaml.safe_dump(data))
    infos = [_finish(p) for p in [_start(EXAMPLE_CONFIG, out), _start(other, out)]]
    assert infos[0]["exp_hash"] != infos[1]["exp_hash"]
    for b in list_bundles(out):
        assert BundleManifest.load(b.bundle_dir).verify(b.bundle_dir).ok
    assert len(list_bundles(out)) == 2


def _paused(point: str, markers: Path, *args: str, driver: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """``conv2d ARGS`` that stops at POINT until told to go (tests/reliability/pausing.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.pausing", point, str(markers), *driver, "--", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _reached(point: str, markers: Path, proc: subprocess.Popen[str]) -> bool:
    """Wait until ``proc`` pauses at POINT (True) or ends without getting there (False)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (markers / f"{point}.paused").exists():
            return True
        if proc.poll() is not None:
            return (markers / f"{point}.paused").exists()
        time.sleep(0.05)
    raise AssertionError(f"{point}: neither paused nor finished in 300 s")


def _first_bundle(out: Path) -> dict:
    p = conv2d(*create_args(out, "--json"))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("driver", [(), ("--without-exchange",)], ids=["atomic-swap", "two-renames"])
def test_create_that_found_the_bundle_reads_it_while_force_replaces_it(
    tmp_path: Path, driver: tuple[str, ...]
) -> None:
    out, markers = tmp_path / "art", tmp_path / "markers"
    markers.mkdir()
    probe = [tmp_path / "probe-a", tmp_path / "probe-b"]
    for d in probe:
        d.mkdir()
    if not driver and not atomic.exchange(*probe):
        pytest.skip("no atomic directory swap (renameat2 RENAME_EXCHANGE) on this file system")
    first = _first_bundle(out)
    reader = _paused("read-metadata", markers, *create_args(out, "--json"))
    assert _reached("read-metadata", markers, reader), reader.communicate()  # found it; about to read it
    forcer = _paused("move-into-place", markers, *create_args(out, "--json", "--force"), driver=driver)
    # Paused with the old bundle moved aside and the new one not yet in, if that moment exists; with one
    # atomic swap it does not, and the --force create runs to its end.
    assert _reached("move-into-place", markers, forcer) == bool(driver)
    (markers / "read-metadata.go").touch()
    try:
        reader.wait(timeout=10)  # reads now, inside that moment if there is one
    except subprocess.TimeoutExpired:
        pass  # waiting for the build lock of the --force create, which holds it until released below
    (markers / "move-into-place.go").touch()
    found, replaced = _finish(reader), _finish(forcer)
    assert found["exp_hash"] == replaced["exp_hash"] == first["exp_hash"]
    assert found["already_existed"] is True and replaced["already_existed"] is False
    bundles = list_bundles(out)
    assert [b.exp_hash for b in bundles] == [first["exp_hash"]]
    assert BundleManifest.load(bundles[0].bundle_dir).verify(bundles[0].bundle_dir).ok
    assert not [d for d in out.iterdir() if d.name.startswith(".tmp-")]


def test_create_that_found_the_bundle_builds_it_again_when_clean_removed_it(tmp_path: Path) -> None:
    out, markers = tmp_path / "art", tmp_path / "markers"
    markers.mkdir()
    first = _first_bundle(out)
    reader = _paused("read-metadata", markers, *create_args(out, "--json"))
    assert _reached("read-metadata", markers, reader), reader.communicate()
    cleaned = conv2d("pack", "clean", "--keep", "0", "--output-dir", str(out))
    assert cleaned.returncode == 0 and f"removed {first['exp_hash']}" in cleaned.stdout, cleaned.stderr
    (markers / "read-metadata.go").touch()
    again = _finish(reader)
    assert again["exp_hash"] == first["exp_hash"] and again["already_existed"] is False
    bundles = list_bundles(out)
    assert [b.exp_hash for b in bundles] == [first["exp_hash"]]
    assert BundleManifest.load(bundles[0].bundle_dir).verify(bundles[0].bundle_dir).ok
