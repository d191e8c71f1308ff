"""The issue's done-when, as a user types it: create, push, pull elsewhere, verify --attest, show the evidence,
and --require-evidence failing while a target lacks evidence and passing once it has it. Also
``pytest checks --bundle oci://...`` through the pull cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conv2d_bundle.bundle.manifest import BundleManifest
from tests.conftest import checks_subprocess, conv2d
from tests.oci.conftest import Registry, free_port


def test_create_push_pull_verify_attest_show_require(
    example_bundle: Path, registry: Registry, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ref = registry.ref("roundtrip/dogs:v1")
    pushed = conv2d(
        "pack", "push", str(example_bundle), ref, env=cli_env
    )  # example_bundle: `create`'s output
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.strip()
    by_digest = registry.ref(f"roundtrip/dogs@{digest}")

    pulled = conv2d("pack", "pull", by_digest, "--output-dir", str(tmp_path / "elsewhere"), env=cli_env)
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "elsewhere" / example_bundle.name / "MANIFEST.json").is_file()

    before = conv2d("pack", "verify", ref, "--require-evidence", "onnx", env=cli_env)
    assert before.returncode == 1, before.stdout + before.stderr
    assert "--require-evidence onnx: MISSING (no evidence attached)" in before.stdout

    summary = tmp_path / "step_summary.md"  # as GitHub Actions sets it: verify appends its verdict there
    verified = conv2d(
        "pack", "verify", ref, "--target", "onnx,ios", "--profile", "quick", "--attest",
        env={**cli_env, "GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.count(f"attached to {digest}") == 2
    assert (
        "| onnx | ✅ passed |" in summary.read_text()
        and "| ios | ✅ not verified (6 skipped) |" in summary.read_text()
    )

    shown = conv2d("pack", "show", ref, "--json", env=cli_env)
    assert shown.returncode == 0, shown.stderr
    evidence = json.loads(shown.stdout)["evidence"]
    assert sorted(evidence) == ["ios", "onnx"]
    assert evidence["onnx"][0]["verdict"] == "passed" and evidence["onnx"][0]["skipped"] == []
    assert evidence["ios"][0]["skipped"]  # Core ML parity cannot run on Linux
    table = conv2d("pack", "show", ref, env=cli_env)
    assert "onnx" in table.stdout and "ios" in table.stdout and "not verified (6 skipped)" in table.stdout

    unsigned = conv2d("pack", "verify", by_digest, "--require-evidence", "onnx", env=cli_env)
    assert unsigned.returncode == 1  # no key vouches for it: not enough for a gate by default
    assert "unsigned (give --trusted-key, or --allow-unsigned" in unsigned.stdout
    after = conv2d(
        "pack", "verify", by_digest, "--require-evidence", "onnx", "--allow-unsigned", env=cli_env
    )  # fmt: skip
    assert after.returncode == 0, after.stdout + after.stderr
    assert "(--allow-unsigned)" in after.stdout  # and it says which evidence was unsigned
    ios = conv2d(
        "pack", "verify", by_digest, "--require-evidence", "onnx,ios", "--allow-unsigned", env=cli_env
    )  # fmt: skip
    assert ios.returncode == 1  # a report from a host that skipped the iOS parity is no evidence for it
    assert "--require-evidence ios: MISSING" in ios.stdout and "skipped" in ios.stdout


def test_pytest_checks_take_an_oci_bundle_and_reuse_the_cache(
    example_bundle: Path, registry: Registry, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ref = registry.ref("roundtrip/checks:v1")
    digest = conv2d("pack", "push", str(example_bundle), ref, env=cli_env).stdout.strip()
    run = checks_subprocess("--bundle", ref, "--target", "general", "--check-profile", "quick", env=cli_env)
    assert run.returncode == 0, run.stdout + run.stderr
    content = BundleManifest.load(example_bundle).content_digest  # the cache is keyed by content
    cached = Path(cli_env["CONV2D_CACHE"]) / "bundles" / content.replace(":", "-") / example_bundle.name
    assert json.loads((cached / "validation" / "general_validation.json").read_text())["verdict"] == "passed"
    # a digest reference already in the cache needs no registry at all: this host:port answers nothing
    dead = f"oci://127.0.0.1:{free_port()}/roundtrip/checks@{digest}"
    shutil.rmtree(cached / "validation")
    again = checks_subprocess(
        "--bundle", dead, "--target", "general", "--check-profile", "quick", env=cli_env
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert (cached / "validation" / "general_validation.json").is_file()


def test_deploy_from_a_registry(
    example_bundle: Path, registry: Registry, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ref = registry.ref("roundtrip/deploy:v1")
    assert conv2d("pack", "push", str(example_bundle), ref, env=cli_env).returncode == 0
    dest = tmp_path / "device"
    deployed = conv2d(
        "pack", "deploy", "--from", ref, "--to", str(dest), "--target", "general", "--profile", "quick", env=cli_env
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert (dest / example_bundle.name / "MANIFEST.json").read_bytes() == (
        example_bundle / "MANIFEST.json"
    ).read_bytes()
    both = conv2d("pack", "deploy", "3f9a", "--from", ref, "--to", str(dest), env=cli_env)
    assert both.returncode == 2 and "one of them" in both.stderr
