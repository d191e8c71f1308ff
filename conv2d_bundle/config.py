"""The experiment configuration: read safely, validated up front, normalized for hashing.

Every problem is collected and reported in one :class:`ConfigError`
(``model.input_shape: expected 4 integers, got [1, 9, 2]; labels: ...``), so a user fixes a config in
one round trip and nothing is written when it is bad. numpy/yaml only: no torch here.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from conv2d_bundle.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

OUTPUT_DTYPES = ("int64", "int32", "float32", "float16")
OUTPUT_KINDS = ("codes", "probabilities", "logits", "tensor")
#: the kinds a classifier's output has: probabilities (rows sum to 1) or the raw logits before softmax; both are
#: judged as classes (top-1 agreement) besides their values
CLASS_KINDS = ("probabilities", "logits")
COREML_TARGETS = ("iOS13", "iOS14", "iOS15", "iOS16", "iOS17", "iOS18")
# The devices whose HEF compatibility rule is known (targets/hailo/hef.py): a HEF for anything else could be
# compiled but never checked against its device, so the config refuses it rather than pass it unchecked.
HAILO_ARCHS = ("hailo8", "hailo8l")
INPUTS_SUFFIXES = (".npy", ".npz")  # export.reference.inputs: real windows in the model's input layout
MAX_CONFIG_BYTES = 1 << 20  # a config is a page of YAML; 1 MiB is generous and bounds memory
MODEL_KEYS = ("architecture", "target", "name", "kwargs", "input_name", "input_shape", "outputs")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_MODULE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")  # a module's path in the model: encoder.0.conv
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

# What the built-in architecture looks like, so its config can stay short.
BUILTIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "conv2d_fsq": {
        "kwargs": {"in_channels": 9, "n_classes": 4, "levels": [8, 5, 5, 4], "width": 64},
        "input_name": "imu_input",
        "input_shape": [1, 9, 2, 100],
        "outputs": [
            {"name": "behavioral_codes", "dtype": "int64", "kind": "codes"},
            {"name": "confidence", "dtype": "float32", "kind": "probabilities"},
        ],
    }
}


@dataclass(frozen=True)
class OutputSpec:
    name: str
    dtype: str
    kind: str = "tensor"
    num_codes: int | None = None  # for kind == "codes": values lie in [0, num_codes)
    atol: float = 1e-5
    rtol: float = 1e-5

    @property
    def is_integer(self) -> bool:
        return self.dtype.startswith("int")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    architecture: str | None
    target: str | None
    kwargs: Mapping[str, Any]
    input_name: str
    input_shape: tuple[int, ...]
    outputs: tuple[OutputSpec, ...]
    fsq_levels: tuple[int, ...] | None = None

    @property
    def display_name(self) -> str:
        return self.target or self.architecture or self.name

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def output(self, name: str) -> OutputSpec:
        for o in self.outputs:
            if o.name == name:
                return o
        raise KeyError(name)

    @property
    def class_output(self) -> OutputSpec | None:
        return next((o for o in self.outputs if o.kind in CLASS_KINDS), None)


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated config. ``data`` is the normalized dict that ``config.yaml`` holds and the hash covers."""

    data: Mapping[str, Any]
    model: ModelSpec
    labels: tuple[str, ...]
    metrics: Mapping[str, float]
    formats: tuple[str, ...] | None = None  # None: every format this installation can build
    extras: Mapping[str, Any] = field(default_factory=dict)
    #: where relative paths in the config (export.hailo.calibration_data, export.reference.inputs) are resolved
    #: from: the config file's directory, or None (the working directory) for a config given as a mapping. Not
    #: in ``data``: the hash covers each path as written, so a checkout's location does not change EXP_HASH.
    base_dir: Path | None = field(default=None, compare=False)

    @property
    def onnx_opset(self) -> int:
        return int(self.data["export"]["onnx"]["opset"])

    @property
    def coreml_options(self) -> Mapping[str, Any]:
        return self.data["export"]["coreml"]

    @property
    def hailo_options(self) -> Mapping[str, Any]:
        return self.data["export"]["hailo"]

    @property
    def reference_options(self) -> Mapping[str, Any]:
        return self.data["export"]["reference"]


class _NoAliasLoader(yaml.SafeLoader):
    """``safe_load`` without anchors/aliases: an alias bomb expands to gigabytes from a few lines."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"YAML aliases are not allowed in a config (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)


def read_yaml(path: Path, *, what: str = "config") -> Any:
    """Parse a small YAML file safely; every failure is a ConfigError naming the file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} file not found: {path}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if not path.is_file():
        raise ConfigError(f"{what} {path} is not a file")
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{what} {path} is {size} bytes; the limit is {MAX_CONFIG_BYTES} (is it a config?)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{what} {path}: invalid YAML{where}: {problem}") from exc
    except RecursionError as exc:
        raise ConfigError(f"{what} {path}: nested too deeply") from exc


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML experiment config; its relative paths are relative to its directory."""
    p = Path(path)
    data = read_yaml(p)
    try:
        return parse_config(data, base_dir=p.absolute().parent)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def parse_config(data: Any, *, base_dir: Path | None = None) -> ExperimentConfig:
    """Validate a config mapping and return it normalized; all problems in one ConfigError.

    ``base_dir``: the directory relative paths in it are resolved from (default: the working directory).
    """
    return replace(_Validator().run(data), base_dir=base_dir)


def resolve_path(value: str | Path, base_dir: Path | None) -> Path:
    """A path from a config: ``~`` expanded, a relative one taken from ``base_dir`` (if given)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() or base_dir is None else base_dir / path


@dataclass(frozen=True)
class ReferenceInputs:
    """The windows of ``export.reference.inputs``, read and checked: what the golden set is drawn from (and, when
    ``export.hailo.calibration_data`` is not given, the Hailo calibration set). ``sha256`` is the file's: hashed
    into EXP_HASH like the weights' and recorded in metadata.json (``model.reference.inputs_sha256``), so the
    hash can be recomputed from the bundle alone."""

    written: str  # the path as the config writes it (what config.yaml, and so the hash, holds)
    path: Path  # where it was read
    sha256: str
    windows: np.ndarray  # float32 [N, *model.input_shape[1:]], every value finite
    array: str | None = None  # the .npz member the windows came from

    @property
    def name(self) -> str:
        return Path(self.written).name


def load_reference_inputs(cfg: ExperimentConfig) -> ReferenceInputs | None:
    """Read ``export.reference.inputs`` (None when the config names no file): a ``.npy``, or a ``.npz`` holding
    an array named after the model's input (or a single array), of at least ``num_samples`` finite floating
    windows in the model's input layout; cast to float32. Every problem is one ConfigError naming the file.
    The bytes are read once: the sha256 is of exactly what was loaded."""
    written = cfg.reference_options.get("inputs")
    if written is None:
        return None
    import hashlib
    import io
    import zipfile
    import zlib

    import numpy as np

    path = resolve_path(str(written), cfg.base_dir)
    where = f"export.reference.inputs {path}"
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{where}: file not found") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{where}: is a directory, not a .npy or .npz file") from exc
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    spec = cfg.model
    member: str | None = None
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                names = list(loaded.files)
                if spec.input_name in names:
                    member = spec.input_name
                elif len(names) == 1:
                    member = names[0]
                else:
                    raise ConfigError(
                        f"{where}: holds arrays {names}, none named {spec.input_name!r} (the model's input): "
                        "name the windows so, or keep one array"
                    )
                array = loaded[member]
        else:
            array = loaded
    except ConfigError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{where}: cannot read a .npy or .npz array: {message}") from exc
    if not isinstance(array, np.ndarray):  # pragma: no cover - np.load gives arrays or an NpzFile
        raise ConfigError(f"{where}: not a numpy array")
    what = f"{where}{f' [{member}]' if member else ''}"
    if not np.issubdtype(array.dtype, np.floating):
        raise ConfigError(
            f"{what}: dtype {array.dtype}, expected floating point windows (float32; float16 and float64 are cast)"
        )
    chw = tuple(spec.input_shape[1:])
    if array.ndim != len(spec.input_shape) or tuple(array.shape[1:]) != chw:
        hint = ""
        if array.ndim == len(spec.input_shape) and sorted(array.shape[1:]) == sorted(chw):
            hint = "; the same sizes in another order: give the windows in the model's layout"
        raise ConfigError(
            f"{what}: shape {list(array.shape)}, expected [N, {', '.join(map(str, chw))}] "
            f"(model.input_shape but the batch){hint}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        windows = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(windows).reshape(windows.shape[0], -1).all(axis=1)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        why = (
            "NaN or infinite values"
            if not np.isfinite(array[first]).all()
            else "values beyond float32's range"
        )
        raise ConfigError(f"{what}: {why} in {int((~finite).sum())} window(s) (the first: row {first})")
    need = int(cfg.reference_options["num_samples"])
    if windows.shape[0] < need:
        raise ConfigError(
            f"{what}: {windows.shape[0]} windows, fewer than export.reference.num_samples ({need})"
        )
    return ReferenceInputs(str(written), path, hashlib.sha256(data).hexdigest(), windows, member)


class _Validator:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.explained: set[str] = set()  # keys a misspelling already accounts for: no follow-up errors

    def bad(self, where: str, message: str) -> None:
        if any(where == e or where.startswith(f"{e}.") for e in self.explained):
            return  # "model.input_shape: expected 4 integers" only follows from "modle.input_shape"
        self.problems.append(f"{where}: {message}")

    def unknown_keys(self, where: str, mapping: Mapping[str, Any], known: Sequence[str], what: str) -> None:
        """Each unknown key once, with the closest known one; a misspelt key explains its missing twin."""
        prefix = f"{where}." if where else ""
        for key in mapping:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(sorted(known))}"
            self.bad(f"{prefix}{key}", f"unknown {what} ({hint})")
            if close and close[0] not in mapping:
                self.explained.add(f"{prefix}{close[0]}")

    def run(self, data: Any) -> ExperimentConfig:
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping at the top level, got {_describe(data)}")
        known = ("name", "model", "labels", "training", "metrics", "export", "data")
        self.unknown_keys("", data, known, "section")
        model_data = self.model(data.get("model"))
        labels = self.labels(data.get("labels"), model_data)
        metrics = self.metrics(data.get("metrics", {}))
        export, formats = self.export(data.get("export", {}))
        training = self.free_form("training", data.get("training", {}))
        extra_data = self.free_form("data", data.get("data", {}))
        if self.problems:
            raise ConfigError("; ".join(self.problems))
        normalized: dict[str, Any] = {
            "model": model_data,
            "labels": list(labels),
            "metrics": dict(metrics),
            "training": training,
            "export": export,
        }
        if data.get("name") is not None:
            normalized["name"] = str(data["name"])
        if extra_data:
            normalized["data"] = extra_data
        return ExperimentConfig(
            data=normalized,
            model=_model_spec(model_data),
            labels=labels,
            metrics=metrics,
            formats=formats,
        )

    # -- sections ---------------------------------------------------------------------------------
    def model(self, m: Any) -> dict[str, Any]:
        if not isinstance(m, Mapping):
            self.bad("model", f"required mapping, got {_describe(m)}")
            return {}
        self.unknown_keys("model", m, MODEL_KEYS, "key")
        arch, target = m.get("architecture"), m.get("target")
        if arch is None and target is None:
            self.bad(
                "model", "give model.architecture (built-in: conv2d_fsq) or model.target ('pkg.module:Class')"
            )
        if arch is not None and target is not None:
            self.bad("model", "give model.architecture or model.target, not both")
        if arch is not None and arch not in BUILTIN_DEFAULTS:
            self.bad(
                "model.architecture", f"unknown architecture {arch!r} (known: {', '.join(BUILTIN_DEFAULTS)})"
            )
            arch = None
        if target is not None and (not isinstance(target, str) or not _TARGET.match(target)):
            self.bad("model.target", f"expected 'package.module:ClassName', got {target!r}")
            target = None
        defaults = BUILTIN_DEFAULTS.get(arch or "", {})
        out: dict[str, Any] = {"architecture": arch, "target": target}
        name = m.get("name", arch or (target.rpartition(":")[2] if isinstance(target, str) else "model"))
        out["name"] = self.name("model.name", name)
        kwargs = m.get("kwargs", {})
        if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
            self.bad("model.kwargs", f"expected a mapping of keyword arguments, got {_describe(kwargs)}")
            kwargs = {}
        out["kwargs"] = {**defaults.get("kwargs", {}), **self.free_form("model.kwargs", dict(kwargs))}
        out["input_name"] = self.name("model.input_name", m.get("input_name", defaults.get("input_name")))
        out["input_shape"] = self.shape(m.get("input_shape", defaults.get("input_shape")))
        out["outputs"] = self.outputs(m.get("outputs", defaults.get("outputs")), out["kwargs"], arch)

        return out

    def name(self, where: str, value: Any) -> str:
        if not isinstance(value, str) or not _NAME.match(value):
            self.bad(where, f"expected an identifier-like name, got {value!r}")
            return str(value)
        return value

    def shape(self, value: Any) -> list[int]:
        ok = (
            isinstance(value, list)
            and len(value) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        )
        if not ok:
            self.bad("model.input_shape", f"expected 4 integers, got {value!r}")
            return []
        return list(value)

    def outputs(self, value: Any, kwargs: Mapping[str, Any], arch: str | None) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not value:
            self.bad("model.outputs", f"expected a list of outputs ({{name, dtype}}), got {value!r}")
            return []
        result: list[dict[str, Any]] = []
        for i, o in enumerate(value):
            where = f"model.outputs[{i}]"
            if isinstance(o, str):
                o = {"name": o, "dtype": "float32"}
            if not isinstance(o, Mapping):
                self.bad(where, f"expected {{name, dtype}}, got {o!r}")
                continue
            entry: dict[str, Any] = {"name": self.name(f"{where}.name", o.get("name"))}
            dtype = o.get("dtype", "float32")
            if dtype not in OUTPUT_DTYPES:
                self.bad(f"{where}.dtype", f"expected one of {', '.join(OUTPUT_DTYPES)}, got {dtype!r}")
            entry["dtype"] = dtype
            kind = o.get("kind", "tensor")
            if kind not in OUTPUT_KINDS:
                self.bad(f"{where}.kind", f"expected one of {', '.join(OUTPUT_KINDS)}, got {kind!r}")
            entry["kind"] = kind
            for tol in ("atol", "rtol"):
                t = o.get(tol, 1e-5)
                if not _is_number(t) or not 0 <= float(t) < 1:
                    self.bad(f"{where}.{tol}", f"expected a number in [0, 1), got {t!r}")
                    t = 1e-5
                entry[tol] = float(t)
            if kind == "codes":
                levels = kwargs.get("levels") if arch == "conv2d_fsq" else None
                n = o.get("num_codes", math.prod(levels) if isinstance(levels, list) else None)
                if not isinstance(n, int) or n < 1:
                    self.bad(f"{where}.num_codes", f"codes outputs need a positive num_codes, got {n!r}")
                entry["num_codes"] = n
            result.append(entry)
        names = [e["name"] for e in result]
        if len(set(names)) != len(names):
            self.bad("model.outputs", f"duplicate names {names}")
        return result

    def labels(self, value: Any, model: Mapping[str, Any]) -> tuple[str, ...]:
        if isinstance(value, Mapping):
            if not all(
                (isinstance(k, int) and not isinstance(k, bool)) or (isinstance(k, str) and k.isdigit())
                for k in value
            ):
                self.bad("labels", "mapping keys must be class indices 0..N-1")
                return ()
            keys = sorted(int(k) for k in value)
            if keys != list(range(len(keys))):
                self.bad("labels", f"class indices must be 0..{len(keys) - 1} without gaps, got {keys}")
                return ()
            value = [value[k] if k in value else value[str(k)] for k in keys]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            self.bad("labels", f"expected a list of class names (or index: name), got {value!r}")
            return ()
        if len(set(value)) != len(value):
            self.bad("labels", "class names must be unique")
        n_classes = model.get("kwargs", {}).get("n_classes")
        if isinstance(n_classes, int) and n_classes != len(value):
            self.bad("labels", f"{len(value)} labels for a model with n_classes={n_classes}")
        return tuple(value)

    def metrics(self, value: Any) -> dict[str, float]:
        if not isinstance(value, Mapping):
            self.bad("metrics", f"expected a mapping of name: number, got {_describe(value)}")
            return {}
        out: dict[str, float] = {}
        for k, v in value.items():
            if not _is_number(v) or not math.isfinite(float(v)):
                self.bad(f"metrics.{k}", f"expected a finite number, got {v!r}")
            else:
                out[str(k)] = float(v)
        return out

    def export(self, value: Any) -> tuple[dict[str, Any], tuple[str, ...] | None]:
        if not isinstance(value, Mapping):
            self.bad("export", f"expected a mapping, got {_describe(value)}")
            value = {}
        from conv2d_bundle.targets import format_names

        # a target of its own (another package's, or executorch) keeps its options in export.<format>
        own = [f for f in format_names() if f not in ("onnx", "coreml", "hailo")]
        self.unknown_keys("export", value, ("formats", "onnx", "coreml", "hailo", "reference", *own), "key")
        formats = value.get("formats")
        if formats is not None:
            formats = tuple(parse_formats(formats, self))
        onnx = self.section("export.onnx", value.get("onnx"))
        opset = onnx.get("opset", 13)
        if not isinstance(opset, int) or isinstance(opset, bool) or not 11 <= opset <= 17:
            self.bad(
                "export.onnx.opset", f"expected an integer in 11..17 (TorchScript exporter), got {opset!r}"
            )
        coreml = self.section("export.coreml", value.get("coreml"))
        target = coreml.get("minimum_deployment_target", "iOS15")
        if target not in COREML_TARGETS:
            self.bad(
                "export.coreml.minimum_deployment_target", f"expected one of {', '.join(COREML_TARGETS)}"
            )
        batch_range = coreml.get("batch_range", [1, 64])
        if not (
            isinstance(batch_range, list)
            and len(batch_range) == 2
            and all(isinstance(b, int) for b in batch_range)
            and 1 <= batch_range[0] <= batch_range[1]
        ):
            self.bad("export.coreml.batch_range", f"expected [min, max] batch sizes, got {batch_range!r}")
        hailo = self.section("export.hailo", value.get("hailo"))
        hw_arch = hailo.get("hw_arch", "hailo8")
        if hw_arch not in HAILO_ARCHS:
            self.bad("export.hailo.hw_arch", f"expected one of {', '.join(HAILO_ARCHS)}, got {hw_arch!r}")
        ref = self.section("export.reference", value.get("reference"))
        self.unknown_keys("export.reference", ref, ("num_samples", "seed", "taps", "inputs"), "key")
        n, seed = ref.get("num_samples", 64), ref.get("seed", 0)
        if not isinstance(n, int) or not 8 <= n <= 4096:
            self.bad("export.reference.num_samples", f"expected an integer in 8..4096, got {n!r}")
        if not isinstance(seed, int):
            self.bad("export.reference.seed", f"expected an integer, got {seed!r}")
        taps = ref.get("taps")  # absent: the default taps, and the normalized config (so EXP_HASH) unchanged
        if taps is not None and not (
            isinstance(taps, list) and taps and all(isinstance(t, str) and _MODULE.match(t) for t in taps)
        ):
            self.bad(
                "export.reference.taps", f"expected a list of module names (encoder.conv1), got {taps!r}"
            )
        inputs = ref.get("inputs")  # absent: random golden windows, and the normalized config unchanged
        if inputs is not None and not (
            isinstance(inputs, str) and inputs.strip() and Path(inputs).suffix.lower() in INPUTS_SUFFIXES
        ):
            self.bad(
                "export.reference.inputs",
                f"expected the path of a .npy or .npz file of input windows, got {inputs!r}",
            )
        export: dict[str, Any] = {
            "onnx": {**onnx, "opset": opset},
            "coreml": {**coreml, "minimum_deployment_target": target, "batch_range": batch_range},
            "hailo": {**hailo, "hw_arch": hw_arch},
            "reference": {**ref, "num_samples": n, "seed": seed},
        }
        for name in own:
            if name in value:
                export[name] = self.section(f"export.{name}", value[name])
        if formats is not None:
            export["formats"] = list(formats)
        return self.free_form("export", export), formats

    def section(self, where: str, value: Any) -> dict[str, Any]:
        """An optional sub-mapping: absent is empty, anything but a mapping is a problem."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.bad(where, f"expected a mapping, got {_describe(value)}")
            return {}
        return {str(k): v for k, v in value.items()}

    def free_form(self, where: str, value: Any) -> Any:
        """Anything JSON can hold (it is hashed as canonical JSON)."""
        if isinstance(value, Mapping):
            return {str(k): self.free_form(f"{where}.{k}", v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.free_form(f"{where}[{i}]", v) for i, v in enumerate(value)]
        if isinstance(value, float) and not math.isfinite(value):
            self.bad(where, f"non-finite number {value!r}")
            return None
        if value is None or isinstance(value, str | int | float | bool):
            return value
        self.bad(where, f"unsupported value {_describe(value)} (use strings, numbers, lists, mappings)")
        return None


def parse_formats(value: Any, validator: _Validator | None = None) -> list[str]:
    """``"onnx,coreml"`` or a list -> known format names, in a stable order."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        items = [items]
    from conv2d_bundle.targets import format_names

    known = format_names()
    names = [str(x).strip().lower() for x in items if str(x).strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        msg = f"unknown format(s) {unknown or names} (known: {', '.join(known)})"
        if validator is None:
            raise ConfigError(f"formats: {msg}")
        validator.bad("export.formats", msg)
    return [f for f in known if f in names]


def _model_spec(m: Mapping[str, Any]) -> ModelSpec:
    levels = m["kwargs"].get("levels") if m["architecture"] == "conv2d_fsq" else None
    return ModelSpec(
        name=m["name"],
        architecture=m["architecture"],
        target=m["target"],
        kwargs=dict(m["kwargs"]),
        input_name=m["input_name"],
        input_shape=tuple(m["input_shape"]),
        outputs=tuple(OutputSpec(**o) for o in m["outputs"]),
        fsq_levels=tuple(levels) if levels else None,
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _describe(v: Any) -> str:
    return "nothing" if v is None else type(v).__name__
