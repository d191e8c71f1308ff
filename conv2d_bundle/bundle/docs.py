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


def _golden(model: Mapping[str, Any]) -> str:
    """What the golden set (``reference/``) exercises: metadata.json ``model.reference.coverage``."""
    cov = (model.get("reference") or {}).get("coverage")
    if not isinstance(cov, Mapping):
        return ""
    source = cov.get("source") or {}
    where = (
        f"from `{source.get('file')}` (sha256 `{str(source.get('sha256'))[:12]}…`)"
        if source.get("kind") == "file"
        else str(source.get("description", "random"))
    )
    lines = [f"\n## Golden set\n{cov.get('windows')} windows, {where}."]
    for name, c in (cov.get("classes") or {}).items():
        lines.append(
            f"- `{name}`: {c['distinct']} of {c['of']} classes, the largest {c['largest_share']:.0%} of the windows"
        )
    for name, c in (cov.get("codes") or {}).items():
        of = f" of {c['of']}" if c.get("of") else ""
        lines.append(f"- `{name}`: {c['distinct']}{of} codes, the most common {c['largest_share']:.0%}")
    for reason in cov.get("degenerate") or []:
        lines.append(f"- **degenerate**: {reason}")
    return "\n".join(lines) + "\n"


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
{_golden(m)}
## Verify before you deploy
```
conv2d pack verify <this directory> --target onnx   # or ios, hailo, all
pytest --pyargs conv2d_bundle.checks --bundle <this directory> --target onnx   # from another directory
```
Every file is listed with its sha256 in `MANIFEST.json`; `reference/` holds golden inputs and outputs. A verdict
is about the bundle's content digest (sha256 of its canonical `MANIFEST.json`). Run plain `pytest` from outside
the bundle: pytest reads configuration from the directory it runs in, and the checks refuse to start on one
found inside the bundle; `conv2d pack verify` reads none.
"""


def deployment_guide(meta: Mapping[str, Any]) -> str:
    """One section per format in the bundle, each written by its target for the model that is bundled."""
    from conv2d_bundle.targets import registry

    sections = [
        target.guide(meta)
        for target in registry().values()
        if isinstance(meta["formats"].get(target.format), dict)
        and meta["formats"][target.format].get("status") in ("built", "kit")
    ]
    body = "\n".join(s for s in sections if s)
    return f"""# Deployment guide — {meta["exp_name"]} ({meta["exp_hash"]})

{body}
## Formats in this bundle
{_formats(meta)}
"""


def _parity(output: Mapping[str, Any]) -> str:
    """How the checks compare this output with the reference: integers exactly, floats within a tolerance."""
    if str(output["dtype"]).startswith("int"):
        return "integers, compared exactly (no tolerance)"
    return f"parity atol {output['atol']:g}, rtol {output['rtol']:g}"


def api_reference(meta: Mapping[str, Any]) -> str:
    m = meta["model"]
    outputs = "\n".join(f"- `{o['name']}` ({o['dtype']}, {o['kind']}): {_parity(o)}" for o in m["outputs"])
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
