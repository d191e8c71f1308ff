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
from tests.unit.checks import fails, skips

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


# -- parity of the ML Program through the reference interpreter -------------------------------------
ENGINE = "ML Program reference interpreter (numpy), not Apple's runtime"
READER = "not verified: the ML Program reference interpreter lacks"


@pytest.fixture(scope="module")
def example_program(example_bundle: Path) -> Any:
    """The example's ML Program as the interpreter reads it (read once for the module)."""
    info = dict(Bundle(example_bundle).format_info("coreml"))
    return checks.read_program(files_of(example_bundle, info), example_bundle / PACKAGE)


def golden(example: Bundle) -> tuple[Any, dict[str, Any]]:
    import numpy as np

    with np.load(example.path("reference/outputs.npz")) as data:
        outputs = {name: data[name] for name in data.files}
    return np.load(example.path("reference/inputs.npy")), outputs


def program_parity(outputs: Any, example: Bundle, model_spec: Any, name: str, batch: int, **kw: Any) -> dict:
    """test_coreml_program_parity called as the plugin calls it; its details."""
    from conv2d_bundle.parity.tolerance import TolerancePolicy

    inputs, expected = golden(example)
    details: dict[str, Any] = {}
    checks.test_coreml_program_parity(
        outputs,
        kw.get("inputs", inputs),
        kw.get("expected", expected),
        model_spec,
        kw.get("policy", TolerancePolicy()),
        name,
        batch,
        details,
    )
    return details


def test_lacks_ops_names_every_op() -> None:
    assert checks.lacks_ops(["cumsum"]) == f"{READER} op cumsum"
    assert checks.lacks_ops(["l2_norm", "topk"]) == f"{READER} ops l2_norm, topk"


def test_read_program_of_the_example(example_program: Any) -> None:
    assert example_program.unsupported_ops() == []
    assert [(i.name, i.shape) for i in example_program.inputs] == [("imu_input", (None, 9, 2, 100))]
    assert list(example_program.outputs) == ["behavioral_codes", "confidence"]


def test_read_program_skips_what_it_cannot_run(package: Path, info: dict[str, Any], spec: Any) -> None:
    network = files_of(package, {**info, "model_format": "neuralnetwork", "file": "models/coreml.mlmodel"})
    assert skips(checks.read_program, network, package / "models/coreml.mlmodel") == (
        "not verified: models/coreml.mlmodel is a neuralnetwork model, not an ML Program: the reference "
        "interpreter runs ML Programs only (its parity needs predict() on macOS)"
    )
    main = spec.mlProgram.functions["main"]
    block = main.block_specializations[main.opset]
    for op in block.operations:
        if op.type in ("reduce_sum", "tanh"):
            op.type = {"reduce_sum": "reduce_log_sum", "tanh": "topk"}[op.type]
    (package / PACKAGE / "Data" / SPEC).write_bytes(spec.SerializeToString())
    files = files_of(package, info)
    assert skips(checks.read_program, files, files.path) == f"{READER} ops reduce_log_sum, topk"
    spec.neuralNetwork.SetInParent()  # a package whose spec holds a neuralnetwork, not a program
    (package / PACKAGE / "Data" / SPEC).write_bytes(spec.SerializeToString())
    assert skips(checks.read_program, files, files.path) == f"{READER} op model<neuralNetwork>"


def test_read_program_fails_for_a_package_it_cannot_read(package: Path, info: dict[str, Any]) -> None:
    files = files_of(package, info)
    weights = files.path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    weights.unlink()
    assert fails(checks.read_program, files, files.path) == (
        f"{PACKAGE}: the ML Program reference interpreter cannot read it: the weight file {weights} is missing"
    )


class CountingProgram:
    """A stand-in for ``mil.Program``: records the batches it ran, answers ``result`` or raises it."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.calls: list[tuple[str, int]] = []

    def run(self, inputs: dict[str, Any]) -> Any:
        [(name, array)] = inputs.items()
        self.calls.append((name, len(array)))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_program_runner_runs_each_batch_once() -> None:
    import numpy as np

    program = CountingProgram({"confidence": np.zeros((3, 4), np.float32)})
    outputs = checks.program_runner(program, "imu_input", np.zeros((64, 9, 2, 100), np.float32), PACKAGE)
    assert outputs(7) is outputs(7)
    outputs(64)
    assert program.calls == [("imu_input", 7), ("imu_input", 64)]


def test_program_runner_skips_or_fails_naming_why() -> None:
    import numpy as np

    from conv2d_bundle.errors import BundleIntegrityError
    from conv2d_bundle.targets.ios import mil

    rows = np.zeros((8, 9, 2, 100), np.float32)
    lacking = checks.program_runner(
        CountingProgram(mil.UnsupportedOpError("cast<int64>")), "x", rows, PACKAGE
    )
    assert skips(lacking, 7) == f"{READER} op cast<int64>"
    broken = checks.program_runner(
        CountingProgram(BundleIntegrityError("op conv 'c1' failed")), "x", rows, PACKAGE
    )
    assert fails(broken, 1) == (
        f"{PACKAGE}, batch 1: the ML Program reference interpreter failed: op conv 'c1' failed"
    )


def test_program_parity_passes_with_figures(example_program: Any, example: Bundle, model_spec: Any) -> None:
    """The example's program through the interpreter: codes exact (int32 against the golden int64, by value),
    confidence within the config's 1e-5; the report's figures and the engine that computed them."""
    import numpy as np

    inputs, _ = golden(example)
    outputs = checks.program_runner(example_program, "imu_input", inputs, PACKAGE)
    assert outputs(7)["behavioral_codes"].dtype == np.int32
    codes = program_parity(outputs, example, model_spec, "behavioral_codes", 64)
    assert codes["engine"] == ENGINE and codes["batch_size"] == 64
    assert codes["tolerance"] == {"exact": True, "source": "integers are compared exactly"}
    assert (codes["mismatches"], codes["total"], codes["max_abs_error"], codes["passed"]) == (
        0,
        64,
        0.0,
        True,
    )
    assert codes["agreement_kind"] == "codes" and codes["agreement"] == 1.0
    confidence = program_parity(outputs, example, model_spec, "confidence", 7)
    assert list(confidence)[:3] == ["engine", "batch_size", "tolerance"]
    assert confidence["tolerance"]["atol"] == 1e-5 and confidence["tolerance"]["cap"]["atol"] == 1e-4
    assert confidence["shape"] == [7, 4] and confidence["total"] == 28 and confidence["passed"] is True
    assert 0 < confidence["max_abs_error"] < 1e-6


def test_program_parity_fails_naming_the_output(example: Bundle, model_spec: Any) -> None:
    import numpy as np

    inputs, expected = golden(example)
    codes = expected["behavioral_codes"][:7].astype(np.int32)
    codes[3] += 1
    off = {"behavioral_codes": codes, "confidence": expected["confidence"][:7] + np.float32(1e-3)}

    def parity(name: str, batch: int = 7, **kw: Any) -> str:
        return fails(program_parity, lambda n: off, example, model_spec, name, batch, **kw)

    assert parity("behavioral_codes") == (
        "ios program parity (reference interpreter), batch 7: behavioral_codes: 1/7 values differ "
        "(max abs error 1, code agreement 85.7%); code agreement 85.7% is no better than answering the "
        "constant code 500 (100.0% of the golden values)"
    )
    assert parity("confidence").startswith(
        "ios program parity (reference interpreter), batch 7: confidence: 28/28 outside atol=1e-05 rtol=1e-05; "
        "max abs 0.001"
    )
    assert parity("confidence", expected={"behavioral_codes": expected["behavioral_codes"]}) == (
        "reference/outputs.npz has no confidence"
    )
    assert parity("confidence", inputs=inputs[:5]) == (
        "reference/inputs.npy holds 5 windows; parity at batch 7 needs 7"
    )
    del off["confidence"]
    assert parity("confidence") == "the ML Program computes no confidence (has ['behavioral_codes'])"


def test_program_parity_records_the_figures_of_a_failure(example: Bundle, model_spec: Any) -> None:
    import numpy as np

    from conv2d_bundle.parity.tolerance import TolerancePolicy

    inputs, expected = golden(example)
    off = {"confidence": expected["confidence"][:7] + np.float32(1e-3)}
    details: dict[str, Any] = {}
    fails(
        checks.test_coreml_program_parity,
        lambda n: off,
        inputs,
        expected,
        model_spec,
        TolerancePolicy(),
        "confidence",
        7,
        details,
    )
    assert details["engine"] == ENGINE and details["batch_size"] == 7
    assert (details["passed"], details["mismatches"], details["total"]) == (False, 28, 28)
    assert 9e-4 < details["max_abs_error"] < 1.1e-3
    strict = TolerancePolicy({"float32": (1e-6, 1e-6), "float16": (1e-3, 1e-3)})
    details.clear()
    message = fails(
        checks.test_coreml_program_parity,
        lambda n: off,
        inputs,
        expected,
        model_spec,
        strict,
        "confidence",
        7,
        details,
    )
    assert message.startswith("confidence: config.yaml asks for a looser tolerance than the verifier allows")
    assert details["tolerance"]["violation"] == message and "max_abs_error" not in details


def test_the_interpreter_agrees_with_onnxruntime(example_program: Any, example: Bundle) -> None:
    """Cross-check of the two engines on the golden windows: the interpreter's program against onnxruntime's
    models/model.onnx, within 1e-5 (fp32 both; measured ~3e-7), codes identical."""
    import numpy as np
    import onnxruntime as ort

    inputs, _ = golden(example)
    session = ort.InferenceSession(str(example.path("models/model.onnx")), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    want = dict(zip(names, session.run(None, {"imu_input": inputs}), strict=True))
    got = example_program.run({"imu_input": inputs})
    assert sorted(got) == sorted(want)
    np.testing.assert_array_equal(got["behavioral_codes"], want["behavioral_codes"])
    assert np.abs(got["confidence"].astype(np.float64) - want["confidence"]).max() <= 1e-5


# -- what the target says about it -------------------------------------------------------------------
def test_the_target_names_both_parity_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from conv2d_bundle.cli.targets import targets_cmd
    from conv2d_bundle.targets import get_target, ios

    target = ios.TARGET
    assert get_target("ios") is target
    more = target.describe()["more_parity"]
    assert more == [
        {
            "check": "test_coreml_program_parity",
            "runs_as": ENGINE,
            "executes": True,
            "reason": "executes here",
        }
    ]
    monkeypatch.setattr(ios, "installed", lambda module: False)
    assert target.interpreter_capability().as_dict() == {"executes": False, "reason": ios.NO_COREMLTOOLS}
    monkeypatch.undo()
    shown = CliRunner().invoke(targets_cmd, []).output
    assert f"  parity (test_coreml_program_parity): {ENGINE}: executes here\n" in shown
    assert "test_size, test_coreml_program_parity\n" in shown


def test_the_guide_says_where_each_parity_runs(example: Bundle) -> None:
    from conv2d_bundle.targets import get_target

    meta = copy.deepcopy(dict(example.metadata))
    guide = get_target("ios").guide(meta)
    assert (
        "through a numpy reference interpreter, not Apple's runtime (`test_coreml_program_parity`)" in guide
    )
    assert "Parity through `predict()`, Apple's runtime, can be checked on macOS only" in guide
    meta["formats"]["coreml"]["model_format"] = "neuralnetwork"
    assert "interpreter" not in get_target("ios").guide(meta)
