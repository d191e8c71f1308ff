"""The general checks (``conv2d_bundle/checks/test_general.py``) called directly: each passes on the example
bundle and fails, naming the file and the property at fault, on each breakage it exists to catch."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.checks import test_general as general
from tests.unit.checks import fails, passes, skips

HASH = "7bda82d7df9d"
ONNX = "models/model.onnx"
PACKAGE = "models/coreml.mlpackage"


def files_bundle(tmp_path: Path, **files: str) -> SimpleNamespace:
    """A bundle of the given files only (name -> text), with the ``path`` and ``bundle_dir`` of a Bundle."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return SimpleNamespace(bundle_dir=tmp_path, path=lambda rel: tmp_path / rel)


# -- MANIFEST, metadata, EXP_HASH -------------------------------------------------------------------
def test_manifest_verifies_the_directory(example: Bundle, bundle_copy: Path) -> None:
    general.test_manifest_verifies(example, example.manifest)
    (bundle_copy / "models" / "notes.txt").write_text("added\n")
    (bundle_copy / "VERSION").write_text("9.9.9\n")
    copy = Bundle(bundle_copy)
    assert fails(general.test_manifest_verifies, copy, copy.manifest) == (
        "MANIFEST.json does not match the files: changed: VERSION; extra (not in manifest): models/notes.txt"
    )


def test_metadata_schema(metadata: dict[str, Any]) -> None:
    general.test_metadata_schema(metadata)
    del metadata["created_by"], metadata["validation"]
    assert fails(general.test_metadata_schema, metadata) == "metadata.json lacks ['created_by', 'validation']"
    metadata.update(created_by="me", validation={}, schema_version=2)
    assert fails(general.test_metadata_schema, metadata) == (
        "metadata.json schema_version 2 (this reader knows 1)"
    )


def test_exp_hash_matches_directory(metadata: dict[str, Any]) -> None:
    session = SimpleNamespace(expect_hash=HASH)
    general.test_exp_hash_matches_directory(metadata, session)
    other = SimpleNamespace(expect_hash="0123456789ab")
    assert fails(general.test_exp_hash_matches_directory, metadata, other) == (
        f"metadata.json exp_hash {HASH} != directory name 0123456789ab"
    )
    for bad in ("7BDA82D7DF9D", HASH[:11], HASH + "0"):
        assert fails(general.test_exp_hash_matches_directory, {"exp_hash": bad}, session) == (
            f"metadata.json exp_hash {bad!r} is not 12 hex digits"
        )
    assert fails(general.test_exp_hash_matches_directory, {}, session) == (
        "metadata.json exp_hash None is not 12 hex digits"
    )


def test_exp_hash_recomputes(example: Bundle, metadata: dict[str, Any], bundle_copy: Path) -> None:
    general.test_exp_hash_recomputes(example, metadata)
    metadata["exp_hash"] = "0123456789ab"
    assert fails(general.test_exp_hash_recomputes, example, metadata) == (
        f"config.yaml + weights_sha256 give {HASH}, metadata.json says 0123456789ab"
    )
    del metadata["exp_hash"]
    assert fails(general.test_exp_hash_recomputes, example, metadata) == (
        f"config.yaml + weights_sha256 give {HASH}, metadata.json says None"
    )
    meta = json.loads((bundle_copy / "metadata.json").read_text())
    del meta["model"]["weights_sha256"]
    (bundle_copy / "metadata.json").write_text(json.dumps(meta))
    assert fails(general.test_exp_hash_recomputes, Bundle(bundle_copy), meta) == (
        "metadata.json model.weights_sha256 is missing: the hash cannot be recomputed"
    )


# -- formats ----------------------------------------------------------------------------------------
def test_built_formats_on_disk_passes_with_file_and_package_sizes(
    example: Bundle, metadata: dict[str, Any]
) -> None:
    """The example's onnx (a file) and coreml (a package: the sum of its files) sizes agree with MANIFEST."""
    assert metadata["formats"]["coreml"]["size_bytes"] == sum(
        e["size"] for f, e in example.manifest.files.items() if f.startswith(PACKAGE + "/")
    )
    general.test_built_formats_on_disk(example, metadata, example.manifest)
    del metadata["formats"]["onnx"]["size_bytes"]  # a size is compared only where metadata gives one
    general.test_built_formats_on_disk(example, metadata, example.manifest)


def test_built_formats_accepts_every_known_status_with_a_reason(
    example: Bundle, metadata: dict[str, Any]
) -> None:
    formats = metadata["formats"]
    formats.update(
        tflite={"status": "skipped", "reason": "not asked for"},
        rknn={"status": "failed", "reason": "converter crashed"},
    )
    assert formats["hailo"]["status"] == "kit" and formats["hailo"]["reason"]
    general.test_built_formats_on_disk(example, metadata, example.manifest)


def test_built_formats_needs_one_built_format(example: Bundle, metadata: dict[str, Any]) -> None:
    message = "metadata.json lists no built format"
    formats = metadata["formats"]
    for name in ("onnx", "coreml"):
        formats[name] = {"status": "skipped", "reason": "not asked for"}
    assert fails(general.test_built_formats_on_disk, example, metadata, example.manifest) == message
    assert fails(general.test_built_formats_on_disk, example, {"formats": {}}, example.manifest) == message
    assert fails(general.test_built_formats_on_disk, example, {}, example.manifest) == message


def test_built_formats_names_each_disagreement(example: Bundle, metadata: dict[str, Any]) -> None:
    formats = metadata["formats"]
    formats["coreml"] = {"status": "built", "file": "models/gone.mlpackage"}
    formats["onnx"]["size_bytes"] = 10
    formats["hailo"] = {"status": "kit"}
    formats["tflite"] = {"status": "weird"}
    formats["zzz"] = {"status": "built"}
    assert fails(general.test_built_formats_on_disk, example, metadata, example.manifest) == (
        "formats in metadata.json disagree with the files: "
        "coreml: models/gone.mlpackage is absent; "
        f"onnx: {ONNX} is {example.manifest.files[ONNX]['size']} bytes, metadata.json says 10; "
        "zzz: (no file) is absent; "
        "hailo: status kit without a reason; "
        "tflite: status 'weird' unknown"
    )


def test_built_formats_unknown_entries(example: Bundle, metadata: dict[str, Any]) -> None:
    """Entries that are not objects with a known status (metadata passed as a plain mapping)."""
    metadata["formats"].update(a="built", b={"reason": "no status"})
    assert fails(general.test_built_formats_on_disk, example, metadata, example.manifest) == (
        "formats in metadata.json disagree with the files: a: status 'built' unknown; b: status None unknown"
    )


# -- labels and metrics -----------------------------------------------------------------------------
def labels_bundle(label_map: dict[str, str], labels: list[str]) -> SimpleNamespace:
    return SimpleNamespace(label_map=label_map, config=SimpleNamespace(labels=tuple(labels)))


def test_label_map_covers_classes(example: Bundle, model_spec: Any) -> None:
    ref = {"confidence": np.zeros((3, 4), np.float32)}
    general.test_label_map_covers_classes(example, model_spec, ref)
    names = [f"class{i}" for i in range(12)]
    shuffled = {str(i): names[i] for i in (3, 11, 0, 10, 2, 1, 4, 5, 6, 7, 8, 9)}  # as JSON may hold them
    general.test_label_map_covers_classes(
        labels_bundle(shuffled, names), model_spec, {"confidence": np.zeros((3, 12), np.float32)}
    )


def test_label_map_fails_on_labels_classes_mismatch(model_spec: Any) -> None:
    ref = {"confidence": np.zeros((3, 4), np.float32)}
    three = {"0": "rest", "1": "walk", "2": "trot"}
    assert fails(
        general.test_label_map_covers_classes,
        labels_bundle(three, ["rest", "walk", "trot", "play"]),
        model_spec,
        ref,
    ) == ("label_map.json keys ['0', '1', '2'] != class indices ['0', '1', '2', '3']")
    swapped = {"0": "walk", "1": "rest", "2": "trot", "3": "play"}
    assert (
        fails(
            general.test_label_map_covers_classes,
            labels_bundle(swapped, ["rest", "walk", "trot", "play"]),
            model_spec,
            ref,
        )
        == "label_map.json names differ from config.yaml labels"
    )
    five = {str(i): n for i, n in enumerate(["rest", "walk", "trot", "play", "sleep"])}
    assert fails(
        general.test_label_map_covers_classes, labels_bundle(five, list(five.values())), model_spec, ref
    ) == ("label_map.json has 5 labels; output confidence has 4 classes")


def test_label_map_counts_classes_on_the_last_axis(model_spec: Any) -> None:
    """Per-step probabilities [N, T, classes]: the classes are the last axis, not the second."""
    four = {str(i): n for i, n in enumerate(["rest", "walk", "trot", "play"])}
    bundle = labels_bundle(four, list(four.values()))
    general.test_label_map_covers_classes(
        bundle, model_spec, {"confidence": np.zeros((3, 25, 4), np.float32)}
    )
    assert fails(
        general.test_label_map_covers_classes,
        bundle,
        model_spec,
        {"confidence": np.zeros((3, 4, 5), np.float32)},
    ) == ("label_map.json has 4 labels; output confidence has 5 classes")


def test_label_map_without_a_class_output(model_spec: Any) -> None:
    """A model with no probabilities output: labels are checked against config.yaml alone."""
    codes_only = SimpleNamespace(class_output=None)
    general.test_label_map_covers_classes(labels_bundle({"0": "a", "1": "b"}, ["a", "b"]), codes_only, {})


def metrics_bundle(**metrics: Any) -> SimpleNamespace:
    return SimpleNamespace(metrics=metrics)


def test_metrics_in_range_accepts_bounds(example: Bundle) -> None:
    general.test_metrics_in_range(example)
    general.test_metrics_in_range(
        metrics_bundle(accuracy=0, macro_f1=1, ece=0.5, perplexity=1, loss=7.5, steps=3, top5_accuracy=1.0)
    )
    general.test_metrics_in_range(metrics_bundle(perplexity=1.5))


def test_metrics_in_range_names_each_bad_metric() -> None:
    bad = metrics_bundle(
        accuracy=1.5,
        ece=-0.01,
        f1="high",
        flag=True,
        loss=math.nan,
        perplexity=0.5,
        precision=math.inf,
        recall=1.0000001,
    )
    assert fails(general.test_metrics_in_range, bad) == (
        "metrics.json: accuracy=1.5 outside [0, 1]; ece=-0.01 outside [0, 1]; f1='high' is not a finite number; "
        "flag=True is not a finite number; loss=nan is not a finite number; perplexity=0.5 < 1; "
        "precision=inf is not a finite number; recall=1.0000001 outside [0, 1]"
    )


# -- VERSION, COMMIT_SHA ----------------------------------------------------------------------------
def test_version_well_formed(example: Bundle, metadata: dict[str, Any], tmp_path: Path) -> None:
    general.test_version_well_formed(example, metadata)
    for good in ("1.2", "1.2.x", "10.20.30rc1"):
        general.test_version_well_formed(
            files_bundle(tmp_path, VERSION=f"{good}\n"), {"system_version": good}
        )
    for bad in ("1", "v1.2", "1.x.0", "", "1..2"):
        b = files_bundle(tmp_path, VERSION=bad)
        assert fails(general.test_version_well_formed, b, {"system_version": bad}) == (
            f"VERSION {bad!r} is not a version number"
        )
    b = files_bundle(tmp_path, VERSION="0.1.0\n")
    assert fails(general.test_version_well_formed, b, {"system_version": "0.2.0"}) == (
        "VERSION 0.1.0 != metadata.json system_version 0.2.0"
    )
    assert (
        fails(general.test_version_well_formed, b, {}) == "VERSION 0.1.0 != metadata.json system_version None"
    )


def test_commit_sha_well_formed(example: Bundle, metadata: dict[str, Any], tmp_path: Path) -> None:
    general.test_commit_sha_well_formed(example, metadata)
    general.test_commit_sha_well_formed(
        files_bundle(tmp_path, COMMIT_SHA="unknown\n"), {"commit_sha": "unknown"}
    )
    for bad in ("abc", "A" * 40, "0" * 39):
        b = files_bundle(tmp_path, COMMIT_SHA=bad)
        assert fails(general.test_commit_sha_well_formed, b, {"commit_sha": bad}) == (
            f"COMMIT_SHA {bad!r} is neither 40 hex digits nor 'unknown'"
        )
    sha = "0123456789abcdef0123456789abcdef01234567"
    b = files_bundle(tmp_path, COMMIT_SHA=sha + "\n")
    assert fails(general.test_commit_sha_well_formed, b, {"commit_sha": "unknown"}) == (
        f"COMMIT_SHA {sha} != metadata.json commit_sha unknown"
    )
    assert (
        fails(general.test_commit_sha_well_formed, b, {})
        == f"COMMIT_SHA {sha} != metadata.json commit_sha None"
    )


# -- golden data ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def golden(example_bundle: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    inputs = np.load(example_bundle / "reference" / "inputs.npy")
    with np.load(example_bundle / "reference" / "outputs.npz") as data:
        return inputs, {k: data[k] for k in data.files}


def test_reference_inputs(golden: Any, model_spec: Any, example: Bundle) -> None:
    inputs, _ = golden
    assert inputs.shape == (64, 9, 2, 100)
    general.test_reference_inputs(inputs, model_spec, example)
    assert fails(general.test_reference_inputs, inputs.astype(np.float64), model_spec, example) == (
        "reference/inputs.npy is float64 [64, 9, 2, 100], expected float32 [N, 9, 2, 100]"
    )
    assert fails(general.test_reference_inputs, inputs[..., :50], model_spec, example) == (
        "reference/inputs.npy is float32 [64, 9, 2, 50], expected float32 [N, 9, 2, 100]"
    )
    assert fails(general.test_reference_inputs, inputs[:32], model_spec, example) == (
        "reference/inputs.npy holds 32 windows; config.yaml export.reference.num_samples says 64 "
        "(empty or cut golden data verifies nothing)"
    )
    broken = inputs.copy()
    broken[5, 0, 1, 7] = np.inf
    assert fails(general.test_reference_inputs, broken, model_spec, example) == (
        "reference/inputs.npy holds non-finite values"
    )


def test_reference_outputs(golden: Any, model_spec: Any) -> None:
    inputs, outputs = golden
    for name in ("behavioral_codes", "confidence"):
        general.test_reference_outputs(outputs, inputs, name, model_spec)
    assert fails(
        general.test_reference_outputs,
        {"behavioral_codes": outputs["behavioral_codes"]},
        inputs,
        "confidence",
        model_spec,
    ) == ("reference/outputs.npz lacks confidence (has ['behavioral_codes'])")
    wrong_dtype = {"behavioral_codes": outputs["behavioral_codes"].astype(np.int32)}
    assert fails(general.test_reference_outputs, wrong_dtype, inputs, "behavioral_codes", model_spec) == (
        "reference/outputs.npz behavioral_codes is int32 [64]; expected int64 with 64 rows"
    )
    cut = {"confidence": outputs["confidence"][:32]}
    assert fails(general.test_reference_outputs, cut, inputs, "confidence", model_spec) == (
        "reference/outputs.npz confidence is float32 [32, 4]; expected float32 with 64 rows"
    )


# -- reference/onnx/test_data_set_0 -----------------------------------------------------------------
TEST_DATA = "reference/onnx/test_data_set_0"


def test_onnx_test_data_of_the_example(example: Bundle, golden: Any, model_spec: Any) -> None:
    inputs, outputs = golden
    passes(general.test_onnx_test_data, example, example.manifest, inputs, outputs, model_spec)


class GoldenCase:
    """Two windows of golden data for a model ``x -> (codes, probs)``, written as ``pack create`` writes them
    into ``reference/onnx/test_data_set_0/``; ``check(output_1=data)`` replaces a file's bytes (None: the manifest
    lists it but it is not there) or adds one."""

    spec = SimpleNamespace(input_name="x", output_names=("codes", "probs"))

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path, self.bundles = tmp_path, 0
        self.inputs = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) / 8
        self.outputs = {
            "codes": np.array([3, 1], dtype=np.int64),
            "probs": np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32),
        }

    def tensor(self, arr: np.ndarray, name: str) -> bytes:
        from onnx import numpy_helper

        return numpy_helper.from_array(arr, name).SerializeToString()

    def check(self, outputs: dict[str, np.ndarray] | None = None, **changes: bytes | None) -> None:
        from conv2d_bundle.bundle.reference import onnx_test_data

        files: dict[str, bytes | None] = dict(
            onnx_test_data(self.inputs, self.outputs, self.spec.input_name, self.spec.output_names)
        )
        files.update({f"{TEST_DATA}/{name}.pb": data for name, data in changes.items()})
        self.bundles += 1  # each check of a fresh bundle
        root = self.tmp_path / f"bundle{self.bundles}"
        for relpath, data in files.items():
            (root / relpath).parent.mkdir(parents=True, exist_ok=True)
            if data is not None:
                (root / relpath).write_bytes(data)
        manifest = SimpleNamespace(files={p: {} for p in ["config.yaml", *files]})
        bundle = SimpleNamespace(path=lambda rel: root / rel)
        passes(
            general.test_onnx_test_data,
            bundle,
            manifest,
            self.inputs,
            self.outputs if outputs is None else outputs,
            self.spec,
        )


@pytest.fixture
def case(tmp_path: Path) -> GoldenCase:
    return GoldenCase(tmp_path)


def test_onnx_test_data_passes_on_what_create_writes(case: GoldenCase) -> None:
    case.check()


def test_onnx_test_data_is_skipped_in_a_bundle_made_before_it(
    example: Bundle, golden: Any, model_spec: Any
) -> None:
    inputs, outputs = golden
    manifest = SimpleNamespace(
        files={p: {} for p in example.manifest.files if not p.startswith("reference/onnx")}
    )
    # a directory beside it whose name merely begins the same is not it
    manifest.files["reference/onnx/test_data_set_01/input_0.pb"] = {}
    assert skips(general.test_onnx_test_data, example, manifest, inputs, outputs, model_spec) == (
        "the bundle has no reference/onnx/test_data_set_0/ (created before it was written)"
    )


def test_onnx_test_data_names_a_file_that_is_not_part_of_the_case(case: GoldenCase) -> None:
    extra = case.tensor(case.outputs["codes"], "codes")
    assert fails(case.check, output_2=extra, input_1=extra) == (
        f"{TEST_DATA}/input_1.pb: not part of the golden case; {TEST_DATA}/output_2.pb: not part of the golden case"
    )


def test_onnx_test_data_names_a_file_that_cannot_be_read(case: GoldenCase) -> None:
    assert fails(case.check, output_0=None) == f"{TEST_DATA}/output_0.pb: cannot be read (FileNotFoundError)"
    assert (
        fails(case.check, output_0=b"\xff\xff\xff")
        == f"{TEST_DATA}/output_0.pb: cannot be read (DecodeError)"
    )


def test_onnx_test_data_names_a_misnamed_tensor(case: GoldenCase) -> None:
    """Outputs in the config's order: probs written first, codes second, is two misnamed files."""
    assert fails(case.check, input_0=case.tensor(case.inputs, "input")) == (
        f"{TEST_DATA}/input_0.pb: named 'input', expected 'x'"
    )
    swapped = {
        "output_0": case.tensor(case.outputs["codes"], "probs"),
        "output_1": case.tensor(case.outputs["probs"], "codes"),
    }
    assert fails(case.check, **swapped) == (
        f"{TEST_DATA}/output_0.pb: named 'probs', expected 'codes'; "
        f"{TEST_DATA}/output_1.pb: named 'codes', expected 'probs'"
    )


def test_onnx_test_data_compares_dtype_shape_and_values(case: GoldenCase) -> None:
    changed = case.inputs.copy()
    changed[1, 2, 3] += 1
    assert fails(case.check, input_0=case.tensor(changed, "x")) == (
        f"{TEST_DATA}/input_0.pb: float32 [2, 3, 4] differs from reference/inputs.npy"
    )
    codes = case.outputs["codes"]
    assert fails(case.check, output_0=case.tensor(codes.astype(np.int32), "codes")) == (
        f"{TEST_DATA}/output_0.pb: int32 [2] differs from outputs.npz codes"
    )
    assert fails(case.check, output_0=case.tensor(codes.reshape(2, 1), "codes")) == (
        f"{TEST_DATA}/output_0.pb: int64 [2, 1] differs from outputs.npz codes"
    )
    assert fails(case.check, output_1=case.tensor(case.outputs["probs"][::-1].copy(), "probs")) == (
        f"{TEST_DATA}/output_1.pb: float32 [2, 2] differs from outputs.npz probs"
    )


def test_onnx_test_data_against_a_missing_golden_output(case: GoldenCase) -> None:
    """outputs.npz without probs (test_reference_outputs says that too): the test data cannot agree with it."""
    assert fails(case.check, outputs={"codes": case.outputs["codes"]}) == (
        f"{TEST_DATA}/output_1.pb: float32 [2, 2] differs from outputs.npz probs"
    )


def test_onnx_test_data_lists_every_problem(case: GoldenCase) -> None:
    """Every file is looked at, past an unreadable one too."""
    assert fails(case.check, output_0=None, output_1=case.tensor(case.outputs["probs"], "p")) == (
        f"{TEST_DATA}/output_0.pb: cannot be read (FileNotFoundError); "
        f"{TEST_DATA}/output_1.pb: named 'p', expected 'probs'"
    )
    assert fails(
        case.check,
        input_0=case.tensor(case.inputs[:1], "input"),
        output_1=None,
        output_9=case.tensor(case.outputs["probs"], "probs"),
    ) == (
        f"{TEST_DATA}/output_9.pb: not part of the golden case; "
        f"{TEST_DATA}/input_0.pb: named 'input', expected 'x'; "
        f"{TEST_DATA}/input_0.pb: float32 [1, 3, 4] differs from reference/inputs.npy; "
        f"{TEST_DATA}/output_1.pb: cannot be read (FileNotFoundError)"
    )
