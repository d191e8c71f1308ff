"""`conv2d pack create` / `list`: content addressing, idempotence, reproducibility, clean failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from conv2d_bundle.bundle.digest import is_exp_hash, sha256_file
from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.bundle.store import get_bundle, list_bundles
from conv2d_bundle.cli import main
from conv2d_bundle.config import load_config
from conv2d_bundle.errors import AmbiguousBundleError, BundleNotFoundError
from conv2d_bundle.lifecycle.show import validation_status
from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL, ROOT, conv2d, create_args, last_json


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def visible(out: Path) -> list[str]:
    """What is in an artifacts dir besides its bookkeeping (.conv2d/: locks, pins)."""
    return sorted(p.name for p in out.iterdir() if p.name != ".conv2d")


def test_create_json_then_idempotent_then_force(tmp_path: Path) -> None:
    code, out, _ = invoke(*create_args(tmp_path, "--json"))
    assert code == 0, out
    info = json.loads(out)
    assert is_exp_hash(info["exp_hash"]) and Path(info["bundle_dir"]).is_absolute()
    assert info["formats"]["onnx"] == "built" and info["already_existed"] is False
    bundle_dir = Path(info["bundle_dir"])
    assert oct(bundle_dir.stat().st_mode & 0o777) == "0o755"
    created_at = json.loads((bundle_dir / "metadata.json").read_text())["created_at"]
    assert info["content_digest"] == BundleManifest.load(bundle_dir).content_digest
    assert info["replaced_content_digest"] is None

    code, out, _ = invoke(*create_args(tmp_path))
    assert code == 0 and "already exists" in out and info["exp_hash"] in out

    code, out, _ = invoke(*create_args(tmp_path, "--force", "--json"))
    assert code == 0 and json.loads(out)["exp_hash"] == info["exp_hash"]
    assert json.loads((bundle_dir / "metadata.json").read_text())["created_at"] != created_at
    assert visible(tmp_path) == [info["exp_hash"]]  # no staging left over
    # the content digest names the bytes: a rebuild records another created_at, so it is other content
    rebuilt = json.loads(out)
    assert (
        rebuilt["content_digest"] == BundleManifest.load(bundle_dir).content_digest != info["content_digest"]
    )
    assert rebuilt["replaced_content_digest"] == info["content_digest"]


def test_force_rebuild_after_a_toolchain_change_says_the_content_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same config and weights, so the same EXP_HASH; an upgraded exporter writes other model bytes. A plain
    create finds the bundle (and rebuilds nothing); --force replaces it and names both content digests."""
    from conv2d_bundle.targets.onnx import export as onnx_export

    code, out, _ = invoke(*create_args(tmp_path, "--json"))
    assert code == 0, out
    before = json.loads(out)["content_digest"]
    original = onnx_export.export_onnx

    def upgraded(*args: Any, metadata: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return original(*args, metadata={**(metadata or {}), "toolchain": "upgraded"}, **kwargs)

    monkeypatch.setattr(onnx_export, "export_onnx", upgraded)
    code, out, _ = invoke(*create_args(tmp_path))
    assert code == 0 and "already exists" in out and "content changed" not in out
    code, out, err = invoke(*create_args(tmp_path, "--force"))
    assert code == 0, err
    bundle_dir = tmp_path / json.loads(invoke(*create_args(tmp_path, "--json"))[1])["exp_hash"]
    after = BundleManifest.load(bundle_dir).content_digest
    lines = out.splitlines()
    assert lines[:3] == [f"Bundle created: {bundle_dir.name}", f"  Path: {bundle_dir}", f"  Content: {after}"]
    # models first; metadata.json (created_at) always; COMMIT_SHA and docs/README.md too if a commit landed
    assert lines[3].startswith(f"  content changed: {before} -> {after} (models/model.onnx, ")
    assert "metadata.json" in lines[3]


def test_two_fresh_processes_give_identical_bundles(tmp_path: Path) -> None:
    """Same inputs in two fresh processes give the same bytes, except what records when and from where:
    ``created_at`` (metadata.json) and the commit (COMMIT_SHA, ``commit_sha`` in metadata.json, the line of
    docs/README.md naming it), which is HEAD of the working directory's repository and changes whenever a
    commit lands between two creates. One lands here on purpose, so the test holds whatever the repository does.
    """
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=repo, check=True, capture_output=True,
        )  # fmt: skip

    git("init", "-q")
    infos = []
    for run in ("a", "b"):
        git("commit", "-q", "--allow-empty", "-m", f"before create {run}")
        p = conv2d(*create_args(tmp_path / run, "--json"), cwd=repo)
        assert p.returncode == 0, p.stderr
        infos.append(last_json(p.stdout))
    assert infos[0]["exp_hash"] == infos[1]["exp_hash"]
    a, b = (Path(i["bundle_dir"]) for i in infos)
    commit = {d: (d / "COMMIT_SHA").read_text().strip() for d in (a, b)}
    assert commit[a] != commit[b]

    def comparable(bundle: Path, rel: str) -> object:
        data = (bundle / rel).read_bytes().replace(commit[bundle].encode(), b"<commit>")
        if rel != "metadata.json":
            return data
        meta = json.loads(data)
        meta.pop("created_at")
        return meta

    files = sorted(json.loads((a / "MANIFEST.json").read_text())["files"])
    assert files == sorted(json.loads((b / "MANIFEST.json").read_text())["files"])
    assert {"models/model.onnx", "reference/outputs.npz", "config.yaml", "docs/README.md"} <= set(files)
    for rel in files:
        assert comparable(a, rel) == comparable(b, rel), rel


# The device install (`pip install conv2d-bundle`, no extras): importing torch fails as it does there.
WITHOUT_TORCH = """\
import sys


class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NoTorch())
sys.argv = ["conv2d", *sys.argv[1:]]
from conv2d_bundle.cli import main

main()
"""


def test_create_without_torch_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, *create_args(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2, p.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert "conv2d-bundle[torch]" in lines[0]
    assert not out.exists()


def test_bundle_contents(tmp_path: Path) -> None:
    from conv2d_bundle.bundle.digest import experiment_hash
    from conv2d_bundle.lifecycle.create import ArtifactBundler

    bundle = ArtifactBundler(tmp_path).create_bundle(EXAMPLE_CONFIG, EXAMPLE_MODEL, formats="onnx")
    meta = bundle.metadata
    assert meta["schema_version"] == 1 and meta["exp_name"] == "dogs_v1"
    assert meta["model"]["weights_sha256"] == sha256_file(EXAMPLE_MODEL)
    assert experiment_hash(bundle.config.data, meta["model"]["weights_sha256"]) == bundle.exp_hash
    assert (
        meta["formats"]["onnx"]["opset_version"] == 13
        and meta["formats"]["onnx"]["exporter"] == "torchscript"
    )
    assert meta["validation"] == {}  # the seal-time outcome is in the reports, bound to these bytes
    shown = validation_status(bundle)
    assert shown["general"]["status"] == shown["onnx"]["status"] == "passed"
    assert shown["onnx"]["content_digest"] == bundle.content_digest
    assert bundle.get_available_formats() == ["onnx"]
    assert json.loads((bundle.bundle_dir / "label_map.json").read_text()) == {
        "0": "rest",
        "1": "walk",
        "2": "trot",
        "3": "play",
    }
    assert (bundle.bundle_dir / "COMMIT_SHA").read_text().strip()
    inputs = np.load(bundle.bundle_dir / "reference/inputs.npy")
    assert inputs.shape == (64, 9, 2, 100) and inputs.dtype == np.float32
    readme = (bundle.bundle_dir / "docs/README.md").read_text()
    assert bundle.exp_hash in readme and "imu_input" in readme and meta["created_at"] not in readme


def test_retrained_weights_same_config_get_their_own_bundle(tmp_path: Path, example_bundle: Path) -> None:
    """A checkpoint with one weight nudged, same config and name: a new EXP_HASH, so a new bundle. Guards
    against a hash that ignores the weights, which would file the new model under the example's hash."""
    import torch

    from conv2d_bundle.lifecycle.create import ArtifactBundler

    state = torch.load(EXAMPLE_MODEL, map_location="cpu", weights_only=True)
    state["classifier.2.bias"][0] += 1e-3
    checkpoint = tmp_path / "retrained.pt"
    torch.save(state, checkpoint)
    bundle = ArtifactBundler(tmp_path / "artifacts").create_bundle(
        EXAMPLE_CONFIG, checkpoint, exp_name="dogs_v1", formats="onnx"
    )
    assert bundle.metadata["model"]["weights_sha256"] == sha256_file(checkpoint) != sha256_file(EXAMPLE_MODEL)
    assert bundle.config.data == load_config(EXAMPLE_CONFIG).data  # the same config ...
    assert bundle.exp_hash != example_bundle.name  # ... and yet another bundle
    assert bundle.bundle_dir.name == bundle.exp_hash


def test_independent_onnxruntime_reproduces_golden_outputs(tmp_path: Path) -> None:
    import onnxruntime as ort

    from conv2d_bundle.lifecycle.create import ArtifactBundler

    b = ArtifactBundler(tmp_path).create_bundle(EXAMPLE_CONFIG, EXAMPLE_MODEL, formats="onnx").bundle_dir
    sess = ort.InferenceSession(str(b / "models/model.onnx"), providers=["CPUExecutionProvider"])
    codes, conf = sess.run(None, {"imu_input": np.load(b / "reference/inputs.npy")})
    ref = np.load(b / "reference/outputs.npz")
    np.testing.assert_array_equal(codes, ref["behavioral_codes"])
    np.testing.assert_allclose(conf, ref["confidence"], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ("model: [unclosed\n", "invalid YAML"),
        ("model: {architecture: resnet}\nlabels: [a]\n", "unknown architecture"),
        (
            "model: {architecture: conv2d_fsq, input_shape: [1, 9, 2]}\nlabels: [a, b, c, d]\n",
            "expected 4 integers",
        ),
    ],
)
def test_bad_config_exit_2_one_line_nothing_written(tmp_path: Path, edit: str, words: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(edit)
    p = conv2d(
        "pack",
        "create",
        "--config",
        str(cfg),
        "--model",
        str(EXAMPLE_MODEL),
        "--output-dir",
        str(tmp_path / "out"),
    )
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2 and len(lines) == 1 and words in lines[0] and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()


def test_bad_checkpoint_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    code, _, err = invoke(
        "pack",
        "create",
        "--config",
        str(EXAMPLE_CONFIG),
        "--model",
        str(bad),
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert code == 2 and "bad.pt" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["../escape", "a/b", ""])
def test_bad_names_refused(tmp_path: Path, name: str) -> None:
    code, _, err = invoke(*create_args(tmp_path / "out", "--name", name))
    assert code == 2 and "--name" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_failed_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conv2d_bundle import targets
    from conv2d_bundle.errors import ExportError
    from conv2d_bundle.lifecycle import create as bundler

    def boom(ctx: object) -> None:
        raise ExportError("simulated converter crash")

    monkeypatch.setattr(targets.get_target("onnx"), "export", boom)
    with pytest.raises(ExportError, match="simulated"):
        bundler.ArtifactBundler(tmp_path).create_bundle(EXAMPLE_CONFIG, EXAMPLE_MODEL, formats="onnx")
    assert visible(tmp_path) == []


def test_killed_create_leaves_nothing_that_looks_like_a_bundle(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "conv2d_bundle.cli", *create_args(out)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.exists() and any(out.glob(".tmp-*/reference/*"))):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any(out.glob(".tmp-*")), "the kill came too late to test anything"
    assert list_bundles(out) == []
    assert not [p for p in out.iterdir() if is_exp_hash(p.name)]
    code, _, _ = invoke(*create_args(out))
    assert code == 0 and len(list_bundles(out)) == 1


def test_user_model_by_target(tmp_path: Path) -> None:
    import torch

    from conv2d_bundle.lifecycle.create import ArtifactBundler
    from tests.usermodels.tiny import TinyNet

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    torch.save(TinyNet().state_dict(), ckpt)
    config = {
        "model": {
            "target": "tests.usermodels.tiny:TinyNet",
            "kwargs": {"n_classes": 3},
            "input_name": "window",
            "input_shape": [1, 3, 1, 20],
            "outputs": [
                {"name": "class_probs", "dtype": "float32", "kind": "probabilities"},
                {"name": "embedding", "dtype": "float32"},
            ],
        },
        "labels": ["low", "mid", "high"],
    }
    bundle = ArtifactBundler(tmp_path / "out").create_bundle(config, ckpt, formats="onnx", exp_name="tiny")
    meta = bundle.metadata
    assert meta["model"]["input_shape"] == [1, 3, 1, 20] and meta["model"]["architecture"].endswith("TinyNet")
    assert validation_status(bundle)["onnx"]["status"] == "passed"
    import onnx

    m = onnx.load(str(bundle.bundle_dir / "models/model.onnx"))
    assert [i.name for i in m.graph.input] == ["window"]
    assert [o.name for o in m.graph.output] == ["class_probs", "embedding"]


def test_lookup_by_prefix(tmp_path: Path) -> None:
    for h in ("abcd11111111", "abcd22222222"):
        (tmp_path / h).mkdir()
        (tmp_path / h / "metadata.json").write_text(
            json.dumps({"exp_hash": h, "created_at": h, "formats": {}})
        )
    (tmp_path / ".tmp-abcd33333333-x").mkdir()
    assert get_bundle(tmp_path, "abcd1").exp_hash == "abcd11111111"
    with pytest.raises(AmbiguousBundleError, match="abcd11111111, abcd22222222"):
        get_bundle(tmp_path, "abcd")
    with pytest.raises(BundleNotFoundError, match="no bundle matches"):
        get_bundle(tmp_path, "ffff")
    with pytest.raises(BundleNotFoundError, match="at least 4"):
        get_bundle(tmp_path, "abc")
    assert [b.exp_hash for b in list_bundles(tmp_path)] == ["abcd22222222", "abcd11111111"]
    code, out, _ = invoke("pack", "list", "--output-dir", str(tmp_path), "--json")
    assert code == 0 and [r["exp_hash"] for r in json.loads(out)] == ["abcd22222222", "abcd11111111"]


def test_list_shows_the_bundles_list_bundles_finds_in_its_order(tmp_path: Path) -> None:
    """``list`` keeps only hash and name of each bundle (list_summaries), yet skips what list_bundles skips."""
    from conv2d_bundle.bundle.store import list_summaries

    metas = {
        "abcd11111111": {"exp_name": "one", "created_at": "2026-01-02"},
        "abcd22222222": {"exp_name": "two", "created_at": "2026-01-03"},
        "abcd33333333": {"exp_name": "same time", "created_at": "2026-01-02"},
        "abcd44444444": {"created_at": 5},  # wrong type: not a bundle
        "abcd55555555": {"exp_hash": "abcd11111111", "created_at": "2026-01-09"},  # names another hash
    }
    for h, meta in metas.items():
        (tmp_path / h).mkdir()
        (tmp_path / h / "metadata.json").write_text(json.dumps({"exp_hash": h, "formats": {}, **meta}))
    (tmp_path / "abcd66666666").mkdir()  # no metadata.json
    full = [(b.exp_hash, b.exp_name, str(b.bundle_dir)) for b in list_bundles(tmp_path)]
    assert [h for h, _, _ in full] == ["abcd22222222", "abcd33333333", "abcd11111111"]
    assert [(s.exp_hash, s.exp_name, s.bundle_dir) for s in list_summaries(tmp_path)] == full
    code, out, _ = invoke("pack", "list", "--output-dir", str(tmp_path))
    assert code == 0
    assert out.splitlines() == [
        f"Found 3 bundles in {tmp_path}:",
        "  abcd22222222  two",
        "  abcd33333333  same time",
        "  abcd11111111  one",
    ]


def test_list_verbose_and_env_artifacts(tmp_path: Path, example_bundle: Path) -> None:
    env = {**os.environ, "CONV2D_ARTIFACTS": str(example_bundle.parent)}
    p = conv2d("pack", "list", "--verbose", env=env)
    assert p.returncode == 0 and example_bundle.name in p.stdout and "Formats: " in p.stdout


@pytest.mark.parametrize("as_json", [[], ["--json"]], ids=["text", "json"])
@pytest.mark.parametrize(
    ("how", "source"),
    [
        ("option", "from --output-dir"),
        ("env", "from CONV2D_ARTIFACTS"),
        ("default", "the default"),
    ],
)
def test_list_of_a_missing_directory_says_which_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, source: str, as_json: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONV2D_ARTIFACTS", raising=False)
    missing = tmp_path / "artifacts"  # also where the default points, from this working directory
    args = ["pack", "list", *as_json]
    env = {}
    if how == "option":
        args += ["--output-dir", str(missing)]
    elif how == "env":
        env["CONV2D_ARTIFACTS"] = str(missing)
    r = CliRunner().invoke(main, args, env=env)
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert f"{missing} does not exist" in lines[0] and source in lines[0]


def test_config_yaml_in_bundle_round_trips(example_bundle: Path) -> None:
    data = yaml.safe_load((example_bundle / "config.yaml").read_text())
    assert data["model"]["architecture"] == "conv2d_fsq" and data["labels"] == [
        "rest",
        "walk",
        "trot",
        "play",
    ]


def test_a_failing_optional_format_is_recorded_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conv2d_bundle import targets
    from conv2d_bundle.errors import BundleWarning, ExportError
    from conv2d_bundle.lifecycle import create as bundler

    def broken(ctx: object) -> None:
        raise ExportError("simulated converter bug")

    monkeypatch.setattr(targets.get_target("hailo"), "export", broken)
    monkeypatch.setattr(bundler, "available_formats", lambda: ["onnx", "hailo"])
    with pytest.warns(BundleWarning, match="hailo export failed"):
        bundle = bundler.ArtifactBundler(tmp_path / "a").create_bundle(EXAMPLE_CONFIG, EXAMPLE_MODEL)
    assert bundle.metadata["formats"]["hailo"] == {"status": "failed", "reason": "simulated converter bug"}
    assert validation_status(bundle)["general"]["status"] == "passed"
    with pytest.raises(ExportError, match="simulated"):  # asked for by name: the create fails
        bundler.ArtifactBundler(tmp_path / "b").create_bundle(
            EXAMPLE_CONFIG, EXAMPLE_MODEL, formats="onnx,hailo"
        )


def test_a_ctrl_c_once_the_bundle_is_placed_does_not_cut_the_summary_short() -> None:
    """Before: Ctrl-C in create's last second printed "Bundle created" and exited 130, as if it had failed."""
    import os
    import signal

    from conv2d_bundle.cli.create import _sigint_ignored

    before = signal.getsignal(signal.SIGINT)
    with _sigint_ignored():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)  # ignored: no KeyboardInterrupt here
    assert signal.getsignal(signal.SIGINT) is before
