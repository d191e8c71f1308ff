"""The iOS checks (``conv2d_bundle/targets/ios/test_ios.py``) called directly: the example's Core ML package
and spec pass; an incomplete package, or a spec edited to another signature, version or metadata, fails
naming the file and the property at fault."""

from __future__ import annotations

import copy
import json
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.errors import BundleWarning
from conv2d_bundle.targets.ios import test_ios as checks
from tests.unit.checks import fails

PACKAGE = "models/coreml.mlpackage"
SPEC = "com.apple.CoreML/model.mlmodel"


def files_of(root: Path, info: dict[str, Any], **options: Any) -> checks.CoreMLFiles:
    config = SimpleNamespace(coreml_options={"minimum_deployment_target": "iOS15", **options})
    formats = {"coreml": info}  # the Core ML entry only: asking for another format's is a KeyError
    return checks.CoreMLFiles(
        SimpleNamespace(format_info=formats.__getitem__, config=config, bundle_dir=root)
    )


@pytest.fixture
def info(example: Bundle) -> dict[str, Any]:
    return copy.deepcopy(dict(example.format_info("coreml")))


@pytest.fixture
def package(example_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the example's package, under ``<root>/models``."""
    dst = tmp_path / "b" / PACKAGE
    shutil.copytree(example_bundle / PACKAGE, dst)
    return tmp_path / "b"


@pytest.fixture(scope="module")
def spec_bytes(example_bundle: Path) -> bytes:
    return (example_bundle / PACKAGE / "Data" / SPEC).read_bytes()


@pytest.fixture
def spec(spec_bytes: bytes) -> Any:
    import coremltools

    parsed = coremltools.proto.Model_pb2.Model()
    parsed.ParseFromString(spec_bytes)
    return parsed


# -- where the model is -----------------------------------------------------------------------------
def test_files_from_metadata(package: Path, info: dict[str, Any]) -> None:
    files = files_of(package, info)
    assert (files.relpath, files.target, files.model_format, files.is_package) == (
        PACKAGE,
        "iOS15",
        "mlprogram",
        True,
    )
    assert files.path == package / PACKAGE and files.root == package
    assert files.spec_relpath() == f"{PACKAGE}/Data/{SPEC}"


@pytest.mark.parametrize(
    ("target", "fmt", "relpath"),
    [
        ("iOS13", "neuralnetwork", "models/coreml.mlmodel"),
        ("iOS14", "neuralnetwork", "models/coreml.mlmodel"),
        ("iOS15", "mlprogram", PACKAGE),
        ("iOS17", "mlprogram", PACKAGE),
    ],
)
def test_files_defaults_from_the_config(tmp_path: Path, target: str, fmt: str, relpath: str) -> None:
    files = files_of(tmp_path, {}, minimum_deployment_target=target)
    assert (files.target, files.model_format, files.relpath) == (target, fmt, relpath)
    assert files.is_package is (relpath == PACKAGE)
    if not files.is_package:
        assert files.spec_relpath() == relpath


def test_metadata_overrides_the_config(tmp_path: Path) -> None:
    info = {"minimum_deployment_target": "iOS13", "model_format": "mlprogram", "file": "models/x.mlpackage"}
    files = files_of(tmp_path, info, minimum_deployment_target="iOS17")
    assert (files.target, files.model_format, files.relpath) == ("iOS13", "mlprogram", "models/x.mlpackage")


def test_why_missing(tmp_path: Path) -> None:
    assert files_of(tmp_path, {}).why_missing() == (
        "metadata.json has no formats.coreml: the bundle was created without Core ML"
    )
    assert files_of(tmp_path, {"status": "failed", "reason": "converter crashed"}).why_missing() == (
        "formats.coreml is 'failed': converter crashed"
    )
    assert (
        files_of(tmp_path, {"status": "skipped"}).why_missing()
        == "formats.coreml is 'skipped': no reason given"
    )
    assert (
        files_of(tmp_path, {"status": "built"}).why_missing()
        == "formats.coreml says built, but the file is gone"
    )


def write_manifest(package: Path, data: Any) -> None:
    (package / PACKAGE / "Manifest.json").write_text(data if isinstance(data, str) else json.dumps(data))


def test_package_manifest_problems(package: Path, info: dict[str, Any]) -> None:
    files = files_of(package, info)
    write_manifest(package, {"itemInfoEntries": {}, "rootModelIdentifier": "x"})
    assert fails(files.spec_relpath) == (f"{PACKAGE}/Manifest.json: the root model item is not listed ('x')")
    write_manifest(package, {"itemInfoEntries": {"x": None}, "rootModelIdentifier": "x"})
    assert fails(files.spec_relpath).startswith(
        f"{PACKAGE}/Manifest.json: the root model item is not listed ("
    )
    write_manifest(package, "[1, 2]")
    assert fails(files.read_manifest) == f"{PACKAGE}/Manifest.json: expected a JSON object"
    write_manifest(package, "{not json")
    assert fails(files.read_manifest).startswith(f"{PACKAGE}/Manifest.json is not valid JSON: ")
    (package / PACKAGE / "Manifest.json").unlink()
    assert fails(files.read_manifest) == (
        f"{PACKAGE}/Manifest.json is missing: not a loadable Core ML package"
    )


# -- package structure ------------------------------------------------------------------------------
def structure(files: checks.CoreMLFiles, details: dict[str, Any] | None = None) -> None:
    checks.test_package_structure(files, files.path, {} if details is None else details)


def test_package_structure_passes(package: Path, info: dict[str, Any]) -> None:
    details: dict[str, Any] = {}
    structure(files_of(package, info), details)
    assert details == {
        "layout": "mlpackage",
        "items": ["com.apple.CoreML/model.mlmodel", "com.apple.CoreML/weights"],
    }


def test_package_structure_failures(package: Path, info: dict[str, Any]) -> None:
    files = files_of(package, info)
    data = package / PACKAGE / "Data" / "com.apple.CoreML"
    for weight in (data / "weights").iterdir():
        weight.write_bytes(b"")
    assert fails(structure, files) == (
        f"{PACKAGE}: an ML Program needs its weights: Data/com.apple.CoreML/weights/ is empty"
    )
    structure(files_of(package, {**info, "model_format": "neuralnetwork"}))  # no weights needed there
    shutil.rmtree(data / "weights")
    assert fails(structure, files) == (
        f"{PACKAGE}: items listed in Manifest.json are missing under Data/: ['com.apple.CoreML/weights']"
    )
    manifest = json.loads((package / PACKAGE / "Manifest.json").read_text())
    root = manifest["rootModelIdentifier"]
    manifest["itemInfoEntries"] = {root: manifest["itemInfoEntries"][root]}
    write_manifest(package, manifest)
    (data / "model.mlmodel").write_bytes(b"")
    assert fails(structure, files) == (
        f"{PACKAGE}: the model spec Data/com.apple.CoreML/model.mlmodel is not a non-empty file"
    )
    write_manifest(package, {**manifest, "itemInfoEntries": {root: "not an object", "b": {"path": "x"}}})
    assert fails(structure, files) == (
        f"{PACKAGE}: items listed in Manifest.json are missing under Data/: ['not an object', 'x']"
    )
    for bad in (
        {**manifest, "rootModelIdentifier": "other"},
        {"rootModelIdentifier": root},
        {**manifest, "itemInfoEntries": []},
    ):
        write_manifest(package, bad)
        assert fails(structure, files) == (
            f"{PACKAGE}/Manifest.json: rootModelIdentifier does not name an item of itemInfoEntries"
        )
    shutil.rmtree(package / PACKAGE)
    (package / PACKAGE).write_bytes(b"a file")
    assert fails(structure, files) == f"{PACKAGE} is not a directory (an .mlpackage is a folder)"


def test_neuralnetwork_model_file(tmp_path: Path) -> None:
    files = files_of(
        tmp_path, {"status": "built", "model_format": "neuralnetwork", "file": "models/m.mlmodel"}
    )
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.mlmodel").write_bytes(b"spec")
    details: dict[str, Any] = {}
    structure(files, details)
    assert details == {"layout": "mlmodel file"}
    (tmp_path / "models" / "m.mlmodel").write_bytes(b"")
    assert fails(structure, files) == "models/m.mlmodel is not a non-empty file"
    (tmp_path / "models" / "m.mlmodel").unlink()
    (tmp_path / "models" / "m.mlmodel").mkdir()
    assert fails(structure, files) == "models/m.mlmodel is not a non-empty file"
    program = files_of(tmp_path, {"status": "built", "model_format": "mlprogram", "file": "models/m.mlmodel"})
    assert fails(structure, program) == "models/m.mlmodel: a mlprogram model must be an .mlpackage"


# -- the spec ---------------------------------------------------------------------------------------
def test_coreml_loads(spec: Any, package: Path, info: dict[str, Any]) -> None:
    details: dict[str, Any] = {}
    checks.test_coreml_loads(SimpleNamespace(get_spec=lambda: spec), files_of(package, info), details)
    assert details == {"spec_type": "mlProgram"}
    spec.ClearField("mlProgram")
    assert fails(
        checks.test_coreml_loads, SimpleNamespace(get_spec=lambda: spec), files_of(package, info), details
    ) == (f"coremltools loaded {PACKAGE} but its spec holds no model")
    assert details == {"spec_type": None}


def test_specification_version(spec: Any, package: Path, info: dict[str, Any]) -> None:
    details: dict[str, Any] = {}
    checks.test_specification_version(spec, files_of(package, info), details)
    assert details == {"specification_version": 6, "minimum_ios": "iOS15", "model_type": "mlProgram"}
    del info["minimum_ios_version"]  # the deployment target is used instead
    checks.test_specification_version(spec, files_of(package, info), {})
    del info["specification_version"]  # nothing declared: nothing to compare
    checks.test_specification_version(spec, files_of(package, info), {})


def test_specification_version_failures(spec: Any, package: Path, info: dict[str, Any]) -> None:
    def version_fails(**changes: Any) -> str:
        return fails(checks.test_specification_version, spec, files_of(package, {**info, **changes}), {})

    assert version_fails(minimum_ios_version="17.2") == (
        f"{PACKAGE} specificationVersion 6 != 8 (a mlprogram model for minimum iOS17)"
    )
    assert version_fails(minimum_ios_version="14") == f"{PACKAGE}: no mlprogram model exists for iOS14"
    assert version_fails(specification_version=7) == (
        "metadata.json formats.coreml.specification_version 7 != the spec's 6"
    )
    assert version_fails(model_format="neuralnetwork", minimum_ios_version="13.0") == (
        f"{PACKAGE} specificationVersion 6 != 4 (a neuralnetwork model for minimum iOS13)"
    )
    spec.specificationVersion = 5
    assert version_fails(model_format="neuralnetwork", minimum_ios_version="14", specification_version=5) == (
        f"{PACKAGE} holds a mlProgram model, metadata.json says neuralnetwork"
    )


def test_input_name(spec: Any, model_spec: Any, package: Path, info: dict[str, Any]) -> None:
    files = files_of(package, info)
    checks.test_input_name(spec, model_spec, files)
    extra = spec.description.input.add()
    extra.CopyFrom(spec.description.input[0])
    extra.name = "mask"
    assert fails(checks.test_input_name, spec, model_spec, files) == (
        f"{PACKAGE} inputs ['imu_input', 'mask'] != expected [imu_input]"
    )
    spec.description.input[0].name = "x"
    assert fails(checks.test_input_name, spec, model_spec, files) == (
        f"{PACKAGE} inputs ['x', 'mask'] != expected [imu_input]"
    )
    assert fails(checks.test_input_type, spec, model_spec, files) == (
        f"{PACKAGE} inputs ['mask', 'x'] != expected [imu_input]"
    )


def test_input_type(spec: Any, model_spec: Any, package: Path, info: dict[str, Any]) -> None:
    files = files_of(package, info)
    checks.test_input_type(spec, model_spec, files)
    array = spec.description.input[0].type.multiArrayType
    for name, shown in (("DOUBLE", "float64"), ("INT32", "int32"), ("FLOAT16", "float16")):
        array.dataType = type(array).ArrayDataType.Value(name)
        assert fails(checks.test_input_type, spec, model_spec, files) == (
            f"input imu_input of {PACKAGE} is {shown}, expected float32"
        )
    spec.description.input[0].type.imageType.width = 4
    assert fails(checks.test_input_type, spec, model_spec, files) == (
        "input imu_input is a imageType, expected a multiarray"
    )


def shape_check(
    spec: Any, model_spec: Any, package: Path, info: dict[str, Any], batch: list[int]
) -> dict[str, Any]:
    details: dict[str, Any] = {}
    bundle = SimpleNamespace(config=SimpleNamespace(coreml_options={"batch_range": batch}))
    checks.test_input_shape(spec, model_spec, files_of(package, info), bundle, details)
    return details


def test_input_shape(spec: Any, model_spec: Any, package: Path, info: dict[str, Any]) -> None:
    details = shape_check(spec, model_spec, package, info, [1, 64])
    assert details == {
        "shape": [1, 9, 2, 100],
        "ranges": [(1, 64), (9, 9), (2, 2), (100, 100)],
        "batch_range": [1, 64],
    }
    array = spec.description.input[0].type.multiArrayType
    array.shapeRange.ClearField("sizeRanges")
    shape_check(spec, model_spec, package, info, [1, 1])  # a fixed batch of one, as configured


def test_input_shape_failures(spec: Any, model_spec: Any, package: Path, info: dict[str, Any]) -> None:
    array = spec.description.input[0].type.multiArrayType
    assert fails(shape_check, spec, model_spec, package, info, [1, 32]) == (
        "input imu_input: batch range 1..64 != 1..32"
    )
    assert fails(shape_check, spec, model_spec, package, info, [2, 64]) == (
        "input imu_input: batch range 1..64 != 2..64"
    )
    spec.description.input[
        0
    ].name = "x"  # the shape of an input that is not there: named like test_input_name
    assert fails(shape_check, spec, model_spec, package, info, [1, 64]) == (
        f"{PACKAGE} inputs ['x'] != expected [imu_input]"
    )
    spec.description.input[0].name = "imu_input"
    array.shapeRange.sizeRanges[3].upperBound = -1
    assert fails(shape_check, spec, model_spec, package, info, [1, 64]) == (
        "input imu_input: non-batch axes are flexible [(9, 9), (2, 2), (100, -1)], expected [(9, 9), (2, 2), (100, 100)]"
    )
    array.shapeRange.ClearField("sizeRanges")
    assert fails(shape_check, spec, model_spec, package, info, [1, 64]) == (
        "input imu_input: the batch is fixed at 1, expected 1..64"
    )
    assert fails(shape_check, spec, model_spec, package, info, [2, 2]) == (
        "input imu_input: the batch is fixed at 1, expected 2..2"
    )
    array.shape[3] = 50
    assert fails(shape_check, spec, model_spec, package, info, [1, 64]) == (
        "input imu_input shape [1, 9, 2, 50] != expected [N, 9, 2, 100]"
    )
    array.shape.append(1)
    array.shape[3] = 100
    assert fails(shape_check, spec, model_spec, package, info, [1, 64]) == (
        "input imu_input shape [1, 9, 2, 100, 1] != expected [N, 9, 2, 100]"
    )


def test_output_names(spec: Any, model_spec: Any, package: Path, info: dict[str, Any]) -> None:
    files = files_of(package, info)
    checks.test_output_names(spec, model_spec, files)
    outputs = spec.description.output
    first = copy.deepcopy(outputs[0])
    del outputs[0]
    outputs.add().CopyFrom(first)
    checks.test_output_names(spec, model_spec, files)  # the order is not part of the contract
    outputs[0].name = "probs"
    assert fails(checks.test_output_names, spec, model_spec, files) == (
        f"{PACKAGE} outputs ['probs', 'behavioral_codes'] != expected ['behavioral_codes', 'confidence']"
    )


def test_output_type(spec: Any, model_spec: Any, package: Path, info: dict[str, Any]) -> None:
    files = files_of(package, info)
    details: dict[str, Any] = {}
    checks.test_output_type(spec, model_spec, files, "behavioral_codes", details)
    assert details == {"coreml_dtype": "int32", "source_dtype": "int64"}
    checks.test_output_type(spec, model_spec, files, "confidence", details)
    assert details == {"coreml_dtype": "float32", "source_dtype": "float32"}
    codes = spec.description.output[0].type.multiArrayType
    codes.dataType = type(codes).ArrayDataType.Value("FLOAT32")  # a neuralnetwork's codes
    checks.test_output_type(
        spec, model_spec, files_of(package, {**info, "codes_dtype": None}), "behavioral_codes", {}
    )
    assert fails(checks.test_output_type, spec, model_spec, files, "behavioral_codes", {}) == (
        "output behavioral_codes is float32, metadata.json formats.coreml.codes_dtype says int32"
    )
    codes.dataType = type(codes).ArrayDataType.Value("DOUBLE")
    assert fails(checks.test_output_type, spec, model_spec, files, "behavioral_codes", {}) == (
        f"output behavioral_codes of {PACKAGE} is float64, expected int32 or float32 (source int64)"
    )
    conf = spec.description.output[1].type.multiArrayType
    conf.dataType = type(conf).ArrayDataType.Value("INT32")
    assert fails(checks.test_output_type, spec, model_spec, files, "confidence", {}) == (
        f"output confidence of {PACKAGE} is int32, expected float32 (source float32)"
    )
    assert fails(checks.test_output_type, spec, model_spec, files, "logits", {}) == (
        f"{PACKAGE} has no output logits (has ['behavioral_codes', 'confidence'])"
    )
    spec.description.output[1].type.imageType.width = 4
    assert fails(checks.test_output_type, spec, model_spec, files, "confidence", {}) == (
        "output confidence is a imageType, expected a multiarray"
    )


def test_codes_dtype_is_not_judged_for_other_outputs(spec: Any, package: Path, info: dict[str, Any]) -> None:
    from conv2d_bundle.config import ModelSpec, OutputSpec

    tensors = ModelSpec(
        "m",
        None,
        None,
        {},
        "imu_input",
        (1, 9, 2, 100),
        (OutputSpec("behavioral_codes", "int64"), OutputSpec("confidence", "float32")),
    )
    codes = spec.description.output[0].type.multiArrayType
    codes.dataType = type(codes).ArrayDataType.Value("FLOAT32")
    checks.test_output_type(spec, tensors, files_of(package, info), "behavioral_codes", {})


def test_dtype_names() -> None:
    import coremltools

    array = coremltools.proto.FeatureTypes_pb2.ArrayFeatureType()
    names = {}
    for name in ("FLOAT32", "FLOAT16", "DOUBLE", "INT32", "INT8"):
        array.dataType = type(array).ArrayDataType.Value(name)
        names[name] = checks._dtype_name(array)
    assert names == {
        "FLOAT32": "float32",
        "FLOAT16": "float16",
        "DOUBLE": "float64",
        "INT32": "int32",
        "INT8": "int8",
    }


# -- metadata ---------------------------------------------------------------------------------------
def problem(field: str, spec: Any, metadata: Any, example: Bundle) -> str | None:
    return checks._metadata_problem(field, spec, metadata, example)


def test_model_metadata_passes(spec: Any, metadata: dict[str, Any], example: Bundle) -> None:
    for field in checks.METADATA_FIELDS:
        assert problem(field, spec, metadata, example) is None, field


def test_model_metadata_problems(
    spec: Any, metadata: dict[str, Any], example: Bundle, package: Path, info: dict[str, Any]
) -> None:
    meta = spec.description.metadata
    meta.author = ""
    meta.versionString = "0.0.9"
    meta.shortDescription = ""
    meta.userDefined["exp_hash"] = "0123456789ab"
    meta.userDefined["labels"] = '["rest"]'
    spec.description.output[1].shortDescription = ""
    spec.description.input[0].shortDescription = ""
    found = {field: problem(field, spec, metadata, example) for field in checks.METADATA_FIELDS}
    assert found == {
        "author": "author is empty",
        "version": "version '0.0.9' != '0.1.0'",
        "short_description": "short description is empty",
        "exp_hash": "user-defined exp_hash '0123456789ab' != metadata.json '7bda82d7df9d'",
        "labels": "user-defined labels ['rest'] != label_map.json ['rest', 'walk', 'trot', 'play']",
        "descriptions": "inputs/outputs without a description: ['imu_input', 'confidence']",
    }
    assert fails(checks.test_model_metadata, spec, metadata, example, files_of(package, info), "author") == (
        f"{PACKAGE} metadata: author is empty"
    )
    meta.userDefined["labels"] = "rest,walk"
    assert problem("labels", spec, metadata, example) == (
        "user-defined labels 'rest,walk' != label_map.json ['rest', 'walk', 'trot', 'play']"
    )
    del meta.userDefined["labels"], meta.userDefined["exp_hash"]
    assert problem("labels", spec, metadata, example) == (
        "user-defined labels None != label_map.json ['rest', 'walk', 'trot', 'play']"
    )
    assert (
        problem("exp_hash", spec, metadata, example)
        == "user-defined exp_hash None != metadata.json '7bda82d7df9d'"
    )


# -- size -------------------------------------------------------------------------------------------
def test_size(package: Path, info: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = files_of(package, info)
    details: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checks.test_size(files.path, files, details)
    size = sum(p.stat().st_size for p in files.path.rglob("*") if p.is_file())
    assert details == {"size_bytes": size, "size_mb": round(size / 2**20, 3)}
    single = tmp_path / "m.mlmodel"
    single.write_bytes(b"\0" * 2048)
    checks.test_size(single, files, details)
    assert details == {"size_bytes": 2048, "size_mb": 0.002}
    monkeypatch.setattr(checks, "SIZE_WARNING_BYTES", 2047)
    with pytest.warns(BundleWarning, match=rf"^{PACKAGE} is 0\.0 MB \(> 0 MB\): large for an app download"):
        checks.test_size(single, files, {})
    big = tmp_path / "big.mlmodel"
    big.write_bytes(b"\0" * (3 * 2**20 + 2**19))
    monkeypatch.setattr(checks, "SIZE_WARNING_BYTES", 3 * 2**20)
    with pytest.warns(BundleWarning) as warned:
        checks.test_size(big, files, {})
    assert [str(w.message) for w in warned] == [
        f"{PACKAGE} is 3.5 MB (> 3 MB): large for an app download; consider quantized weights"
    ]
    monkeypatch.setattr(checks, "SIZE_WARNING_BYTES", 2048)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checks.test_size(single, files, {})  # at the limit: no warning
