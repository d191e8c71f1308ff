"""The Hailo compile kit (``models/hailo/``): device-part ONNX, calibration set, model script, compile script
and a README. Everything here runs without the Hailo software."""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conv2d_bundle.bundle import atomic
from conv2d_bundle.config import ReferenceInputs, resolve_path
from conv2d_bundle.errors import BundleWarning, ConfigError
from conv2d_bundle.targets.hailo import DEVICE_ONNX

log = logging.getLogger(__name__)
KIT_FILES = ("model.onnx", "calib_set.npy", "model_script.alls", "compile.sh", "README.md")
DEVICE_OUTPUTS = ("bounded_latent", "class_logits")
MIN_CALIBRATION = 64
RECOMMENDED_CALIBRATION = 1024
DEFAULT_CALIBRATION_SIZE = 256  # reference + synthetic windows: 1.8 MB for [9, 2, 100]


@dataclass(frozen=True)
class DeviceExport:
    path: Path
    split: bool  # True: device_forward + host post-processing; False: the whole model
    output_names: tuple[str, ...]
    end_node_names: tuple[str, ...]
    opset: int
    ir_version: int
    #: what simplified the file (``conv2d_bundle.targets.hailo.simplify``): library, version, op counts
    simplification: Mapping[str, Any] = field(default_factory=dict)


def net_name_for(model_name: str) -> str:
    """The ``--net-name`` of the kit: the model name as a Hailo-safe identifier."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", model_name).strip("_") or "model"
    return name if not name[0].isdigit() else f"net_{name}"


def export_device_onnx(
    model: Any, spec: Any, path: Path, *, opset: int, metadata: Mapping[str, str]
) -> DeviceExport:
    """Export the device part (batch 1, static shapes): ``device_forward`` when the model has one and the
    host knows its post-processing (FSQ levels), else the whole model with a BundleWarning; then simplify it
    (onnxslim: constants folded, every shape inferred at batch 1) and name its end nodes in the simplified
    graph."""
    import onnx
    import torch

    from conv2d_bundle.targets.hailo.simplify import simplify_device_onnx
    from conv2d_bundle.targets.onnx.export import export_onnx

    split = callable(getattr(model, "device_forward", None)) and spec.fsq_levels is not None
    if split:

        class _DevicePart(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: Any) -> Any:
                return self.inner.device_forward(x)

        module: Any = _DevicePart(model).eval()  # a fresh wrapper trains; export restores its flag
        names: tuple[str, ...] = DEVICE_OUTPUTS
    else:
        integer = [o.name for o in spec.outputs if o.is_integer]
        if integer:  # a float-only model has no tail the device cannot run: nothing to warn about
            warnings.warn(
                BundleWarning(
                    f"{type(getattr(model, 'inner', model)).__name__} has no device_forward (or no FSQ "
                    f"levels): the Hailo kit exports the whole model, whose integer outputs {integer} "
                    "(rounding, argmax) the Hailo parser may reject"
                ),
                stacklevel=2,
            )
        module, names = model, tuple(spec.output_names)
    shape = (1, *tuple(spec.input_shape)[1:])
    try:
        info = export_onnx(
            module,
            shape,
            path,
            input_name=spec.input_name,
            output_names=names,
            opset=opset,
            dynamic_batch=False,
            metadata=metadata,
        )
    finally:
        model.eval()
    # static everywhere, constants folded; the end nodes are named in the simplified graph
    simplified = simplify_device_onnx(path)
    proto = onnx.load(str(path))
    producers = {out: node.name or node.op_type for node in proto.graph.node for out in node.output}
    ends = tuple(producers.get(n, n) for n in names)
    return DeviceExport(path, split, names, ends, info.opset, proto.ir_version, simplified)


def run_device(path: Path, inputs: np.ndarray, input_name: str, label: str = "") -> dict[str, np.ndarray]:
    """Run a batch-1 device ONNX over ``inputs`` one window at a time; outputs stacked by name."""
    from conv2d_bundle.targets.onnx.runner import run, session

    sess = session(path, label)
    rows = [run(sess, input_name, inputs[i : i + 1]) for i in range(inputs.shape[0])]
    return {n: np.concatenate([r[n] for r in rows]) for n in (rows[0] if rows else {})}


def split_runner(path: Path, spec: Any, split: bool) -> Any:
    """The Hailo target's runner: device part in onnxruntime, then the host post-processing."""

    def runner(inputs: np.ndarray) -> dict[str, np.ndarray]:
        return host_outputs(run_device(path, inputs, spec.input_name, DEVICE_ONNX), spec, split)

    return runner


def host_outputs(device: Mapping[str, np.ndarray], spec: Any, split: bool) -> dict[str, np.ndarray]:
    """The configured outputs from the device outputs: FSQ codes and softmax on the host (numpy only)."""
    from conv2d_bundle.models.postprocess import fsq_codes, softmax

    if not split:
        return dict(device)
    out: dict[str, np.ndarray] = {}
    for o in spec.outputs:
        if o.kind == "codes":
            out[o.name] = fsq_codes(device["bounded_latent"], spec.fsq_levels).astype(o.dtype)
        elif o.kind == "probabilities":
            out[o.name] = softmax(device["class_logits"])
        elif o.kind == "logits":
            out[o.name] = np.asarray(device["class_logits"], dtype=np.float32)
    return out


def calibration_set(
    options: Mapping[str, Any],
    reference_inputs: np.ndarray,
    input_shape: Sequence[int],
    seed: int,
    *,
    base_dir: Path | None = None,
    real: ReferenceInputs | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """NHWC float32 calibration windows: the config's ``calibration_data`` (.npy of NCHW windows; a relative
    path is taken from ``base_dir``, the config file's directory) when given; else the real windows the golden
    set was drawn from (``real``: ``export.reference.inputs``), up to ``calibration_size`` of them (a seeded
    sample), topped up with synthetic ones only below the minimum, with a warning; else the golden inputs plus
    seeded synthetic windows, with a warning. The returned info says where the windows came from."""
    chw = tuple(int(d) for d in input_shape[1:])
    source = options.get("calibration_data")
    size = 0 if source else int(options.get("calibration_size", DEFAULT_CALIBRATION_SIZE))
    if source:
        path = resolve_path(str(source), base_dir)
        try:
            data = np.load(path, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"export.hailo.calibration_data {path}: cannot read a .npy: {exc}") from exc
        if data.ndim != 4 or tuple(data.shape[1:]) != chw:
            raise ConfigError(
                f"export.hailo.calibration_data {path}: shape {list(data.shape)}, expected [N, {', '.join(map(str, chw))}] (NCHW)"
            )
        if data.shape[0] < MIN_CALIBRATION:
            raise ConfigError(
                f"export.hailo.calibration_data {path}: {data.shape[0]} windows, at least {MIN_CALIBRATION} needed"
            )
        nchw = np.asarray(data, dtype=np.float32)
        if not np.isfinite(nchw).all():
            raise ConfigError(f"export.hailo.calibration_data {path}: holds NaN or infinite values")
        info: dict[str, Any] = {"source": "config", "path": str(source)}  # as written: as hashed
    elif size < MIN_CALIBRATION:
        raise ConfigError(f"export.hailo.calibration_size {size} < {MIN_CALIBRATION}")
    elif real is not None:
        rng = np.random.default_rng(seed + 7919)
        n = int(real.windows.shape[0])
        rows = np.sort(rng.permutation(n)[:size]) if n > size else np.arange(n)
        synthetic = max(MIN_CALIBRATION - rows.size, 0)
        nchw = np.concatenate(
            [real.windows[rows], rng.standard_normal((synthetic, *chw)).astype(np.float32)]
        ).astype(np.float32)
        info = {
            "source": "reference.inputs",
            "path": real.written,
            "sha256": real.sha256,
            "description": f"{rows.size} of the {n} windows of export.reference.inputs ({real.name})",
            "windows": int(rows.size),
            "synthetic": synthetic,
        }
        if synthetic:
            info["description"] += f" + {synthetic} random normal windows (seed {seed + 7919})"
            warnings.warn(
                BundleWarning(
                    f"Hailo calibration set: {info['description']}: fewer real windows than the "
                    f"{MIN_CALIBRATION} a calibration needs (give more, or export.hailo.calibration_data)"
                ),
                stacklevel=2,
            )
        else:
            log.info("Hailo calibration set: %s", info["description"])
    else:
        rng = np.random.default_rng(seed + 7919)
        extra = max(size - reference_inputs.shape[0], 0)
        synthetic_windows = rng.standard_normal((extra, *chw)).astype(np.float32)
        golden = reference_inputs[:size]
        nchw = np.concatenate([golden, synthetic_windows]).astype(np.float32)
        description = f"{golden.shape[0]} golden + {extra} random normal windows (seed {seed + 7919})"
        warnings.warn(
            BundleWarning(
                f"Hailo calibration set: {nchw.shape[0]} golden/synthetic windows ({description}); real windows "
                f"quantize better (set export.reference.inputs or export.hailo.calibration_data to a .npy of "
                f">= {RECOMMENDED_CALIBRATION} NCHW windows)"
            ),
            stacklevel=2,
        )
        info = {"source": "reference+synthetic", "seed": seed + 7919, "description": description}
    nhwc = np.ascontiguousarray(nchw.transpose(0, 2, 3, 1))
    info.update(shape=list(nhwc.shape), layout="NHWC", dtype="float32")
    return nhwc, info


def model_script(net_name: str, calib_size: int, split: bool) -> str:
    lines = [
        f"# Hailo model script for {net_name} (hailo optimize --model-script model_script.alls)",
        "# optimization level 2 with full-precision calibration; see the DFC user guide, 'Model Scripts'",
        "model_optimization_flavor(optimization_level=2, compression_level=0)",
        f"model_optimization_config(calibration, batch_size=8, calibset_size={calib_size})",
    ]
    if split:
        lines += [
            "# the bounded FSQ latent is rounded on the host: keep its output layer at 16 bits so the",
            "# quantization step stays far below the 0.5 rounding step",
            "quantization_param(output_layer1, precision_mode=a16_w16)",
        ]
    return "\n".join(lines) + "\n"


#: compile.sh's emulator step: the quantized HAR on the golden inputs through the DFC's quantized emulator
#: (``ClientRunner(har=...)``, ``runner.infer_context(InferenceContext.SDK_QUANTIZED)``, ``runner.infer(ctx,
#: NHWC array)``: float32 outputs, one per output layer in the HN's ``net_params.output_layers_order``; each
#: HN layer lists the ONNX nodes it came from as ``original_names``), saved by the kit's device-output names.
EMULATE_PY = """import json, os, sys
import numpy as np
from hailo_sdk_client import ClientRunner, InferenceContext

har, inputs, out = sys.argv[1:4]
by_node = json.loads(sys.argv[4])  # ONNX end node -> the kit's device output name
x = np.ascontiguousarray(np.load(inputs, allow_pickle=False).transpose(0, 2, 3, 1), dtype=np.float32)
runner = ClientRunner(har=har)
hn = runner.get_hn_dict()
names = []
for layer in hn["net_params"]["output_layers_order"]:
    hits = [by_node[n] for n in hn["layers"][layer].get("original_names", []) if n in by_node]
    if not hits:
        sys.exit(f"emulator: output layer {layer} comes from none of the end nodes {sorted(by_node)}")
    names.append(hits[0])
with runner.infer_context(InferenceContext.SDK_QUANTIZED) as ctx:
    got = runner.infer(ctx, x)
got = list(got) if isinstance(got, (list, tuple)) else [got]
if len(got) != len(names):
    sys.exit(f"emulator: {len(got)} outputs, the HN lists {len(names)}")
tmp = out + ".partial.npz"
np.savez(tmp, **{n: np.asarray(v, dtype=np.float32) for n, v in zip(names, got)})
os.replace(tmp, out)
print(f"emulator outputs: {out} ({', '.join(names)}, {x.shape[0]} golden windows)")
"""


def compile_script(
    net_name: str,
    hw_arch: str,
    input_name: str,
    end_nodes: Sequence[str],
    exp_hash: str,
    device_outputs: Sequence[str] = (),
) -> str:
    ends = " ".join(f"'{n}'" for n in end_nodes)
    mapping = json.dumps(dict(zip(end_nodes, device_outputs or end_nodes, strict=True)), sort_keys=True)
    return f"""#!/usr/bin/env bash
# Compile models/hailo/model.onnx into a HEF with the Hailo Dataflow Compiler 3.x (hailo_sdk_client).
# Usage: bash compile.sh [OUTPUT_DIR]   (default ./hailo_build; never inside the sealed bundle)
# Then:  conv2d pack attach-hef {exp_hash} OUTPUT_DIR/{net_name}.hef --emulator-outputs OUTPUT_DIR/emulator_outputs.npz
set -euo pipefail
KIT="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
OUT="$(mkdir -p "${{1:-hailo_build}}" && cd "${{1:-hailo_build}}" && pwd)"

hailo parser onnx "$KIT/model.onnx" --net-name {net_name} --hw-arch {hw_arch} \\
  --start-node-names '{input_name}' --end-node-names {ends} \\
  --har-path "$OUT/{net_name}.har" -y
hailo optimize "$OUT/{net_name}.har" --hw-arch {hw_arch} \\
  --calib-set-path "$KIT/calib_set.npy" --model-script "$KIT/model_script.alls" \\
  --output-har-path "$OUT/{net_name}_quantized.har"
# int8 evidence before the board: the quantized emulator on the bundle's golden inputs
python3 - "$OUT/{net_name}_quantized.har" "$KIT/../../reference/inputs.npy" "$OUT/emulator_outputs.npz" \\
  '{mapping}' <<'PY'
{EMULATE_PY}PY
hailo compiler "$OUT/{net_name}_quantized.har" --hw-arch {hw_arch} --output-dir "$OUT"

echo "HEF: $OUT/{net_name}.hef"
echo "next: conv2d pack attach-hef {exp_hash} $OUT/{net_name}.hef --emulator-outputs $OUT/emulator_outputs.npz"
"""


def _host_steps(spec: Any) -> list[tuple[str, str, str]]:
    """(output, what the host does, the numpy call) for each output the host computes after the device."""
    steps = []
    for o in spec.outputs:
        if o.kind == "codes":
            steps.append(
                (
                    o.name,
                    "`digits = rint(bounded_latent) + levels // 2` (round half to even), then "
                    f"`code = sum(digits * basis)` with `basis = cumprod([1, L0, L1, ...])` for levels "
                    f"{list(spec.fsq_levels)}",
                    f"fsq_codes(bounded_latent, {list(spec.fsq_levels)})",
                )
            )
        elif o.kind == "probabilities":
            steps.append((o.name, "`softmax(class_logits)` in float32", "softmax(class_logits)"))
        elif o.kind == "logits":
            steps.append(
                (o.name, "`class_logits` as the device computes them (nothing to do)", "class_logits")
            )
    return steps


def kit_readme(meta: Mapping[str, Any], spec: Any) -> str:
    outs = ", ".join(f"`{n}`" for n in meta["device_outputs"])
    integer = [o.name for o in spec.outputs if o.is_integer]
    if meta["split"]:
        steps = _host_steps(spec)
        numbered = "\n".join(f"{i}. `{name}`: {what}." for i, (name, what, _) in enumerate(steps, 1))
        calls = "\n".join(f"{name} = {call}" for name, _, call in steps)
        imports = ", ".join(sorted({call.split("(")[0] for _, _, call in steps}))
        host = f"""## Host post-processing (plain numpy: `conv2d_bundle.models.postprocess`)

The device returns {outs}. The host computes the model's outputs from them:

{numbered}

```python
from conv2d_bundle.models.postprocess import {imports}
{calls}
```
"""
    elif integer:
        host = (
            "## Host post-processing\n\nNone: this model has no device/host split, so the whole model "
            f"was exported; its integer outputs ({', '.join(integer)}) may be rejected by the Hailo parser.\n"
        )
    else:
        host = "## Host post-processing\n\nNone: the whole model runs on the device.\n"
    script = "optimization level, and 16-bit output for the latent" if meta["split"] else "optimization level"
    how = meta.get("simplification") or {}
    simplified = (
        f"; simplified with {how['library']} {how.get('version')} ({how['nodes_before']} -> {how['nodes_after']} nodes)"
        if how.get("library")
        else "; not simplified"
        if how
        else ""
    )
    return f"""# Hailo compile kit: {meta["net_name"]}

| file | what |
|---|---|
| `model.onnx` | device part: input `{spec.input_name}` {meta["device_input_shape"]}, outputs {outs}; batch 1, static shapes, opset {meta["device_opset"]}, IR {meta["device_ir_version"]}{simplified} |
| `calib_set.npy` | calibration windows, float32 NHWC {meta["calibration"]["shape"]} (source: {meta["calibration"]["source"]}{": " + meta["calibration"]["description"] if meta["calibration"].get("description") else ""}) |
| `model_script.alls` | {script} |
| `compile.sh` | `hailo parser onnx` → `hailo optimize` → `hailo compiler`, for `--hw-arch {meta["hw_arch"]}` |

Run `bash compile.sh OUT_DIR` where the Hailo Dataflow Compiler 3.x is installed (Hailo-8/8L: DFC 3.x with
HailoRT 4.x), then `conv2d pack attach-hef {meta["exp_hash"]} OUT_DIR/{meta["net_name"]}.hef`: the HEF is
checked (integrity, architecture, network name `{meta["net_name"]}`) and sealed into the bundle.

The device input is NHWC on Hailo: a window `[1, {", ".join(map(str, spec.input_shape[1:]))}]` (NCHW) is
fed as `x.transpose(0, 2, 3, 1)`.

{host}"""


def write_text_files(kit: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        atomic.write_text(kit / name, text)
    (kit / "compile.sh").chmod(0o755)
