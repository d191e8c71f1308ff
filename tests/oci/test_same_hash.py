"""Same EXP_HASH, other content, through a registry: ``pull`` refuses to call it "nothing changed" (or replaces
with --force), and the pull cache keeps each content apart, so ``verify oci://...:bad`` checks bad's bytes and
not a cached copy of good's. "bad" is the example with one classifier bias moved (tests/same_hash.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.oci.cache import pull_cached
from conv2d_bundle.oci.client import RegistryClient
from conv2d_bundle.oci.reference import parse_ref
from tests.conftest import conv2d
from tests.oci.conftest import Registry
from tests.same_hash import bad_copy


def push(bundle: Path, ref: str, env: dict[str, str]) -> str:
    p = conv2d("pack", "push", str(bundle), ref, env=env)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.fixture
def good_and_bad(
    example_bundle: Path,
    registry: Registry,
    cli_env: dict[str, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> tuple[Path, Path, str]:
    """(good bundle, bad bundle, repository) with both pushed to the repository as :good and :bad."""
    bad = bad_copy(example_bundle, tmp_path / "bad-artifacts")
    repo = f"same/{request.node.name.lower().replace('_', '-')[:60]}"
    push(example_bundle, registry.ref(f"{repo}:good"), cli_env)
    push(bad, registry.ref(f"{repo}:bad"), cli_env)
    return example_bundle, bad, repo


def digest(bundle: Path) -> str:
    return BundleManifest.load(bundle).content_digest


def files(bundle: Path) -> dict[str, bytes]:
    return {
        p.relative_to(bundle).as_posix(): p.read_bytes()
        for p in sorted(bundle.rglob("*"))
        if p.is_file() and not p.relative_to(bundle).as_posix().startswith("validation/")
    }


def test_pull_of_other_content_under_an_existing_hash_is_refused_then_replaced_with_force(
    good_and_bad: tuple[Path, Path, str], registry: Registry, cli_env: dict[str, str], tmp_path: Path
) -> None:
    good, bad, repo = good_and_bad
    out = tmp_path / "pulled"
    first = conv2d("pack", "pull", registry.ref(f"{repo}:good"), "--output-dir", str(out), env=cli_env)
    assert first.returncode == 0, first.stderr
    local = out / good.name
    again = conv2d("pack", "pull", registry.ref(f"{repo}:bad"), "--output-dir", str(out), env=cli_env)
    assert (again.returncode, again.stdout) == (2, ""), again.stderr
    assert again.stderr == (
        f"error: {good.name} already exists with other content ({digest(good)} here, {digest(bad)} in the "
        "registry; differs: models/model.onnx); --force replaces it\n"
    )
    assert files(local) == files(good) and [p.name for p in out.iterdir()] == [good.name]

    forced = conv2d(
        "pack",
        "pull",
        registry.ref(f"{repo}:bad"),
        "--output-dir",
        str(out),
        "--force",
        "--json",
        env=cli_env,
    )
    assert forced.returncode == 0, forced.stderr
    info = json.loads(forced.stdout)
    assert (info["already_existed"], info["content_digest"], info["replaced_content_digest"]) == (
        False,
        digest(bad),
        digest(good),
    )
    assert files(local) == files(bad) and [p.name for p in out.iterdir()] == [good.name]
    same = conv2d("pack", "pull", registry.ref(f"{repo}:bad"), "--output-dir", str(out), env=cli_env)
    assert same.returncode == 0, same.stderr
    assert (
        same.stdout.splitlines()[0] == f"Bundle already present (pull verified, nothing changed): {good.name}"
    )


def test_the_pull_cache_keeps_two_contents_of_one_hash_apart(
    good_and_bad: tuple[Path, Path, str], registry: Registry, tmp_path: Path
) -> None:
    good, bad, repo = good_and_bad
    cache = tmp_path / "cache"
    cached = {}
    for tag in ("good", "bad", "good"):
        ref = parse_ref(registry.ref(f"{repo}:{tag}"))
        with RegistryClient(ref) as client:
            cached[tag] = pull_cached(client, ref, cache)
    g, b = cached["good"], cached["bad"]
    assert g.reused and not b.reused  # good's copy served the second good, bad never took it
    assert (g.content_digest, b.content_digest) == (digest(good), digest(bad))
    assert g.bundle_dir != b.bundle_dir
    for entry, source in ((g, good), (b, bad)):
        assert entry.bundle_dir.name == good.name  # the checks compare the directory name with metadata.json
        assert entry.bundle_dir.parent.name == entry.content_digest.replace(":", "-")
        assert files(entry.bundle_dir) == files(source)


def test_a_damaged_cached_copy_is_not_reused(
    good_and_bad: tuple[Path, Path, str], registry: Registry, tmp_path: Path
) -> None:
    good, _, repo = good_and_bad
    cache = tmp_path / "cache"
    ref = parse_ref(registry.ref(f"{repo}:good"))
    with RegistryClient(ref) as client:
        first = pull_cached(client, ref, cache)
    manifest = first.bundle_dir / "MANIFEST.json"
    manifest.write_text(manifest.read_text().replace('"size"', '"size" ', 1))  # same content, other bytes
    with RegistryClient(ref) as client:
        second = pull_cached(client, ref, cache)
    assert not second.reused and second.bundle_dir == first.bundle_dir
    assert files(second.bundle_dir) == files(good)


def test_verify_of_bad_after_good_was_cached_verifies_bad(
    good_and_bad: tuple[Path, Path, str], registry: Registry, cli_env: dict[str, str]
) -> None:
    """The attack: good verified (and cached) first; bad, with good's EXP_HASH, used to be verified as the
    cached good copy and pass."""
    _good, bad, repo = good_and_bad
    passed = conv2d(
        "pack", "verify", registry.ref(f"{repo}:good"), "--target", "onnx", "--profile", "quick", env=cli_env
    )
    assert passed.returncode == 0, passed.stdout + passed.stderr
    failed = conv2d(
        "pack", "verify", registry.ref(f"{repo}:bad"), "--target", "onnx", "--profile", "quick", env=cli_env
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"content {digest(bad)} (pulled into the cache" in failed.stderr
    assert "parity" in failed.stdout + failed.stderr
