"""docs/README.md, docs/deployment_guide.md and docs/api_reference.md, generated from metadata.

Deterministic: the docs are hashed content, so nothing wall-clock (no created_at) goes in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _io_table(model: Mapping[str, Any]) -> str:
    rows = ["| name | direction | dtype | shape |", "|---|---|---|---|"]
    shape = ["N", *model["input_shape"][1:]]
    rows.append(f"| `{model['input_name']}` | input | float32 | [{', '.join(map(str, shape))}] |")
    for o in model["outputs"]:
        extra = f"; codes in [0, {o['num_codes']})" if o.get("num_codes") else ""
        rows.append(f"| `{o['name']}` | output | {o['dtype']} | batch-first{extra} |")
    return "\n".join(rows)


def _formats(meta: Mapping[str, Any]) -> str:
    lines = []
    for name, info in sorted(meta["formats"].items()):
        if info.get("status") == "built":
            lines.append(f"- **{name}**: `{info['file']}` ({info.get('size_bytes', 0)} bytes)")
        else:
            lines.append(f"- **{name}**: {info.get('status')}: {info.get('reason', '')}")
    return "\n".join(lines)


def readme(meta: Mapping[str, Any]) -> str:
    m = meta["model"]
    labels = ", ".join(f"{k}: {v}" for k, v in sorted(meta["labels"].items(), key=lambda kv: int(kv[0])))
    return f"""# Bundle {meta["exp_hash"]} — {meta["exp_name"]}

Model `{m["name"]}` ({m["architecture"]}, {m["parameters"]} parameters), made by conv2d-bundle
{meta["system_version"]} from commit `{meta["commit_sha"]}`.

## Formats
{_formats(meta)}

## Inputs and outputs
{_io_table(m)}

Labels (class index: name): {labels}

## Verify before you deploy
```
pytest --pyargs conv2d_bundle.checks --bundle <this directory> --target onnx   # or ios, hailo, all
conv2d pack verify {meta["exp_hash"]} --target onnx
```
Every file is listed with its sha256 in `MANIFEST.json`; `reference/` holds golden inputs and outputs.
"""


def deployment_guide(meta: Mapping[str, Any]) -> str:
    m = meta["model"]
    return f"""# Deployment guide — {meta["exp_name"]} ({meta["exp_hash"]})

## ONNX (any onnxruntime host)
```python
import numpy as np, onnxruntime as ort
sess = ort.InferenceSession("models/model.onnx", providers=["CPUExecutionProvider"])
x = np.load("reference/inputs.npy")             # float32 {["N", *m["input_shape"][1:]]}
outputs = sess.run(None, {{"{m["input_name"]}": x}})
```
The batch axis is dynamic; every other axis is fixed.

## Core ML (iOS)
`models/coreml.mlpackage` (or `.mlmodel` for iOS 13/14) when the bundle was made with coremltools.
Integer outputs arrive as int32 (ML Program) or float32 (neuralnetwork): Core ML has no int64.
Parity through `predict()` can be checked on macOS only: run `--target ios` there.

## Hailo-8 / Hailo-8L
`models/hailo/` is the compile kit (device-part ONNX, calibration set, model script, `compile.sh`).
Run `compile.sh` where the Hailo Dataflow Compiler is installed, then `conv2d pack attach-hef`.
The host finishes the work the device cannot do (rounding, code index, softmax):
`conv2d_bundle.postprocess` in numpy.

## Formats in this bundle
{_formats(meta)}
"""


def api_reference(meta: Mapping[str, Any]) -> str:
    m = meta["model"]
    outputs = "\n".join(
        f"- `{o['name']}` ({o['dtype']}, {o['kind']}): parity atol {o['atol']:g}, rtol {o['rtol']:g}"
        for o in m["outputs"]
    )
    return f"""# API reference — {m["name"]}

## Input
`{m["input_name"]}`: float32, shape [N, {", ".join(map(str, m["input_shape"][1:]))}], N >= 1.

## Outputs
{outputs}

## Table
{_io_table(m)}

## Files
- `metadata.json`: provenance, formats, validation summary (`schema_version` {meta["schema_version"]})
- `label_map.json`: class index -> name; `metrics.json`: evaluation metrics
- `config.yaml`: the normalized experiment config; EXP_HASH = sha256(config + weights sha256)[:12]
"""
