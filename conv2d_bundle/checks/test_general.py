"""General checks: the bundle is complete, sealed, consistent with itself. They run for every target."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from conv2d_bundle.bundle.digest import is_exp_hash, recompute_exp_hash
from conv2d_bundle.bundle.provenance import is_commit_sha

pytestmark = pytest.mark.conv2d_target("general")

REQUIRED_FILES = (
    "config.yaml",
    "label_map.json",
    "metrics.json",
    "metadata.json",
    "VERSION",
    "COMMIT_SHA",
    "MANIFEST.json",
    "reference/inputs.npy",
    "reference/outputs.npz",
    "docs/README.md",
    "docs/deployment_guide.md",
    "docs/api_reference.md",
)
METADATA_KEYS = (
    "schema_version",
    "exp_hash",
    "exp_name",
    "created_at",
    "created_by",
    "system_version",
    "commit_sha",
    "model",
    "formats",
    "validation",
)
UNIT_INTERVAL_METRICS = ("accuracy", "macro_f1", "f1", "precision", "recall", "ece", "top5_accuracy")


@pytest.mark.parametrize("relpath", REQUIRED_FILES)
def test_required_file(bundle: Any, relpath: str) -> None:
    path = bundle.path(relpath)
    if not path.is_file():
        pytest.fail(f"{relpath} is missing")
    if path.stat().st_size == 0:
        pytest.fail(f"{relpath} is empty")


def test_manifest_verifies(bundle: Any, manifest: Any) -> None:
    diff = manifest.verify(bundle.bundle_dir)
    if not diff.ok:
        pytest.fail(f"MANIFEST.json does not match the files: {diff.describe()}")


def test_no_code_or_test_configuration(bundle: Any) -> None:
    """A bundle holds models and data, never code or test configuration: pytest run in or on its directory
    would read or import them (conv2d_bundle.bundle.isolation)."""
    from conv2d_bundle.bundle.isolation import code_or_configuration
    from conv2d_bundle.bundle.manifest import iter_bundle_entries

    found = code_or_configuration(rel for rel, _ in iter_bundle_entries(bundle.bundle_dir))
    if found:
        pytest.fail(f"the bundle holds code or test configuration: {', '.join(found)}")


def test_metadata_schema(metadata: Any) -> None:
    missing = [k for k in METADATA_KEYS if k not in metadata]
    if missing:
        pytest.fail(f"metadata.json lacks {missing}")
    if metadata["schema_version"] != 1:
        pytest.fail(f"metadata.json schema_version {metadata['schema_version']!r} (this reader knows 1)")


def test_exp_hash_matches_directory(metadata: Any, bundle_session: Any) -> None:
    if not is_exp_hash(str(metadata.get("exp_hash"))):
        pytest.fail(f"metadata.json exp_hash {metadata.get('exp_hash')!r} is not 12 hex digits")
    if metadata["exp_hash"] != bundle_session.expect_hash:
        pytest.fail(
            f"metadata.json exp_hash {metadata['exp_hash']} != directory name {bundle_session.expect_hash}"
        )


def test_exp_hash_recomputes(bundle: Any, metadata: Any) -> None:
    from conv2d_bundle.errors import BundleError

    try:
        recomputed = recompute_exp_hash(bundle.bundle_dir)
    except BundleError as exc:
        pytest.fail(str(exc))
    if recomputed != metadata.get("exp_hash"):
        pytest.fail(
            f"config.yaml + weights_sha256 give {recomputed}, metadata.json says {metadata.get('exp_hash')}"
        )


def test_config_schema(bundle: Any) -> None:
    bundle.config  # noqa: B018 - loading validates; a ConfigError fails the check with its message


def test_built_formats_on_disk(bundle: Any, metadata: Any, manifest: Any) -> None:
    formats = metadata.get("formats") or {}
    built = {n: i for n, i in formats.items() if isinstance(i, dict) and i.get("status") == "built"}
    if not built:
        pytest.fail("metadata.json lists no built format")
    problems = []
    for name, info in sorted(built.items()):
        rel = str(info.get("file", ""))
        path = bundle.path(rel)
        if not rel or not path.exists():
            problems.append(f"{name}: {rel or '(no file)'} is absent")
            continue
        files = [f for f in manifest.files if f == rel or f.startswith(rel + "/")]
        size = sum(manifest.files[f]["size"] for f in files)
        if "size_bytes" in info and size != info["size_bytes"]:
            problems.append(f"{name}: {rel} is {size} bytes, metadata.json says {info['size_bytes']}")
    for name, info in sorted(formats.items()):
        if not isinstance(info, dict) or info.get("status") not in (
            "built",
            "skipped",
            "failed",
            "kit",
            "not_requested",
        ):
            problems.append(
                f"{name}: status {info.get('status') if isinstance(info, dict) else info!r} unknown"
            )
        elif info["status"] != "built" and not info.get("reason"):
            problems.append(f"{name}: status {info['status']} without a reason")
    if problems:
        pytest.fail("formats in metadata.json disagree with the files: " + "; ".join(problems))


def test_label_map_covers_classes(bundle: Any, model_spec: Any, reference_outputs: Any) -> None:
    labels = bundle.label_map
    expected_keys = [str(i) for i in range(len(bundle.config.labels))]
    keys = sorted(labels, key=int)  # Bundle.label_map has only class-index keys (check_label_map)
    if keys != expected_keys:
        pytest.fail(f"label_map.json keys {keys} != class indices {expected_keys}")
    if [labels[k] for k in expected_keys] != list(bundle.config.labels):
        pytest.fail("label_map.json names differ from config.yaml labels")
    out = model_spec.class_output
    if out is not None:
        n = reference_outputs[out.name].shape[-1]
        if n != len(labels):
            pytest.fail(f"label_map.json has {len(labels)} labels; output {out.name} has {n} classes")


def test_metrics_in_range(bundle: Any) -> None:
    problems = []
    for name, value in sorted(bundle.metrics.items()):
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            problems.append(f"{name}={value!r} is not a finite number")
        elif name in UNIT_INTERVAL_METRICS and not 0 <= value <= 1:
            problems.append(f"{name}={value} outside [0, 1]")
        elif name == "perplexity" and value < 1:
            problems.append(f"perplexity={value} < 1")
    if problems:
        pytest.fail("metrics.json: " + "; ".join(problems))


@pytest.mark.conv2d_needs_trusted_key
def test_signature(bundle: Any, trusted_key: Any) -> None:
    from conv2d_bundle.bundle.signing import verify_signature
    from conv2d_bundle.errors import BundleError

    try:
        verify_signature(bundle.bundle_dir, trusted_key)
    except BundleError as exc:
        pytest.fail(str(exc))


def test_version_well_formed(bundle: Any, metadata: Any) -> None:
    text = bundle.path("VERSION").read_text().strip()
    parts = text.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        pytest.fail(f"VERSION {text!r} is not a version number")
    if text != metadata.get("system_version"):
        pytest.fail(f"VERSION {text} != metadata.json system_version {metadata.get('system_version')}")


def test_commit_sha_well_formed(bundle: Any, metadata: Any) -> None:
    text = bundle.path("COMMIT_SHA").read_text().strip()
    if not is_commit_sha(text):
        pytest.fail(f"COMMIT_SHA {text!r} is neither 40 hex digits nor 'unknown'")
    if text != metadata.get("commit_sha"):
        pytest.fail(f"COMMIT_SHA {text} != metadata.json commit_sha {metadata.get('commit_sha')}")


def test_reference_inputs(reference_inputs: Any, model_spec: Any, bundle: Any) -> None:
    expected = tuple(model_spec.input_shape[1:])
    rows = bundle.config.reference_options["num_samples"]
    if reference_inputs.dtype != np.float32 or tuple(reference_inputs.shape[1:]) != expected:
        pytest.fail(
            f"reference/inputs.npy is {reference_inputs.dtype} {list(reference_inputs.shape)}, "
            f"expected float32 [N, {', '.join(map(str, expected))}]"
        )
    if reference_inputs.shape[0] != rows:
        pytest.fail(
            f"reference/inputs.npy holds {reference_inputs.shape[0]} windows; config.yaml "
            f"export.reference.num_samples says {rows} (empty or cut golden data verifies nothing)"
        )
    if not np.isfinite(reference_inputs).all():
        pytest.fail("reference/inputs.npy holds non-finite values")


def test_reference_outputs(
    reference_outputs: Any, reference_inputs: Any, output_name: str, model_spec: Any
) -> None:
    if output_name not in reference_outputs:
        pytest.fail(f"reference/outputs.npz lacks {output_name} (has {sorted(reference_outputs)})")
    arr = reference_outputs[output_name]
    dtype = model_spec.output(output_name).dtype
    if str(arr.dtype) != dtype or arr.shape[0] != reference_inputs.shape[0]:
        pytest.fail(
            f"reference/outputs.npz {output_name} is {arr.dtype} {list(arr.shape)}; expected {dtype} with "
            f"{reference_inputs.shape[0]} rows"
        )


def test_onnx_test_data(
    bundle: Any, manifest: Any, reference_inputs: Any, reference_outputs: Any, model_spec: Any
) -> None:
    """``reference/onnx/test_data_set_0/`` (the golden case in ONNX's test-data layout, for onnx_test_runner
    and the like) holds exactly inputs.npy and outputs.npz: same names, dtypes and values, outputs in order."""
    from onnx import TensorProto, numpy_helper

    from conv2d_bundle.bundle.reference import ONNX_TEST_DATA_DIR

    listed = sorted(p for p in manifest.files if p.startswith(f"{ONNX_TEST_DATA_DIR}/"))
    if not listed:
        pytest.skip(f"the bundle has no {ONNX_TEST_DATA_DIR}/ (created before it was written)")
    expected = {f"{ONNX_TEST_DATA_DIR}/input_0.pb": (model_spec.input_name, reference_inputs)}
    for i, name in enumerate(model_spec.output_names):
        expected[f"{ONNX_TEST_DATA_DIR}/output_{i}.pb"] = (name, reference_outputs.get(name))
    problems = [f"{p}: not part of the golden case" for p in listed if p not in expected]
    for relpath, (name, want) in expected.items():
        tensor = TensorProto()
        try:
            tensor.ParseFromString(bundle.path(relpath).read_bytes())
            got = numpy_helper.to_array(tensor)
        except Exception as exc:  # missing file, DecodeError, an unsupported data type: all mean unreadable
            problems.append(f"{relpath}: cannot be read ({type(exc).__name__})")
            continue
        if tensor.name != name:
            problems.append(f"{relpath}: named {tensor.name!r}, expected {name!r}")
        if (
            want is None
            or got.dtype != want.dtype
            or got.shape != want.shape
            or not np.array_equal(got, want)
        ):
            source = "reference/inputs.npy" if relpath.endswith("input_0.pb") else f"outputs.npz {name}"
            problems.append(f"{relpath}: {got.dtype} {list(got.shape)} differs from {source}")
    if problems:
        pytest.fail("; ".join(problems))
