"""`export.reference.inputs`: a golden set drawn from real windows, stratified, hashed, and its coverage shown.

The "real" windows are the example model's own kind of data: ``windows()`` is the generator
``examples/train_example.py`` trains the shipped checkpoint on (four behaviours = sine patterns of a
frequency and amplitude per class on the 9 IMU channels of 2 sensors, plus noise; numpy only here), drawn
with another seed. The checkpoint tells the four classes apart on 99.8% of such windows, so a file of them
drives it to every class, where the seeded random normal windows reach 2 of 4 classes and 2 of 800 codes.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conv2d_bundle.bundle.digest import experiment_hash, recompute_exp_hash, sha256_file
from conv2d_bundle.config import load_config, load_reference_inputs
from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL, ROOT, conv2d, last_json

DEFAULT_HASH = "7bda82d7df9d"  # the example bundle's: a config without the option keeps it
LABELS = ("rest", "walk", "trot", "play")


def _synthetic_windows() -> Any:
    """examples/train_example.py's generator of synthetic behaviours (the data the example checkpoint learnt)."""
    spec = importlib.util.spec_from_file_location("train_example", ROOT / "examples" / "train_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.synthetic_windows


def windows(per_class: dict[int, int], seed: int = 1) -> np.ndarray:
    """float32 [N, 9, 2, 100] windows of examples/train_example.py's synthetic behaviours, ``per_class[c]`` of
    class ``c`` (in the order drawn)."""
    x, labels = _synthetic_windows()(4 * sum(per_class.values()), seed)
    x, labels = x.numpy(), labels.numpy()
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:k] for c, k in per_class.items()]))
    return x[keep].astype(np.float32)


def config_with(directory: Path, inputs: str, **reference: Any) -> Path:
    """The example config in ``directory``, its golden windows from ``inputs`` (relative to it)."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["export"]["reference"].update(inputs=inputs, **reference)
    path = directory / "dogs.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def create(config: Path, out: Path, formats: str = "onnx") -> Any:
    return conv2d(
        "pack", "create", "--config", str(config), "--model", str(EXAMPLE_MODEL),
        "--output-dir", str(out), "--formats", formats, "--json",
    )  # fmt: skip


def row_keys(array: np.ndarray) -> list[bytes]:
    return [np.ascontiguousarray(row).tobytes() for row in array]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, Any]:
    """A bundle (onnx + the Hailo kit) whose golden set comes from 300 windows, most of them "rest" (200 rest,
    40 walk, 30 trot, 30 play): (bundle, the file's windows, the create's process)."""
    base = tmp_path_factory.mktemp("real-inputs")
    data = windows({0: 200, 1: 40, 2: 30, 3: 30})
    np.save(base / "dog_windows.npy", data)
    p = create(config_with(base, "dog_windows.npy"), base / "out", formats="onnx,hailo")
    assert p.returncode == 0, p.stderr
    return Path(last_json(p.stdout)["bundle_dir"]), data, p


def test_the_golden_set_is_rows_of_the_file_stratified_over_predicted_classes(real: Any) -> None:
    bundle, data, p = real
    inputs = np.load(bundle / "reference" / "inputs.npy")
    meta = json.loads((bundle / "metadata.json").read_text())
    reference = meta["model"]["reference"]
    rows = reference["coverage"]["source"]["rows"]
    assert inputs.shape == (64, 9, 2, 100) and len(set(rows)) == 64
    np.testing.assert_array_equal(
        inputs, data[rows]
    )  # the recorded rows, and every golden row is in the file
    assert set(row_keys(inputs)) <= set(row_keys(data))
    predicted = np.load(bundle / "reference" / "outputs.npz")["confidence"].argmax(axis=1)
    assert sorted(np.bincount(predicted, minlength=4).tolist()) == [16, 16, 16, 16]  # the file is 67% rest
    assert sorted(predicted[:4].tolist()) == [0, 1, 2, 3]  # round-robin: the first rows see every class
    assert "degenerate" not in p.stderr


def test_coverage_is_recorded_and_in_the_seal_time_reports(real: Any) -> None:
    bundle, _, _ = real
    meta = json.loads((bundle / "metadata.json").read_text())
    cov = meta["model"]["reference"]["coverage"]
    digest = sha256_file(bundle.parent.parent / "dog_windows.npy")
    assert {k: v for k, v in cov["source"].items() if k != "rows"} == {
        "kind": "file",
        "file": "dog_windows.npy",
        "path": "dog_windows.npy",
        "sha256": digest,
        "windows": 300,
    }
    assert cov["windows"] == 64
    assert cov["classes"]["confidence"] == {
        "distinct": 4,
        "of": 4,
        "largest_share": 0.25,
        "counts": dict.fromkeys(LABELS, 16),
    }
    codes = cov["codes"]["behavioral_codes"]
    assert codes["of"] == 800 and codes["distinct"] >= 4 and codes["largest_share"] < 0.9
    assert cov["degenerate"] == []
    inputs = np.load(bundle / "reference" / "inputs.npy").astype(np.float64)
    assert cov["input"] == pytest.approx(
        {"mean": inputs.mean(), "std": inputs.std(), "min": inputs.min(), "max": inputs.max()},
        rel=1e-5,
        abs=1e-6,
    )
    # every report the create's own checks wrote (those of the built formats) carries it; no warning here
    for target in ("general", "onnx"):
        report = json.loads((bundle / "validation" / f"{target}_validation.json").read_text())
        assert report["golden_coverage"] == cov, target
        assert not [w for w in report["warnings"] if "golden set" in w], target
    general = json.loads((bundle / "validation" / "general_validation.json").read_text())
    assert "test_general.py::test_exp_hash_recomputes" in general["checks_run"] and general["passed"]
    assert "## Golden set\n64 windows, from `dog_windows.npy`" in (bundle / "docs" / "README.md").read_text()


def test_the_hash_covers_the_file_and_recomputes_from_the_bundle(real: Any, tmp_path: Path) -> None:
    bundle, data, _ = real
    meta = json.loads((bundle / "metadata.json").read_text())
    file_digest = sha256_file(bundle.parent.parent / "dog_windows.npy")
    assert meta["model"]["reference"]["inputs_sha256"] == file_digest
    exp_hash = bundle.name
    assert exp_hash != DEFAULT_HASH and recompute_exp_hash(bundle) == exp_hash == meta["exp_hash"]
    assert experiment_hash(load_config(EXAMPLE_CONFIG).data, sha256_file(EXAMPLE_MODEL)) == DEFAULT_HASH
    # the hash create computes, from the config and the file's bytes: one value of the file changed, another
    changed = data.copy()
    changed[123, 4, 1, 50] += 0.5
    np.save(tmp_path / "dog_windows.npy", changed)
    config = load_config(config_with(tmp_path, "dog_windows.npy"))
    ref = load_reference_inputs(config)
    assert ref is not None and ref.sha256 == sha256_file(tmp_path / "dog_windows.npy") != file_digest
    weights = sha256_file(EXAMPLE_MODEL)
    assert experiment_hash(config.data, weights, file_digest) == exp_hash  # the same config text
    assert experiment_hash(config.data, weights, ref.sha256) != exp_hash


def test_the_hailo_calibration_set_defaults_to_the_same_windows(real: Any) -> None:
    bundle, data, p = real
    calib = np.load(bundle / "models" / "hailo" / "calib_set.npy")
    assert calib.shape == (256, 2, 100, 9)  # calibration_size (256) of the file's 300 windows, seeded
    nchw = np.ascontiguousarray(calib.transpose(0, 3, 1, 2))
    assert set(row_keys(nchw)) <= set(row_keys(data))
    info = json.loads((bundle / "metadata.json").read_text())["formats"]["hailo"]["calibration"]
    assert info["source"] == "reference.inputs" and info["synthetic"] == 0 and info["windows"] == 256
    assert info["description"] == "256 of the 300 windows of export.reference.inputs (dog_windows.npy)"
    assert "Hailo calibration set" not in p.stderr  # real windows: nothing to warn about


def test_a_degenerate_npz_file_warns_at_create_and_in_every_report(tmp_path: Path) -> None:
    """A .npz with the input's name (and labels beside it) of "rest" windows only: the model predicts one
    class, so agreement proves little, and create, the reports and `verify` say so."""
    rest = windows({0: 80}, seed=5)
    np.savez(tmp_path / "rest.npz", imu_input=rest, labels=np.zeros(len(rest), np.int64))
    p = create(config_with(tmp_path, "rest.npz"), tmp_path / "out")
    assert p.returncode == 0, p.stderr
    bundle = Path(last_json(p.stdout)["bundle_dir"])
    cov = json.loads((bundle / "metadata.json").read_text())["model"]["reference"]["coverage"]
    assert cov["source"]["array"] == "imu_input" and cov["source"]["windows"] == 80
    assert cov["classes"]["confidence"]["counts"] == {"rest": 64}
    assert "confidence: class rest is 64 of 64 windows (100%)" in cov["degenerate"]
    warned = [line for line in p.stderr.splitlines() if "golden set coverage is degenerate" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: golden set coverage is degenerate (64 windows")
    assert "rest.npz" in warned[0]
    v = conv2d("pack", "verify", bundle.name, "--output-dir", str(bundle.parent), "--target", "onnx")
    assert v.returncode == 0, v.stdout + v.stderr
    assert "WARNING golden set coverage is degenerate (64 windows from rest.npz)" in v.stdout
    for target in ("general", "onnx"):
        report = json.loads((bundle / "validation" / f"{target}_validation.json").read_text())
        assert report["golden_coverage"] == cov
        assert report["warnings"][0] == warned[0].removeprefix("warning: ")


def _bad(tmp_path: Path, name: str, content: Any) -> None:
    path = tmp_path / name
    if isinstance(content, dict):
        np.savez(path, **content)
    elif content is not None:
        np.save(path, content)


GOOD = windows({0: 20, 1: 20, 2: 20, 3: 20}, seed=2)
NAN = GOOD.copy()
NAN[5, 0, 0, 0] = np.nan


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("missing.npy", None, "missing.npy: file not found"),
        ("windows.csv", None, "export.reference.inputs: expected the path of a .npy or .npz file"),
        ("two.npz", {"a": GOOD, "b": GOOD}, "holds arrays ['a', 'b'], none named 'imu_input'"),
        ("nhwc.npy", GOOD.transpose(0, 2, 3, 1), "shape [80, 2, 100, 9], expected [N, 9, 2, 100]"),
        ("ints.npy", GOOD.astype(np.int32), "dtype int32, expected floating point windows"),
        ("nan.npy", NAN, "NaN or infinite values in 1 window(s) (the first: row 5)"),
        ("few.npy", GOOD[:40], "40 windows, fewer than export.reference.num_samples (64)"),
    ],
)
def test_bad_inputs_exit_2_one_line_nothing_left(tmp_path: Path, name: str, content: Any, words: str) -> None:
    _bad(tmp_path, name, content)
    out = tmp_path / "out"
    p = create(config_with(tmp_path, name), out)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2 and len(lines) == 1 and words in lines[0], p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert not out.exists() or not [q for q in out.iterdir() if q.name != ".conv2d"]


def test_the_example_bundle_coverage_is_degenerate_by_its_codes(example_bundle: Path) -> None:
    """The seeded random normal windows: classes trot x57, play x7 (89%, under the line), codes 500 x61 and
    501 x3: a device answering code 500 for everything agrees on 95% of them."""
    assert example_bundle.name == DEFAULT_HASH
    cov = json.loads((example_bundle / "metadata.json").read_text())["model"]["reference"]["coverage"]
    assert cov["source"] == {"kind": "random", "description": "random normal, seed 0"}
    assert cov["classes"]["confidence"] == {
        "distinct": 2,
        "of": 4,
        "largest_share": 0.8906,
        "counts": {"trot": 57, "play": 7},
    }
    assert cov["codes"]["behavioral_codes"] == {
        "distinct": 2,
        "of": 800,
        "largest_share": 0.9531,
        "most_common": 500,
    }
    assert cov["degenerate"] == [
        "behavioral_codes: code 500 is 61 of 64 windows (95%): a constant answer would agree as often"
    ]
    assert (
        "inputs_sha256"
        not in json.loads((example_bundle / "metadata.json").read_text())["model"]["reference"]
    )
