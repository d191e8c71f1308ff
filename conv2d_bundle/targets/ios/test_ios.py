"""iOS checks: the Core ML model is complete, loads, has the configured signature, spec version and metadata,
and its ML Program computes the golden outputs. Its parity through ``predict()`` (Apple's runtime, macOS only)
is the shared check, ``conv2d_bundle/checks/test_targets.py``; ``test_coreml_program_parity`` here executes the
same comparison anywhere coremltools is installed, through the numpy reference interpreter of
``targets/ios/mil.py`` (the program and weights as converted, op by op per the MIL op definitions; not Apple's
kernels, compute units or compiled model).

coremltools opens packages read-write (it rewrites ``Manifest.json`` on every load), so every check that
hands the model to coremltools works on a temporary copy: verifying never writes into the bundle, which may
be read-only on a device. The structure and size checks need nothing but the files. torch is never imported
here (coremltools may import it for itself).
"""

from __future__ import annotations

import json
import platform
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.errors import BundleError, BundleWarning
from conv2d_bundle.targets.ios import INTERPRETER, NO_COREMLTOOLS

pytestmark = pytest.mark.conv2d_target("ios")

SIZE_WARNING_BYTES = 100 * 2**20
#: (model format, minimum deployment target) -> the specificationVersion coremltools writes for it
SPEC_VERSIONS = {
    ("neuralnetwork", "iOS13"): 4,
    ("neuralnetwork", "iOS14"): 5,
    ("mlprogram", "iOS15"): 6,
    ("mlprogram", "iOS16"): 7,
    ("mlprogram", "iOS17"): 8,
    ("mlprogram", "iOS18"): 9,
}
SPEC_TYPES = {"mlprogram": "mlProgram", "neuralnetwork": "neuralNetwork"}
ARRAY_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32"}
#: what a source output may become in Core ML (which has no int64): integer codes int32 or float32
ACCEPTED_DTYPES = {True: ("int32", "float32"), False: ("float32",)}
METADATA_FIELDS = ("author", "version", "short_description", "exp_hash", "labels", "descriptions")


class CoreMLFiles:
    """Where the bundle's Core ML model is, as declared by metadata.json and config.yaml."""

    def __init__(self, bundle: Any) -> None:
        self.info: Mapping[str, Any] = bundle.format_info("coreml")
        options = bundle.config.coreml_options
        self.target = str(self.info.get("minimum_deployment_target") or options["minimum_deployment_target"])
        self.model_format = str(
            self.info.get("model_format")
            or ("neuralnetwork" if self.target in ("iOS13", "iOS14") else "mlprogram")
        )
        default = (
            "models/coreml.mlmodel" if self.model_format == "neuralnetwork" else "models/coreml.mlpackage"
        )
        self.relpath = str(self.info.get("file") or default)
        self.root = Path(bundle.bundle_dir)
        self.path = self.root / self.relpath
        self.is_package = self.relpath.endswith(".mlpackage")

    def why_missing(self) -> str:
        if not self.info:
            return "metadata.json has no formats.coreml: the bundle was created without Core ML"
        if self.info.get("status") != "built":
            return (
                f"formats.coreml is {self.info.get('status')!r}: {self.info.get('reason', 'no reason given')}"
            )
        return "formats.coreml says built, but the file is gone"

    def spec_relpath(self) -> str:
        """The model spec inside the package (from Manifest.json's root item), or the .mlmodel itself."""
        if not self.is_package:
            return self.relpath
        manifest = self.read_manifest()
        try:
            item = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]
            return f"{self.relpath}/Data/{item['path']}"
        except (KeyError, TypeError) as exc:
            pytest.fail(f"{self.relpath}/Manifest.json: the root model item is not listed ({exc})")

    def read_manifest(self) -> dict[str, Any]:
        path = self.path / "Manifest.json"
        if not path.is_file():
            pytest.fail(f"{self.relpath}/Manifest.json is missing: not a loadable Core ML package")
        try:
            manifest = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            pytest.fail(f"{self.relpath}/Manifest.json is not valid JSON: {exc}")
        if not isinstance(manifest, dict):
            pytest.fail(f"{self.relpath}/Manifest.json: expected a JSON object")
        return manifest


def _dtype_name(array_type: Any) -> str:
    name = str(type(array_type).ArrayDataType.Name(array_type.dataType))
    return ARRAY_DTYPES.get(name, name.lower())


# -- fixtures (module-level: they belong to these checks alone) -------------------------------------
@pytest.fixture(scope="session")
def coreml_files(bundle: Any) -> CoreMLFiles:
    return CoreMLFiles(bundle)


@pytest.fixture(scope="session")
def coreml_path(coreml_files: CoreMLFiles) -> Path:
    """The model file or package; fails the checks that use it, saying why, when it is missing."""
    if not coreml_files.path.exists():
        pytest.fail(f"the Core ML model {coreml_files.relpath} is missing ({coreml_files.why_missing()})")
    return coreml_files.path


@pytest.fixture(scope="session")
def coremltools() -> Any:
    """coremltools, imported with its start-up noise routed to the debug log; skips the check if absent."""
    from conv2d_bundle.targets.ios.export import _converter_output_to_log  # one implementation of the routing

    try:
        with _converter_output_to_log():
            import coremltools
    except ImportError:
        pytest.skip(NO_COREMLTOOLS)
    return coremltools


@pytest.fixture(scope="session")
def coreml_spec(coreml_files: CoreMLFiles, coreml_path: Path, coremltools: Any) -> Any:
    """The parsed model spec (``Model_pb2.Model``), read from the bundle's bytes (reading writes nothing)."""
    from google.protobuf.message import DecodeError  # protobuf comes with coremltools

    relpath = coreml_files.spec_relpath()
    try:
        data = (coreml_files.root / relpath).read_bytes()
    except OSError as exc:
        pytest.fail(f"{relpath} cannot be read: {exc.strerror or exc}")
    spec = coremltools.proto.Model_pb2.Model()
    try:
        spec.ParseFromString(data)
    except DecodeError as exc:
        pytest.fail(f"{relpath} cannot be parsed ({len(data)} bytes; truncated or corrupt?): {exc}")
    if not spec.description.input and not spec.description.output:
        pytest.fail(f"{relpath} parses to a spec without inputs or outputs (truncated or corrupt?)")
    return spec


@pytest.fixture(scope="session")
def coreml_model(coreml_files: CoreMLFiles, coreml_path: Path, coremltools: Any) -> Iterator[Any]:
    """``coremltools.models.MLModel`` opened from a temporary copy (compiled for prediction on macOS only)."""
    from conv2d_bundle.targets.ios.runner import open_model

    try:
        model, tmp = open_model(coreml_path, compile_for_prediction=platform.system() == "Darwin")
    except BundleError as exc:
        pytest.fail(f"{coreml_files.relpath}: {exc}")
    with tmp:
        yield model


#: what runs the ML Program for test_coreml_program_parity: the golden windows' first ``n`` rows -> outputs
ProgramOutputs = Callable[[int], Mapping[str, Any]]


def lacks_ops(ops: list[str]) -> str:
    """The skip reason of a program the interpreter cannot run: every op it lacks, named."""
    return f"not verified: the ML Program reference interpreter lacks op{'s' if len(ops) > 1 else ''} {', '.join(ops)}"


def read_program(files: CoreMLFiles, path: Path) -> Any:
    """The bundle's ML Program as the reference interpreter reads it (``mil.Program``, from the package's bytes:
    nothing is written). Skips, as not verified, a neuralnetwork model and a program with ops the interpreter
    lacks; fails for a package it cannot read."""
    if files.model_format != "mlprogram":
        pytest.skip(
            f"not verified: {files.relpath} is a {files.model_format} model, not an ML Program: the reference "
            "interpreter runs ML Programs only (its parity needs predict() on macOS)"
        )
    from conv2d_bundle.targets.ios import mil
    from conv2d_bundle.targets.ios.export import _converter_output_to_log

    try:
        with _converter_output_to_log():
            program = mil.load_program(path)
    except mil.UnsupportedOpError as exc:  # a package whose spec holds no ML Program
        pytest.skip(lacks_ops([exc.op]))
    except BundleError as exc:
        pytest.fail(f"{files.relpath}: the ML Program reference interpreter cannot read it: {exc}")
    missing = program.unsupported_ops()
    if missing:
        pytest.skip(lacks_ops(missing))
    return program


def program_runner(program: Any, input_name: str, inputs: Any, relpath: str) -> ProgramOutputs:
    """The program's outputs on the first ``n`` rows of ``inputs``, each ``n`` computed once. Outputs keep the
    program's dtypes (integer codes int32), as ``predict()``'s do: the comparison judges integers by value."""
    from conv2d_bundle.targets.ios import mil

    cache: dict[int, Mapping[str, Any]] = {}

    def outputs(n: int) -> Mapping[str, Any]:
        if n not in cache:
            try:
                cache[n] = program.run({input_name: inputs[:n]})
            except mil.UnsupportedOpError as exc:  # a form of an op met only when it runs (cast<int64>, ...)
                pytest.skip(lacks_ops([exc.op]))
            except BundleError as exc:
                pytest.fail(f"{relpath}, batch {n}: the ML Program reference interpreter failed: {exc}")
        return cache[n]

    return outputs


@pytest.fixture(scope="session")
def coreml_program(coreml_files: CoreMLFiles, coreml_path: Path, coremltools: Any) -> Any:
    """The bundle's ML Program, read once by the reference interpreter (skips when it cannot run it)."""
    return read_program(coreml_files, coreml_path)


@pytest.fixture(scope="session")
def program_outputs(
    coreml_program: Any, coreml_files: CoreMLFiles, model_spec: Any, reference_inputs: Any
) -> ProgramOutputs:
    """The interpreter's outputs on the first ``n`` golden windows, each batch size run once per session."""
    return program_runner(coreml_program, model_spec.input_name, reference_inputs, coreml_files.relpath)


# -- checks -----------------------------------------------------------------------------------------
def test_package_structure(coreml_files: CoreMLFiles, coreml_path: Path, check_details: dict) -> None:
    """An .mlpackage has Manifest.json, every item it lists, the spec and (ML Program) the weights;
    a neuralnetwork model is one non-empty .mlmodel file."""
    rel = coreml_files.relpath
    if not coreml_files.is_package:
        check_details["layout"] = "mlmodel file"
        if coreml_files.model_format != "neuralnetwork":
            pytest.fail(f"{rel}: a {coreml_files.model_format} model must be an .mlpackage")
        if not coreml_path.is_file() or coreml_path.stat().st_size == 0:
            pytest.fail(f"{rel} is not a non-empty file")
        return
    check_details["layout"] = "mlpackage"
    if not coreml_path.is_dir():
        pytest.fail(f"{rel} is not a directory (an .mlpackage is a folder)")
    manifest = coreml_files.read_manifest()
    entries = manifest.get("itemInfoEntries")
    if not isinstance(entries, dict) or manifest.get("rootModelIdentifier") not in entries:
        pytest.fail(f"{rel}/Manifest.json: rootModelIdentifier does not name an item of itemInfoEntries")
    missing = sorted(
        str(item.get("path") if isinstance(item, dict) else item)  # a non-object item is named as it is
        for item in entries.values()
        if not isinstance(item, dict) or not (coreml_path / "Data" / str(item.get("path"))).exists()
    )
    if missing:
        pytest.fail(f"{rel}: items listed in Manifest.json are missing under Data/: {missing}")
    spec = coreml_path / "Data" / entries[manifest["rootModelIdentifier"]]["path"]
    if not spec.is_file() or spec.stat().st_size == 0:
        pytest.fail(f"{rel}: the model spec {spec.relative_to(coreml_path)} is not a non-empty file")
    if coreml_files.model_format == "mlprogram":
        weights = spec.parent / "weights"
        if not weights.is_dir() or not any(p.is_file() and p.stat().st_size for p in weights.iterdir()):
            pytest.fail(
                f"{rel}: an ML Program needs its weights: {weights.relative_to(coreml_path)}/ is empty"
            )
    check_details["items"] = sorted(str(item["path"]) for item in entries.values())


def test_coreml_loads(coreml_model: Any, coreml_files: CoreMLFiles, check_details: dict) -> None:
    """coremltools opens the model (from a temporary copy) and returns a spec."""
    spec = coreml_model.get_spec()
    check_details["spec_type"] = spec.WhichOneof("Type")
    if spec.WhichOneof("Type") is None:
        pytest.fail(f"coremltools loaded {coreml_files.relpath} but its spec holds no model")


def test_specification_version(coreml_spec: Any, coreml_files: CoreMLFiles, check_details: dict) -> None:
    """The spec's version and model type are what the declared minimum iOS version allows."""
    ios = coreml_files.info.get("minimum_ios_version")
    target = f"iOS{str(ios).split('.')[0]}" if ios else coreml_files.target
    expected = SPEC_VERSIONS.get((coreml_files.model_format, target))
    version, kind = coreml_spec.specificationVersion, coreml_spec.WhichOneof("Type")
    check_details.update(specification_version=version, minimum_ios=target, model_type=kind)
    if expected is None:
        pytest.fail(f"{coreml_files.relpath}: no {coreml_files.model_format} model exists for {target}")
    if version != expected:
        pytest.fail(
            f"{coreml_files.relpath} specificationVersion {version} != {expected} "
            f"(a {coreml_files.model_format} model for minimum {target})"
        )
    declared = coreml_files.info.get("specification_version")
    if declared is not None and declared != version:
        pytest.fail(f"metadata.json formats.coreml.specification_version {declared} != the spec's {version}")
    if kind != SPEC_TYPES[coreml_files.model_format]:
        pytest.fail(
            f"{coreml_files.relpath} holds a {kind} model, metadata.json says {coreml_files.model_format}"
        )


def _input(coreml_spec: Any, model_spec: Any, relpath: str) -> Any:
    __tracebackhide__ = True
    inputs = {i.name: i for i in coreml_spec.description.input}
    if model_spec.input_name not in inputs:
        pytest.fail(f"{relpath} inputs {sorted(inputs)} != expected [{model_spec.input_name}]")
    return inputs[model_spec.input_name]


def test_input_name(coreml_spec: Any, model_spec: Any, coreml_files: CoreMLFiles) -> None:
    names = [i.name for i in coreml_spec.description.input]
    if names != [model_spec.input_name]:
        pytest.fail(f"{coreml_files.relpath} inputs {names} != expected [{model_spec.input_name}]")


def test_input_type(coreml_spec: Any, model_spec: Any, coreml_files: CoreMLFiles) -> None:
    feature = _input(coreml_spec, model_spec, coreml_files.relpath)
    if feature.type.WhichOneof("Type") != "multiArrayType":
        pytest.fail(
            f"input {model_spec.input_name} is a {feature.type.WhichOneof('Type')}, expected a multiarray"
        )
    dtype = _dtype_name(feature.type.multiArrayType)
    if dtype != "float32":
        pytest.fail(f"input {model_spec.input_name} of {coreml_files.relpath} is {dtype}, expected float32")


def test_input_shape(
    coreml_spec: Any, model_spec: Any, coreml_files: CoreMLFiles, bundle: Any, check_details: dict
) -> None:
    """Fixed non-batch axes equal to the config's input_shape; a flexible batch over export.coreml.batch_range."""
    array = _input(coreml_spec, model_spec, coreml_files.relpath).type.multiArrayType
    shape = list(array.shape)
    low, high = bundle.config.coreml_options["batch_range"]
    expected = list(model_spec.input_shape[1:])
    ranges = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
    check_details.update(shape=shape, ranges=ranges, batch_range=[low, high])
    if len(shape) != len(model_spec.input_shape) or shape[1:] != expected:
        pytest.fail(
            f"input {model_spec.input_name} shape {shape} != expected [N, {', '.join(map(str, expected))}]"
        )
    if not ranges:
        if low == high == shape[0]:
            return
        pytest.fail(
            f"input {model_spec.input_name}: the batch is fixed at {shape[0]}, expected {low}..{high}"
        )
    if ranges[0] != (low, high):
        pytest.fail(
            f"input {model_spec.input_name}: batch range {ranges[0][0]}..{ranges[0][1]} != {low}..{high}"
        )
    fixed = [(d, d) for d in expected]
    if ranges[1:] != fixed:
        pytest.fail(
            f"input {model_spec.input_name}: non-batch axes are flexible {ranges[1:]}, expected {fixed}"
        )


def test_output_names(coreml_spec: Any, model_spec: Any, coreml_files: CoreMLFiles) -> None:
    names = [o.name for o in coreml_spec.description.output]
    if sorted(names) != sorted(model_spec.output_names):
        pytest.fail(f"{coreml_files.relpath} outputs {names} != expected {list(model_spec.output_names)}")


def test_output_type(
    coreml_spec: Any, model_spec: Any, coreml_files: CoreMLFiles, output_name: str, check_details: dict
) -> None:
    """Core ML has no int64: integer codes come out int32 (ML Program) or float32 (neuralnetwork)."""
    outputs = {o.name: o for o in coreml_spec.description.output}
    if output_name not in outputs:
        pytest.fail(f"{coreml_files.relpath} has no output {output_name} (has {sorted(outputs)})")
    spec = model_spec.output(output_name)
    feature = outputs[output_name]
    if feature.type.WhichOneof("Type") != "multiArrayType":
        pytest.fail(f"output {output_name} is a {feature.type.WhichOneof('Type')}, expected a multiarray")
    dtype = _dtype_name(feature.type.multiArrayType)
    accepted = ACCEPTED_DTYPES[spec.is_integer]
    check_details.update(coreml_dtype=dtype, source_dtype=spec.dtype)
    if dtype not in accepted:
        pytest.fail(
            f"output {output_name} of {coreml_files.relpath} is {dtype}, expected {' or '.join(accepted)} "
            f"(source {spec.dtype})"
        )
    declared = coreml_files.info.get("codes_dtype")
    if spec.kind == "codes" and declared is not None and declared != dtype:
        pytest.fail(
            f"output {output_name} is {dtype}, metadata.json formats.coreml.codes_dtype says {declared}"
        )


def _metadata_problem(field: str, spec: Any, metadata: Any, bundle: Any) -> str | None:
    description = spec.description
    meta = description.metadata
    user = dict(meta.userDefined)
    if field == "author":
        return None if meta.author else "author is empty"
    if field == "version":
        want = metadata.get("system_version")
        return None if meta.versionString == want else f"version {meta.versionString!r} != {want!r}"
    if field == "short_description":
        return None if meta.shortDescription else "short description is empty"
    if field == "exp_hash":
        want = metadata.get("exp_hash")
        got = user.get("exp_hash")
        return None if got == want else f"user-defined exp_hash {got!r} != metadata.json {want!r}"
    if field == "labels":
        try:
            labels = json.loads(user.get("labels", "null"))
        except ValueError:
            labels = user.get("labels")
        want = [bundle.label_map[str(i)] for i in range(len(bundle.label_map))]
        return None if labels == want else f"user-defined labels {labels!r} != label_map.json {want!r}"
    undescribed = [f.name for f in (*description.input, *description.output) if not f.shortDescription]
    return f"inputs/outputs without a description: {undescribed}" if undescribed else None


@pytest.mark.parametrize("field", METADATA_FIELDS)
def test_model_metadata(
    coreml_spec: Any, metadata: Any, bundle: Any, coreml_files: CoreMLFiles, field: str
) -> None:
    problem = _metadata_problem(field, coreml_spec, metadata, bundle)
    if problem:
        pytest.fail(f"{coreml_files.relpath} metadata: {problem}")


def test_size(coreml_path: Path, coreml_files: CoreMLFiles, check_details: dict) -> None:
    files = [coreml_path] if coreml_path.is_file() else [p for p in coreml_path.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    check_details.update(size_bytes=size, size_mb=round(size / 2**20, 3))
    if size > SIZE_WARNING_BYTES:
        warnings.warn(
            BundleWarning(
                f"{coreml_files.relpath} is {size / 2**20:.1f} MB (> {SIZE_WARNING_BYTES // 2**20} MB): "
                "large for an app download; consider quantized weights"
            ),
            stacklevel=1,
        )


def test_coreml_program_parity(
    program_outputs: ProgramOutputs,
    reference_inputs: Any,
    reference_outputs: Any,
    model_spec: Any,
    tolerance_policy: Any,
    output_name: str,
    batch_size: int,
    check_details: dict,
) -> None:
    """The golden outputs computed by the bundle's ML Program (its program and weights as converted), executed
    op by op by the numpy reference interpreter, not by Apple's runtime: integers exactly, floats within the
    verifier's tolerance policy, per output and parity batch size, as ``test_parity`` judges ``predict()``
    (which runs on macOS only)."""
    from conv2d_bundle.parity.figures import parity_item

    check_details["engine"] = INTERPRETER
    problem, stats = parity_item(
        model_spec,
        output_name,
        batch_size,
        reference_inputs,
        reference_outputs,
        program_outputs,
        tolerance_policy,
        check_details,
        produces_no="the ML Program computes no",
    )
    if problem:
        pytest.fail(problem)
    assert stats is not None  # no problem: the figures exist (for mypy)
    if not stats.passed:
        pytest.fail(f"ios program parity (reference interpreter), batch {batch_size}: {stats.failure()}")
