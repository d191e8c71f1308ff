"""Core ML export with coremltools, written byte-reproducibly.

coremltools saves a different package on every run: ``Manifest.json`` gets random UUIDs, ``model.mlmodel``
stores its metadata map in hash order and embeds the conversion date. :func:`normalize_mlpackage` fixes
all three in place, in the form coremltools itself rewrites when it opens a package, so loading a
normalized package later changes no byte. coremltools and torch are imported only inside the functions.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import traceback
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conv2d_bundle.bundle import atomic
from conv2d_bundle.errors import ExportError, MissingExtraError

log = logging.getLogger(__name__)

MLPROGRAM_TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18")  # .mlpackage, specificationVersion >= 6
NEURALNETWORK_TARGETS = ("iOS13", "iOS14")  # .mlmodel, specificationVersion 4 / 5
#: user-defined metadata keys coremltools fills from the wall clock; dropped so that files are reproducible
WALL_CLOCK_METADATA_KEYS = ("com.github.apple.coremltools.conversion_date",)
#: namespace of the package item identifiers: uuid5(namespace, item path) replaces coremltools' uuid4
MANIFEST_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "conv2d-bundle:coreml:mlpackage-manifest")
_DTYPE_NAMES = {"INT32": "int32", "FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64"}


@dataclass(frozen=True)
class CoreMLExport:
    path: Path  # the .mlpackage dir or .mlmodel file written
    model_format: str  # "mlprogram" | "neuralnetwork"
    minimum_deployment_target: str  # "iOS15" | "iOS13" | ...
    specification_version: int
    output_dtypes: Mapping[str, str]  # each output's Core ML dtype (no int64: codes become int32 or float32)
    coremltools_version: str

    @property
    def codes_dtype(self) -> str:
        """What the first output became (the example's integer codes)."""
        return next(iter(self.output_dtypes.values()), "")


def export_coreml(
    model: Any,
    input_shape: tuple[int, ...],
    output_path: Path,
    *,
    input_name: str = "imu_input",
    output_names: Sequence[str] = ("behavioral_codes", "confidence"),
    batch_range: tuple[int, int] = (1, 64),
    minimum_deployment_target: str = "iOS15",
    metadata: Mapping[str, str] | None = None,
    author: str = "conv2d-bundle",
    version: str = "",
    short_description: str = "",
    input_descriptions: Mapping[str, str] | None = None,
    output_descriptions: Mapping[str, str] | None = None,
) -> CoreMLExport:
    """Trace ``model`` (a ``torch.nn.Module``, put in eval mode) and write it as Core ML.

    ``input_shape`` includes the batch dimension, which becomes flexible over ``batch_range``. iOS15+
    writes an ML Program (``.mlpackage``, FP32 compute); iOS13/14 the older neuralnetwork format
    (``.mlmodel``; an ``.mlpackage`` suffix is switched and the real path returned). Converter warnings
    and progress bars go to this module's logger at DEBUG. Not thread-safe: while converting, stderr and
    stdout are redirected and the ``coremltools`` logger is routed here.
    """
    output_path = Path(output_path)
    if minimum_deployment_target in MLPROGRAM_TARGETS:
        model_format, suffix = "mlprogram", ".mlpackage"
    elif minimum_deployment_target in NEURALNETWORK_TARGETS:
        model_format, suffix = "neuralnetwork", ".mlmodel"
        if output_path.suffix == ".mlpackage":
            output_path = output_path.with_suffix(suffix)
    else:
        raise ExportError(
            f"unknown Core ML deployment target {minimum_deployment_target!r}; accepted: "
            + ", ".join(NEURALNETWORK_TARGETS + MLPROGRAM_TARGETS)
        )
    if output_path.suffix != suffix:
        raise ExportError(f"a {model_format} Core ML model must be written to a {suffix} path: {output_path}")
    _check_arguments(
        input_shape, batch_range, input_name, output_names, metadata, input_descriptions, output_descriptions
    )

    with _converter_output_to_log():
        ct = _import_coremltools()
        import torch

        model.eval()
        low, high = batch_range
        example_shape = (min(max(2, low), high), *input_shape[1:])  # batch >= 2 keeps the batch flexible
        example = torch.randn(example_shape, generator=torch.Generator().manual_seed(0))
        try:
            with torch.no_grad():
                traced = torch.jit.trace(model, example)
            mlmodel = ct.convert(
                traced,
                inputs=[
                    ct.TensorType(
                        name=input_name, shape=(ct.RangeDim(low, high, default=low), *input_shape[1:])
                    )
                ],
                outputs=[ct.TensorType(name=name) for name in output_names],
                convert_to=model_format,
                minimum_deployment_target=getattr(ct.target, minimum_deployment_target),
                compute_precision=ct.precision.FLOAT32 if model_format == "mlprogram" else None,
            )
        except Exception as exc:  # tracing and conversion raise many unrelated types; all mean "failed"
            # free the converter's locals now: coremltools leaks a TemporaryDirectory whose finalizer would
            # otherwise warn (ResourceWarning) whenever this traceback dies, outside this block
            traceback.clear_frames(exc.__traceback__)
            raise ExportError(f"Core ML conversion failed: {exc}") from exc

    mlmodel.short_description, mlmodel.author, mlmodel.version = short_description, author, version
    for table, entries in (
        (mlmodel.input_description, input_descriptions),
        (mlmodel.output_description, output_descriptions),
        (mlmodel.user_defined_metadata, metadata),
    ):
        for key, text in (entries or {}).items():
            table[key] = text

    spec = mlmodel.get_spec()
    try:
        if model_format == "mlprogram":
            _save_package(mlmodel, output_path)
        else:
            atomic.write_bytes(output_path, normalize_mlmodel_spec(spec))
    except OSError as exc:
        raise ExportError(f"cannot write Core ML model {output_path}: {exc}") from exc
    dtypes = {}
    for out in spec.description.output:
        array = out.type.multiArrayType
        name = type(array).ArrayDataType.Name(array.dataType)
        dtypes[out.name] = _DTYPE_NAMES.get(name, name.lower())
    return CoreMLExport(
        output_path,
        model_format,
        minimum_deployment_target,
        spec.specificationVersion,
        {name: dtypes.get(name, "") for name in output_names},
        ct.__version__,
    )


def normalize_mlpackage(path: Path) -> None:
    """Make an ``.mlpackage`` byte-reproducible in place: stable item ids, deterministic spec, no date.

    Files become 0644 and directories 0755 (coremltools leaves ``model.mlmodel`` 0600 and ``weights/``
    0700, which another user on a device could not read). The weights are already reproducible.
    """
    manifest_path = Path(path) / "Manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = manifest["itemInfoEntries"]
        root_item = entries[manifest["rootModelIdentifier"]]["path"]
        new_ids = {old: str(uuid.uuid5(MANIFEST_NAMESPACE, item["path"])) for old, item in entries.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{path} is not a readable Core ML package: {exc}") from exc
    manifest["itemInfoEntries"] = {new_ids[old]: item for old, item in entries.items()}
    manifest["rootModelIdentifier"] = new_ids[manifest["rootModelIdentifier"]]

    spec_path = manifest_path.parent / "Data" / root_item
    with _converter_output_to_log():
        spec = _import_coremltools().proto.Model_pb2.Model()
    from google.protobuf.message import DecodeError  # protobuf comes with coremltools

    try:
        spec.ParseFromString(spec_path.read_bytes())
    except (OSError, DecodeError) as exc:
        raise ExportError(f"cannot read the Core ML spec {spec_path}: {exc}") from exc
    atomic.write_bytes(spec_path, normalize_mlmodel_spec(spec))
    # the exact form coremltools writes when it opens a package, so that a later load changes no byte
    atomic.write_text(manifest_path, json.dumps(manifest, indent=4, sort_keys=True) + "\n")
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


def normalize_mlmodel_spec(spec: Any) -> bytes:
    """Serialize a ``Model_pb2.Model`` deterministically (sorted maps), without wall-clock metadata.

    ``spec`` itself is left unchanged.
    """
    clean = type(spec)()
    clean.CopyFrom(spec)
    user_defined = clean.description.metadata.userDefined
    for key in WALL_CLOCK_METADATA_KEYS:
        user_defined.pop(key, None)
    data: bytes = clean.SerializeToString(deterministic=True)
    return data


def _save_package(mlmodel: Any, output_path: Path) -> None:
    """Save to a temporary sibling, normalize, then move into place (replacing an older export)."""
    output_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output_path.parent, prefix=f".{output_path.name}."))
    try:
        staged = staging / output_path.name
        mlmodel.save(str(staged))
        normalize_mlpackage(staged)
        if output_path.is_dir():
            shutil.rmtree(output_path)
        elif output_path.exists():
            output_path.unlink()
        os.replace(staged, output_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


#: torch's pytree logs a deprecation for each Enum that torchao (imported by coremltools) registers: a warning
#: to torchao's authors, printed into every create's progress display
_IMPORT_NOISE = "torch.utils._pytree"


def _import_coremltools() -> Any:
    noise = logging.getLogger(_IMPORT_NOISE)
    level = noise.level
    noise.setLevel(logging.ERROR)  # for the import only: the logger is torch's, put back as it was
    try:
        import coremltools
    except ImportError as exc:
        msg = "Core ML export needs coremltools: pip install 'conv2d-bundle[coreml]'"
        raise MissingExtraError(msg) from exc
    finally:
        noise.setLevel(level)
    return coremltools


def _check_arguments(
    input_shape: tuple[int, ...],
    batch_range: tuple[int, int],
    input_name: str,
    output_names: Sequence[str],
    metadata: Mapping[str, str] | None,
    input_descriptions: Mapping[str, str] | None,
    output_descriptions: Mapping[str, str] | None,
) -> None:
    if len(input_shape) < 2 or any(not isinstance(d, int) or d < 1 for d in input_shape):
        raise ExportError(f"input_shape must be (batch, ...) of positive ints, got {input_shape!r}")
    if len(batch_range) != 2 or not 1 <= batch_range[0] <= batch_range[1]:
        raise ExportError(f"batch_range must be (low, high) with 1 <= low <= high, got {batch_range!r}")
    if not output_names or len(set(output_names)) != len(output_names):
        raise ExportError(f"output_names must be non-empty and unique, got {list(output_names)}")
    for what, described, known in (
        ("input", input_descriptions, [input_name]),
        ("output", output_descriptions, list(output_names)),
    ):
        unknown = sorted(set(described or {}) - set(known))
        if unknown:
            raise ExportError(f"{what}_descriptions name unknown {what}s {unknown}; the model has {known}")
    bad = sorted(repr(k) for k, v in (metadata or {}).items() if not all(isinstance(x, str) for x in (k, v)))
    if bad:
        raise ExportError(f"Core ML metadata must map str to str; not so for {bad}")


CONVERTER_LOGGERS = ("coremltools", "torchao")


class _ToDebugLog(logging.Handler):
    """Re-log every record of a converter's logger tree on this module's logger at DEBUG."""

    def emit(self, record: logging.LogRecord) -> None:
        log.debug("%s %s: %s", record.name, record.levelname, record.getMessage())


@contextlib.contextmanager
def _converter_output_to_log() -> Iterator[None]:
    """Route converter noise to ``log`` at DEBUG while the block runs; restore everything afterwards.

    Warnings are recorded even where the process makes them errors (``catch_warnings`` restores the
    filters); the ``coremltools`` logger tree is forwarded, and ``torchao``'s (coremltools imports it where it
    is installed, as with the executorch extra, and it logs WARNINGs about its CUDA kernels); stdout/stderr go
    to a buffer (tqdm's bars: tqdm reads ``TQDM_DISABLE`` only at import, so no scoped switch exists).
    """
    loggers = [logging.getLogger(name) for name in CONVERTER_LOGGERS]
    handler, propagate = _ToDebugLog(), [lg.propagate for lg in loggers]
    buffer = io.StringIO()
    caught: list[warnings.WarningMessage] = []
    for lg in loggers:
        lg.addHandler(handler)
        lg.propagate = False
    try:
        with contextlib.ExitStack() as stack:
            caught = stack.enter_context(warnings.catch_warnings(record=True))
            warnings.simplefilter("always")
            stack.enter_context(contextlib.redirect_stderr(buffer))
            stack.enter_context(contextlib.redirect_stdout(buffer))
            yield
    finally:
        for lg, was in zip(loggers, propagate, strict=True):
            lg.removeHandler(handler)
            lg.propagate = was
        for w in caught:
            log.debug("%s: %s (%s:%s)", w.category.__name__, w.message, w.filename, w.lineno)
        # a progress bar redraws itself with "\r": keep each line's final state
        lines = [
            next((s for s in reversed(line.split("\r")) if s.strip()), "")
            for line in buffer.getvalue().split("\n")
        ]
        if any(lines):
            log.debug("converter output:\n%s", "\n".join(line for line in lines if line))


def build(ctx: Any) -> dict[str, Any]:
    """Export the staging bundle's model as Core ML; return its ``formats.coreml`` entry."""
    from conv2d_bundle.bundle import provenance

    spec, opts = ctx.config.model, ctx.config.coreml_options
    result = export_coreml(
        ctx.model,
        spec.input_shape,
        ctx.staging / "models" / "coreml.mlpackage",
        input_name=spec.input_name,
        output_names=spec.output_names,
        batch_range=tuple(opts["batch_range"]),
        minimum_deployment_target=opts["minimum_deployment_target"],
        metadata={**ctx.onnx_metadata(), "system_version": provenance.system_version()},
        version=provenance.system_version(),
        short_description=f"{spec.name}: {', '.join(spec.output_names)} from {spec.input_name}",
        input_descriptions={
            spec.input_name: f"float32 window [N, {', '.join(map(str, spec.input_shape[1:]))}]"
        },
        output_descriptions={o.name: f"{o.kind} ({o.dtype} in the source model)" for o in spec.outputs},
    )
    entry = {
        "status": "built",
        "file": result.path.relative_to(ctx.staging).as_posix(),
        "model_format": result.model_format,
        "minimum_deployment_target": result.minimum_deployment_target,
        "minimum_ios_version": result.minimum_deployment_target.removeprefix("iOS") + ".0",
        "specification_version": result.specification_version,
        "coremltools_version": result.coremltools_version,
        **ctx.size_entry(result.path),
    }
    codes = next((o.name for o in spec.outputs if o.kind == "codes"), None)
    if codes is not None:  # Core ML has no int64: what the integer codes became
        entry["codes_dtype"] = result.output_dtypes.get(codes, "")
    return entry
