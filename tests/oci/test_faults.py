"""Faults against the real registry: a push killed mid-upload, two pushes racing, a registry that is down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from conv2d_bundle.oci.artifact import build_artifact
from conv2d_bundle.oci.client import OCI_MANIFEST
from tests.conftest import ROOT, conv2d, reseal
from tests.oci.conftest import Registry, StallingProxy, free_port

BIG = 8 << 20


def bundle_with_big_weights(example_bundle: Path, tmp_path: Path, seed: bytes) -> Path:
    """A copy of the example with an extra 8 MiB file under models/ (unique bytes: blobs no other test has)."""
    dst = tmp_path / "artifacts" / example_bundle.name
    shutil.copytree(example_bundle, dst, ignore=shutil.ignore_patterns("validation"))
    (dst / "models" / "extra_weights.bin").write_bytes(seed + os.urandom(BIG - len(seed)))
    reseal(dst)
    return dst


def push_process(bundle: Path, ref: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "conv2d_bundle.cli", "pack", "push", str(bundle), ref, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_a_push_killed_mid_upload_is_completed_by_a_rerun_that_sends_only_what_is_missing(
    example_bundle: Path, registry: Registry, cli_env: dict[str, str], tmp_path: Path
) -> None:
    bundle = bundle_with_big_weights(example_bundle, tmp_path, b"killed")
    artifact = build_artifact(bundle)
    big = next(layer for layer in artifact.layers if layer.relpath == "models/extra_weights.bin")
    others = artifact.size - big.size  # pushed smallest first: every other file lands before the big one
    proxy = StallingProxy(int(registry.host.rsplit(":", 1)[1]), stall_after=others + 64 * 1024 + BIG // 2)
    try:
        ref = f"oci://127.0.0.1:{proxy.port}/faults/killed:v1"
        proc = push_process(bundle, ref, cli_env)
        try:
            assert proxy.stalled.wait(60), "the push never reached the big blob"
        finally:
            proc.kill()
            proc.wait()
        assert not _has_manifest(registry, "faults/killed", "v1")  # killed before its manifest: no artifact
        proxy.stall_after = None  # the network is back
        rerun = conv2d("pack", "push", str(bundle), ref, "--json", env=cli_env)
    finally:
        proxy.close()
    assert rerun.returncode == 0, rerun.stderr
    stats = json.loads(rerun.stdout)
    assert stats["blobs_sent"] == 2  # the big file and the config blob; every other file was there already
    assert stats["bytes_sent"] == BIG + len(artifact.config)
    assert stats["blobs_skipped"] == len(artifact.layers) - 1
    assert stats["digest"] == artifact.digest
    assert registry.tags("faults/killed") == ["v1"]
    pulled = conv2d(
        "pack", "pull", registry.ref("faults/killed:v1"), "--output-dir", str(tmp_path / "p"), env=cli_env
    )
    assert pulled.returncode == 0, pulled.stderr


def _has_manifest(registry: Registry, repository: str, tag: str) -> bool:
    url = f"http://{registry.host}/v2/{repository}/manifests/{tag}"
    return httpx.head(url, headers={"Accept": OCI_MANIFEST}).status_code == 200


def test_two_concurrent_pushes_of_the_same_bundle_end_with_one_manifest(
    example_bundle: Path, registry: Registry, cli_env: dict[str, str], tmp_path: Path
) -> None:
    bundle = bundle_with_big_weights(example_bundle, tmp_path, b"concurrent")
    ref = registry.ref("faults/concurrent:v1")
    procs = [push_process(bundle, ref, cli_env) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    digests = {json.loads(out)["digest"] for out, _ in results}
    assert digests == {build_artifact(bundle).digest}
    assert registry.tags("faults/concurrent") == ["v1"]
    pulled = conv2d("pack", "pull", ref, "--output-dir", str(tmp_path / "p"), "--json", env=cli_env)
    assert pulled.returncode == 0 and json.loads(pulled.stdout)["digest"] in digests


def test_a_registry_that_is_down_is_one_line_and_exit_2(
    example_bundle: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    dead = f"oci://127.0.0.1:{free_port()}/faults/down:v1"
    for args in (
        ("pack", "push", str(example_bundle), dead),
        ("pack", "pull", dead, "--output-dir", str(tmp_path / "out")),
        ("pack", "show", dead),
        ("pack", "verify", dead, "--require-evidence", "onnx"),
    ):
        result = conv2d(*args, env=cli_env)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: cannot reach registry 127.0.0.1:"), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
