"""The verifier's tolerance policy: how far an export's outputs may drift from the golden ones.

The bundle under test does not choose its own tolerance. The verifier holds a policy: a cap per output
dtype (and optionally per output name); a bundle's config may ask for a *tighter* tolerance, never a looser
one. Integer outputs (codes) are always compared exactly.

Built-in caps, chosen from the field's float32 defaults:

- float32: atol 1e-4, rtol 1e-5. Optimum's ONNX validation uses atol 1e-5 and torch.testing float32
  1e-5 / 1.3e-6; Polygraphy prints abs 1e-5 / rel 1e-5; coremltools' own test helper allows atol 1e-4 /
  rtol 1e-5, the loosest of them, which Core ML's GPU paths need. The cap is the loosest a bundle may ask;
  the example config asks 1e-5 / 1e-5 (ONNX measured ~5e-7 off torch).
- float16: atol 1e-3, rtol 1e-3: half precision resolves ~9.8e-4 near 1 (torch.testing float16 rtol 1e-3).

``--tolerance-policy FILE`` (YAML or JSON) replaces the built-in caps::

    float32: {atol: 1.0e-4, rtol: 1.0e-5}
    float16: {atol: 1.0e-3, rtol: 1.0e-3}
    outputs:                 # optional, by output name; wins over the dtype
      confidence: {atol: 1.0e-5, rtol: 0}
    int8:                    # optional: what a quantized runtime (the HEF on a Hailo device, the DFC's
      min_code_agreement: 0.9    # quantized emulator) must keep; each key defaults to the built-in value
      min_argmax_agreement: 0.95
      min_psnr_db: 30        # every float output ...
      outputs:               # ... unless it has its own floor here, by output name
        logits: {min_psnr_db: 25}

Built-in int8 floors (:class:`Int8Policy`), for outputs of a quantized runtime against the golden float ones:
codes agree on at least 90% of the golden windows, the class argmax on at least 95%, and float outputs reach a
PSNR of 30 dB, Qualcomm AI Hub's "typically good" mark for device vs torch outputs (PSNR as in
:func:`conv2d_bundle.parity.figures.compare`). ``int8.outputs`` gives one output its own PSNR floor, higher or
lower; a policy file's lower floor is reported by :meth:`TolerancePolicy.looser_than` like any other figure.
The codes floor is well above what whole-graph int8 keeps (~35%) and just above what onnxruntime's int8 keeps with the FSQ tail in fp32 (87-89%, measured on the example model): the kit
keeps the latent at 16 bits, so a faithful device keeps more (the kit's own estimate for the example: 98.4%). A bundle's ``export.hailo.min_*`` values only warn at create time; they never gate here.

(YAML reads ``1e-5`` without a dot as text, not a number: write ``1.0e-5``, as config.yaml does.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conv2d_bundle.errors import ConfigError

BUILTIN = "built-in policy"
BUILTIN_CAPS: dict[str, tuple[float, float]] = {"float32": (1e-4, 1e-5), "float16": (1e-3, 1e-3)}
BUILTIN_INT8: dict[str, float] = {
    "min_code_agreement": 0.9,
    "min_argmax_agreement": 0.95,
    "min_psnr_db": 30.0,
}


@dataclass(frozen=True)
class Int8Policy:
    """The floors a quantized runtime's outputs must reach against the golden float outputs.

    ``outputs`` holds the per-output PSNR floors: output name -> (min_psnr_db, where it came from); an output
    not listed is held to ``min_psnr_db``."""

    min_code_agreement: float = BUILTIN_INT8["min_code_agreement"]
    min_argmax_agreement: float = BUILTIN_INT8["min_argmax_agreement"]
    min_psnr_db: float = BUILTIN_INT8["min_psnr_db"]
    source: str = BUILTIN
    outputs: Mapping[str, tuple[float, str]] = field(default_factory=dict)

    def psnr_floor(self, output: str) -> tuple[float, str]:
        """The PSNR floor (dB) one float output is held to, and where it came from: its own, else the general one."""
        if output in self.outputs:
            return self.outputs[output]
        return self.min_psnr_db, self.source

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "min_code_agreement": self.min_code_agreement,
            "min_argmax_agreement": self.min_argmax_agreement,
            "min_psnr_db": self.min_psnr_db,
            "source": self.source,
        }
        if self.outputs:  # only when set: a policy without them records (and digests) as it always did
            d["outputs"] = {name: {"min_psnr_db": floor} for name, (floor, _) in sorted(self.outputs.items())}
        return d


@dataclass(frozen=True)
class Tolerance:
    """What one output is compared with, and where each number came from."""

    output: str
    exact: bool
    atol: float
    rtol: float
    source: str  # who chose atol/rtol: the bundle's config (within the cap) or the policy
    cap_atol: float
    cap_rtol: float
    cap_source: str
    violation: str | None = None  # the bundle asked for more than the cap: the parity check fails

    def as_dict(self) -> dict[str, Any]:
        if self.exact:
            return {"exact": True, "source": self.source}
        d: dict[str, Any] = {
            "atol": self.atol,
            "rtol": self.rtol,
            "source": self.source,
            "cap": {"atol": self.cap_atol, "rtol": self.cap_rtol, "source": self.cap_source},
        }
        if self.violation:
            d["violation"] = self.violation
        return d


@dataclass(frozen=True)
class TolerancePolicy:
    caps: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(BUILTIN_CAPS))
    outputs: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    source: str = BUILTIN
    int8: Int8Policy = field(default_factory=Int8Policy)

    @classmethod
    def load(cls, path: str | Path) -> TolerancePolicy:
        """A policy file (YAML or JSON, read with the project's safe loader); ConfigError if malformed."""
        from conv2d_bundle.config import read_yaml

        data = read_yaml(Path(path), what="tolerance policy")
        if not isinstance(data, Mapping):
            raise ConfigError(f"tolerance policy {path}: expected a mapping of dtype: {{atol, rtol}}")
        unknown = sorted(set(data) - {*BUILTIN_CAPS, "outputs", "int8", "schema_version"})
        if unknown:
            raise ConfigError(
                f"tolerance policy {path}: unknown keys {unknown} (known: {sorted(BUILTIN_CAPS)}, outputs, int8)"
            )
        caps = {k: _pair(data[k], f"{path}: {k}") for k in BUILTIN_CAPS if k in data}
        outputs_data = data.get("outputs") or {}
        if not isinstance(outputs_data, Mapping):
            raise ConfigError(f"tolerance policy {path}: outputs: expected a mapping of name: {{atol, rtol}}")
        outputs = {str(k): _pair(v, f"{path}: outputs.{k}") for k, v in outputs_data.items()}
        source = f"--tolerance-policy {path}"
        return cls({**BUILTIN_CAPS, **caps}, outputs, source, _int8(data.get("int8"), path, source))

    def cap(self, name: str, dtype: str) -> tuple[float, float, str]:
        if name in self.outputs:
            return (*self.outputs[name], f"{self.source} (outputs.{name})")
        atol, rtol = self.caps.get(dtype, self.caps["float32"])
        return atol, rtol, f"{self.source} ({dtype})"

    def resolve(self, spec: Any) -> Tolerance:
        """The tolerance for one output spec (``config.OutputSpec``): the bundle's ask if within the cap."""
        cap_atol, cap_rtol, cap_source = self.cap(spec.name, spec.dtype)
        if spec.is_integer:
            return Tolerance(spec.name, True, 0.0, 0.0, "integers are compared exactly", 0, 0, cap_source)
        asked = (float(spec.atol), float(spec.rtol))
        looser = [
            f"{what} {value:g} > cap {cap:g}"
            for what, value, cap in (("atol", asked[0], cap_atol), ("rtol", asked[1], cap_rtol))
            if value > cap
        ]
        if looser:
            violation = (
                f"{spec.name}: config.yaml asks for a looser tolerance than the verifier allows "
                f"({', '.join(looser)}; {cap_source}): a bundle may only ask for tighter tolerances"
            )
            return Tolerance(
                spec.name, False, cap_atol, cap_rtol, cap_source, cap_atol, cap_rtol, cap_source, violation
            )
        return Tolerance(
            spec.name,
            False,
            asked[0],
            asked[1],
            f"config.yaml model.outputs.{spec.name} (within the cap)",
            cap_atol,
            cap_rtol,
            cap_source,
        )

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the numbers (caps, per-output caps, int8 floors), not of where they came from:
        two files with the same figures are the same policy."""
        return policy_digest(self.as_dict())

    @classmethod
    def from_dict(cls, data: Any) -> TolerancePolicy:
        """The policy a report or a piece of evidence recorded (:meth:`as_dict`); ConfigError if malformed."""
        if not isinstance(data, Mapping) or not isinstance(data.get("caps"), Mapping):
            raise ConfigError("recorded tolerance policy: expected a mapping with caps")
        caps = {str(k): _pair(v, f"recorded caps.{k}") for k, v in data["caps"].items()}
        if set(BUILTIN_CAPS) - set(caps):
            raise ConfigError(f"recorded tolerance policy: caps lack {sorted(set(BUILTIN_CAPS) - set(caps))}")
        outputs_data = data.get("outputs") or {}
        if not isinstance(outputs_data, Mapping):
            raise ConfigError("recorded tolerance policy: outputs is not a mapping")
        outputs = {str(k): _pair(v, f"recorded outputs.{k}") for k, v in outputs_data.items()}
        int8_data = data.get("int8")
        int8 = (
            _int8({k: v for k, v in int8_data.items() if k != "source"}, "recorded", "recorded")
            if isinstance(int8_data, Mapping)
            else Int8Policy()
        )
        return cls(caps, outputs, str(data.get("source", "recorded")), int8)

    def looser_than(self, gate: TolerancePolicy, output_names: Any = ()) -> list[str]:
        """Where this policy admits more than ``gate`` does: ``float32 atol 0.001 > 0.0001``, one item per
        figure (empty: at least as strict everywhere). Per-output caps are compared for the names either
        policy lists and for ``output_names``; per-output int8 PSNR floors for the names either policy lists
        (against the other's floor for that output: its own, else its general one)."""
        out = []
        for dtype in sorted(set(self.caps) | set(gate.caps)):
            mine, theirs = (
                self.caps.get(dtype, self.caps["float32"]),
                gate.caps.get(dtype, gate.caps["float32"]),
            )
            out += _looser(dtype, mine, theirs)
        for name in sorted({*self.outputs, *gate.outputs, *output_names}):
            for dtype in ("float32", "float16"):
                mine_t, theirs_t = self.cap(name, dtype)[:2], gate.cap(name, dtype)[:2]
                if name in self.outputs or name in gate.outputs:
                    out += _looser(f"outputs.{name} ({dtype})", mine_t, theirs_t)
        for key in ("min_code_agreement", "min_argmax_agreement", "min_psnr_db"):
            mine_f, theirs_f = getattr(self.int8, key), getattr(gate.int8, key)
            if mine_f < theirs_f:
                out.append(f"int8.{key} {mine_f:g} < {theirs_f:g}")
        for name in sorted({*self.int8.outputs, *gate.int8.outputs}):
            mine_f, theirs_f = self.int8.psnr_floor(name)[0], gate.int8.psnr_floor(name)[0]
            if mine_f < theirs_f:
                out.append(f"int8.outputs.{name}.min_psnr_db {mine_f:g} < {theirs_f:g}")
        return list(dict.fromkeys(out))

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "caps": {k: {"atol": a, "rtol": r} for k, (a, r) in sorted(self.caps.items())},
            "outputs": {k: {"atol": a, "rtol": r} for k, (a, r) in sorted(self.outputs.items())},
            "integers": "exact",
            "int8": self.int8.as_dict(),
        }


def policy_digest(recorded: Mapping[str, Any]) -> str:
    """The digest of a policy as :meth:`TolerancePolicy.as_dict` records it, ``source`` labels left out."""
    import hashlib

    from conv2d_bundle.bundle.digest import canonical_json

    figures = {k: v for k, v in recorded.items() if k != "source"}
    int8 = figures.get("int8")
    if isinstance(int8, Mapping):
        figures["int8"] = {k: v for k, v in int8.items() if k != "source"}
    return "sha256:" + hashlib.sha256(canonical_json(figures).encode("utf-8")).hexdigest()


def _looser(what: str, mine: tuple[float, float], gate: tuple[float, float]) -> list[str]:
    return [
        f"{what} {label} {a:g} > {b:g}"
        for label, a, b in (("atol", mine[0], gate[0]), ("rtol", mine[1], gate[1]))
        if a > b
    ]


def _pair(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, Mapping) or set(value) - {"atol", "rtol"} or not value:
        raise ConfigError(f"tolerance policy {where}: expected {{atol: number, rtol: number}}, got {value!r}")
    out = []
    for key in ("atol", "rtol"):
        v = value.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            hint = " (YAML reads 1e-5 as text: write 1.0e-5)" if isinstance(v, str) and _is_float(v) else ""
            raise ConfigError(f"tolerance policy {where}.{key}: expected a number >= 0, got {v!r}{hint}")
        out.append(float(v))
    return out[0], out[1]


def _int8(value: Any, path: str | Path, source: str) -> Int8Policy:
    """The ``int8:`` section: agreements are fractions in [0, 1], the PSNR floors finite numbers of dB."""
    if value is None:
        return Int8Policy()
    known = sorted({*BUILTIN_INT8, "outputs"})
    if not isinstance(value, Mapping) or not value or set(value) - set(known):
        raise ConfigError(
            f"tolerance policy {path}: int8: expected a mapping with some of {known}, got {value!r}"
        )
    floors = dict(BUILTIN_INT8)
    named = sorted(str(k) for k in value if k != "outputs")
    for key in named:
        v = _finite(value[key], f"tolerance policy {path}: int8.{key}")
        if key != "min_psnr_db" and not 0 <= v <= 1:
            raise ConfigError(
                f"tolerance policy {path}: int8.{key}: expected a fraction in [0, 1], got {value[key]!r}"
            )
        floors[key] = v
    if not named:
        floors_source = BUILTIN  # only per-output floors in the file: the general ones are all built in
    elif len(named) < len(BUILTIN_INT8):
        floors_source = f"{source} (int8: {', '.join(named)}; the rest built in)"
    else:
        floors_source = source
    return Int8Policy(
        floors["min_code_agreement"],
        floors["min_argmax_agreement"],
        floors["min_psnr_db"],
        floors_source,
        _int8_outputs(value.get("outputs"), path, source),
    )


def _int8_outputs(value: Any, path: str | Path, source: str) -> dict[str, tuple[float, str]]:
    """``int8.outputs``: ``name: {min_psnr_db: number}``, each floor labelled with where it came from."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"tolerance policy {path}: int8.outputs: expected a mapping of name: {{min_psnr_db: number}}, "
            f"got {value!r}"
        )
    out = {}
    for name, entry in value.items():
        where = f"int8.outputs.{name}"
        if not isinstance(entry, Mapping) or not entry:
            raise ConfigError(
                f"tolerance policy {path}: {where}: expected {{min_psnr_db: number}}, got {entry!r}"
            )
        unknown = sorted(str(k) for k in set(entry) - {"min_psnr_db"})
        if unknown:
            raise ConfigError(
                f"tolerance policy {path}: {where}: unknown keys {unknown} (known: min_psnr_db)"
            )
        floor = _finite(entry["min_psnr_db"], f"tolerance policy {path}: {where}.min_psnr_db")
        out[str(name)] = (floor, f"{source} ({where})")
    return out


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        hint = (
            " (YAML reads 1e-5 as text: write 1.0e-5)" if isinstance(value, str) and _is_float(value) else ""
        )
        raise ConfigError(f"{where}: expected a number, got {value!r}{hint}")
    return float(value)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
