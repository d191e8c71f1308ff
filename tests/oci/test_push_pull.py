"""``conv2d pack push`` / ``pull`` against a real registry: the layout, dedup, and the checks a pull makes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from conv2d_bundle.errors import RegistryError
from conv2d_bundle.oci.artifact import ARTIFACT_TYPE, WEIGHT, build_artifact, pull_bundle, push_bundle
from conv2d_bundle.oci.client import RegistryClient
from conv2d_bundle.oci.reference import parse_ref
from tests.conftest import conv2d, reseal
from tests.oci.conftest import Registry


def unique_bundle(example_bundle: Path, tmp_path: Path, marker: str) -> Path:
    """A copy of the example whose docs differ (same identity, other blobs): safe to corrupt in the registry."""
    dst = tmp_path / "artifacts" / example_bundle.name
    shutil.copytree(example_bundle, dst, ignore=shutil.ignore_patterns("validation"))
    readme = dst / "docs" / "README.md"
    readme.write_text(readme.read_text() + f"\n<!-- {marker} -->\n")
    reseal(dst)
    return dst


def test_push_prints_the_manifest_digest_and_a_repush_sends_no_bytes(
    example_bundle: Path, registry: Registry, cli_env: dict[str, str]
) -> None:
    ref = registry.ref("team/dogs:v1")
    first = conv2d("pack", "push", str(example_bundle), ref, "--json", env=cli_env)
    assert first.returncode == 0, first.stderr
    pushed = json.loads(first.stdout)
    again = conv2d("pack", "push", str(example_bundle), ref, env=cli_env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == pushed["digest"]  # the only line on stdout: scripts capture it
    assert pushed["digest"] == build_artifact(example_bundle).digest
    with RegistryClient(parse_ref(ref)) as client:
        result = push_bundle(client, example_bundle, parse_ref(ref))
    assert (result.stats.bytes_sent, result.stats.blobs_sent) == (0, 0)
    assert result.stats.bytes_skipped > result.size  # every file, and the config blob
    assert registry.tags("team/dogs") == ["v1"]


def test_the_artifact_layout(example_bundle: Path) -> None:
    artifact = build_artifact(example_bundle)
    manifest = json.loads(artifact.manifest)
    assert manifest["artifactType"] == ARTIFACT_TYPE
    paths = [layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]]
    assert paths == sorted(paths) and "MANIFEST.json" in paths
    assert not any(p.startswith("validation/") for p in paths)  # reports travel as referrers
    sealed = json.loads((example_bundle / "MANIFEST.json").read_text())["files"]
    for layer in manifest["layers"]:
        rel = layer["annotations"]["org.opencontainers.image.title"]
        if rel in sealed:  # a layer's digest is the file's sha256 in MANIFEST.json: dedup by content
            assert layer["digest"] == "sha256:" + sealed[rel]["sha256"]
    onnx = next(
        layer
        for layer in manifest["layers"]
        if layer["annotations"]["org.cncf.model.filepath"] == "models/model.onnx"
    )
    assert onnx["mediaType"] == WEIGHT
    assert build_artifact(example_bundle).manifest == artifact.manifest  # no clock in it


def test_pull_into_another_artifacts_dir_gives_the_same_files(
    example_bundle: Path, registry: Registry, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ref = registry.ref("team/pull:v1")
    digest = conv2d("pack", "push", str(example_bundle), ref, env=cli_env).stdout.strip()
    out = tmp_path / "other-artifacts"
    pulled = conv2d(
        "pack", "pull", registry.ref(f"team/pull@{digest}"), "--output-dir", str(out), "--json", env=cli_env
    )
    assert pulled.returncode == 0, pulled.stderr
    info = json.loads(pulled.stdout)
    assert info["digest"] == digest and not info["already_existed"]
    bundle = Path(info["bundle_dir"])
    assert bundle == (out / example_bundle.name).absolute()
    sealed = json.loads((example_bundle / "MANIFEST.json").read_text())["files"]
    for rel in [*sealed, "MANIFEST.json"]:
        assert (bundle / rel).read_bytes() == (example_bundle / rel).read_bytes(), rel
    assert not (bundle / "validation").exists()
    assert [p.name for p in out.iterdir()] == [example_bundle.name]  # no temporary directory left
    again = conv2d("pack", "pull", registry.ref("team/pull:v1"), "--output-dir", str(out), env=cli_env)
    assert again.returncode == 0 and "already present" in again.stdout


def test_a_corrupt_blob_in_the_registry_makes_pull_refuse_naming_the_file(
    example_bundle: Path, registry: Registry, cli_env: dict[str, str], tmp_path: Path
) -> None:
    bundle = unique_bundle(example_bundle, tmp_path, "corrupt-blob")
    ref = registry.ref("team/corrupt:v1")
    assert conv2d("pack", "push", str(bundle), ref, env=cli_env).returncode == 0
    readme = build_artifact(bundle).layers
    blob = next(layer for layer in readme if layer.relpath == "docs/README.md")
    data = registry.blob_file(blob.digest)
    raw = bytearray(data.read_bytes())
    raw[10] ^= 0xFF  # same size, other bytes: only the digest can tell
    data.write_bytes(bytes(raw))
    out = tmp_path / "pulled"
    result = conv2d("pack", "pull", ref, "--output-dir", str(out), env=cli_env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "docs/README.md" in result.stderr and "corrupt" in result.stderr
    assert list(out.iterdir()) == []  # a bad pull leaves nothing


def test_pull_refuses_what_is_not_a_bundle(registry: Registry, tmp_path: Path) -> None:
    ref = parse_ref(registry.ref("team/other:v1"))
    config = b"{}"
    with RegistryClient(ref) as client:
        client.push_blob("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", 2, config)
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                    "size": 2,
                },
                "layers": [],
            }
        ).encode()
        client.put_manifest("v1", body)
        with pytest.raises(RegistryError, match="not a conv2d bundle"):
            pull_bundle(client, ref, tmp_path)
        with pytest.raises(RegistryError, match="no such manifest"):
            pull_bundle(client, parse_ref(registry.ref("team/other:nope")), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_digest_reference_that_the_registry_does_not_serve_is_refused(
    example_bundle: Path, registry: Registry, tmp_path: Path
) -> None:
    wrong = "sha256:" + "0" * 64
    with RegistryClient(parse_ref(registry.ref("team/dogs:v1"))) as client:
        push_bundle(client, example_bundle, parse_ref(registry.ref("team/dogs:v1")))
    with pytest.raises(RegistryError):
        with RegistryClient(parse_ref(registry.ref(f"team/dogs@{wrong}"))) as client:
            pull_bundle(client, parse_ref(registry.ref(f"team/dogs@{wrong}")), tmp_path)


def test_registry_down_is_one_line_exit_2(example_bundle: Path, cli_env: dict[str, str]) -> None:
    from tests.oci.conftest import free_port

    dead = f"oci://127.0.0.1:{free_port()}/team/dogs:v1"
    result = conv2d("pack", "push", str(example_bundle), dead, env=cli_env)
    assert result.returncode == 2
    assert (
        result.stderr.startswith("error: cannot reach registry 127.0.0.1:") and result.stderr.count("\n") == 1
    )
    assert "Traceback" not in result.stderr


def test_manifest_is_served_as_pushed(example_bundle: Path, registry: Registry) -> None:
    artifact = build_artifact(example_bundle)
    with RegistryClient(parse_ref(registry.ref("team/dogs:v1"))) as client:
        push_bundle(client, example_bundle, parse_ref(registry.ref("team/dogs:v1")))
    resp = httpx.get(
        f"http://{registry.host}/v2/team/dogs/manifests/{artifact.digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert resp.content == artifact.manifest


def test_push_refuses_a_file_that_changed_after_sealing(
    example_bundle: Path, registry: Registry, cli_env: dict[str, str], tmp_path: Path
) -> None:
    bundle = unique_bundle(example_bundle, tmp_path, "changed-after-sealing")
    readme = bundle / "docs" / "README.md"
    raw = bytearray(readme.read_bytes())
    raw[0] ^= 0x01  # same size: only hashing the bytes as they are sent can tell
    readme.write_bytes(bytes(raw))
    result = conv2d("pack", "push", str(bundle), registry.ref("team/changed:v1"), env=cli_env)
    assert result.returncode == 2
    assert (
        result.stderr.startswith("error: docs/README.md: the file's sha256 is")
        and "MANIFEST.json" in result.stderr
    )
