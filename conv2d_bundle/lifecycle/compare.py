"""``compare``: two bundles side by side — metrics with deltas, config differences, formats, sizes, checks.

:func:`compare_bundles` returns a dict (``bundles``, ``metrics``, ``config``, ``formats``) plus
``sizes`` and ``validation``; :func:`render_markdown` turns it into a deterministic Markdown report (no
paths, no times), and :func:`check_gates` applies ``--fail-if-worse METRIC:THRESHOLD`` gates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from conv2d_bundle.bundle.store import Bundle, default_artifacts_dir, get_bundle
from conv2d_bundle.config import read_yaml
from conv2d_bundle.errors import BundleError, ConfigError
from conv2d_bundle.lifecycle.show import format_sizes, validation_status

HIGHER_IS_BETTER = frozenset(
    # "perplexity" in this project is the *codebook* perplexity of the FSQ codes (exp of the entropy of
    # code usage; see examples/train_example.py): the effective number of codes in use. A falling value
    # means codebook collapse, so higher is better here — unlike a language model's perplexity.
    {"accuracy", "macro_f1", "f1", "micro_f1", "precision", "recall", "auc", "roc_auc", "perplexity"}
)
LOWER_IS_BETTER = frozenset({"ece", "loss", "val_loss", "mce", "brier", "nll", "error_rate"})


def metric_direction(name: str) -> str | None:
    """``higher``, ``lower``, or None when the better direction of a metric is not known."""
    if name in HIGHER_IS_BETTER:
        return "higher"
    if name in LOWER_IS_BETTER:
        return "lower"
    return None


def _resolve(ref: Bundle | str | Path, artifacts_dir: Path | None) -> Bundle:
    if isinstance(ref, Bundle):
        return ref
    return get_bundle(Path(artifacts_dir) if artifacts_dir is not None else default_artifacts_dir(), str(ref))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys; lists and scalars are leaves."""
    if isinstance(data, Mapping) and data:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data} if prefix else {}


def _raw_config(bundle: Bundle) -> dict[str, Any]:
    try:  # the project's safe loader: a bundle's config is untrusted (no aliases, bounded size)
        data = read_yaml(bundle.path("config.yaml"), what="config.yaml")
    except ConfigError as exc:
        raise ConfigError(f"{bundle.exp_hash}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def compare_bundles(
    bundle1: Bundle | str | Path, bundle2: Bundle | str | Path, artifacts_dir: Path | None = None
) -> dict[str, Any]:
    """Compare two bundles (objects, hash prefixes or paths); bundle2 is the candidate, bundle1 the baseline."""
    b1, b2 = _resolve(bundle1, artifacts_dir), _resolve(bundle2, artifacts_dir)
    metrics: dict[str, dict[str, Any]] = {}
    for name in sorted(set(b1.metrics) & set(b2.metrics)):
        v1, v2 = _number(b1.metrics[name]), _number(b2.metrics[name])
        if v1 is None or v2 is None:
            continue
        direction = metric_direction(name)
        delta = v2 - v1
        improvement = None if direction is None else (delta > 0 if direction == "higher" else delta < 0)
        metrics[name] = {
            "bundle1": v1,
            "bundle2": v2,
            "delta": delta,
            "improvement": improvement,
            "direction": direction,
        }
    c1, c2 = flatten(_raw_config(b1)), flatten(_raw_config(b2))
    config = {
        key: {"bundle1": c1.get(key), "bundle2": c2.get(key)}
        for key in sorted(set(c1) | set(c2))
        if c1.get(key) != c2.get(key) or (key in c1) != (key in c2)
    }
    f1, f2 = set(b1.describe_formats()), set(b2.describe_formats())
    s1, s2 = format_sizes(b1), format_sizes(b2)
    sizes = {
        name: {
            "bundle1": s1.get(name),
            "bundle2": s2.get(name),
            "delta": (s2[name] - s1[name]) if name in s1 and name in s2 else None,
        }
        for name in sorted(set(s1) | set(s2), key=lambda n: (n == "total", n))
    }
    v1s, v2s = validation_status(b1), validation_status(b2)
    # each side's verdict in the words show uses (conv2d_bundle.verify.verdict.Verdict.describe), or None
    validation = {
        t: {"bundle1": v1s.get(t, {}).get("result"), "bundle2": v2s.get(t, {}).get("result")}
        for t in sorted(set(v1s) | set(v2s))
    }
    return {
        "bundles": {
            "bundle1": {"hash": b1.exp_hash, "name": b1.exp_name},
            "bundle2": {"hash": b2.exp_hash, "name": b2.exp_name},
        },
        "metrics": metrics,
        "config": config,
        "formats": {
            "bundle1_only": sorted(f1 - f2),
            "bundle2_only": sorted(f2 - f1),
            "common": sorted(f1 & f2),
        },
        "sizes": sizes,
        "validation": validation,
    }


# ------------------------------------------------------------------------------------------- gates


def parse_gate(text: str) -> tuple[str, float]:
    """``METRIC:THRESHOLD``: how much worse the candidate may be (negative: it must improve by that much)."""
    name, sep, raw = text.rpartition(":")
    try:
        threshold = float(raw)
    except ValueError:
        threshold = math.nan
    if not sep or not name or not math.isfinite(threshold):
        raise BundleError(f"--fail-if-worse {text!r}: expected METRIC:THRESHOLD, e.g. accuracy:0.01")
    return name, threshold


def check_gates(comparison: Mapping[str, Any], gates: Sequence[tuple[str, float]]) -> list[str]:
    """The failed gates, each as a sentence. A gate fails when the candidate's regression exceeds the threshold:
    for a higher-is-better metric regression = bundle1 - bundle2, for a lower-is-better one bundle2 - bundle1."""
    failed = []
    for name, threshold in gates:
        m = comparison["metrics"].get(name)
        if m is None:
            raise BundleError(f"--fail-if-worse {name}: not a numeric metric of both bundles")
        if m["direction"] is None:
            raise BundleError(f"--fail-if-worse {name}: unknown whether higher or lower is better")
        regression = -m["delta"] if m["direction"] == "higher" else m["delta"]
        if regression > threshold:
            failed.append(
                f"{name} went from {m['bundle1']:.6g} to {m['bundle2']:.6g} ({m['delta']:+.6g}; "
                f"{m['direction']} is better), past the allowed {threshold:+.6g}"
            )
    return failed


# ---------------------------------------------------------------------------------------- markdown


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _change(m: Mapping[str, Any]) -> str:
    if m["delta"] == 0:
        return "same"
    if m["improvement"] is None:
        return "changed (direction unknown)"
    return "better" if m["improvement"] else "worse"


def _status(result: str | None) -> str:
    """A verdict's words as show prints them (``failed (1 error)``), or a dash where there is none."""
    return "—" if result is None else result


def render_markdown(c: Mapping[str, Any]) -> str:
    b1, b2 = c["bundles"]["bundle1"], c["bundles"]["bundle2"]
    lines = [
        "# Bundle comparison",
        "",
        "| | bundle 1 (baseline) | bundle 2 (candidate) |",
        "|---|---|---|",
        f"| hash | `{b1['hash']}` | `{b2['hash']}` |",
        f"| name | {_fmt(b1['name'])} | {_fmt(b2['name'])} |",
        "",
        "## Metrics",
        "",
    ]
    if c["metrics"]:
        lines += ["| metric | bundle 1 | bundle 2 | delta | change |", "|---|---:|---:|---:|---|"]
        for name, m in c["metrics"].items():
            lines.append(
                f"| {name} | {_fmt(m['bundle1'])} | {_fmt(m['bundle2'])} | {m['delta']:+.4f} | {_change(m)} |"
            )
    else:
        lines.append("No metric in common.")
    lines += ["", "## Config differences", ""]
    if c["config"]:
        lines += ["| key | bundle 1 | bundle 2 |", "|---|---|---|"]
        lines += [f"| `{k}` | {_fmt(v['bundle1'])} | {_fmt(v['bundle2'])} |" for k, v in c["config"].items()]
    else:
        lines.append("The configs are identical.")
    f = c["formats"]
    lines += [
        "",
        "## Formats",
        "",
        f"- common: {', '.join(f['common']) or '—'}",
        f"- only in bundle 1: {', '.join(f['bundle1_only']) or '—'}",
        f"- only in bundle 2: {', '.join(f['bundle2_only']) or '—'}",
        "",
        "## File sizes (bytes)",
        "",
        "| file | bundle 1 | bundle 2 | delta |",
        "|---|---:|---:|---:|",
    ]
    for name, s in c["sizes"].items():
        delta = "—" if s["delta"] is None else f"{s['delta']:+d}"
        lines.append(f"| {name} | {_fmt(s['bundle1'])} | {_fmt(s['bundle2'])} | {delta} |")
    lines += ["", "## Validation", ""]
    if c["validation"]:
        lines += ["| target | bundle 1 | bundle 2 |", "|---|---|---|"]
        for t, v in c["validation"].items():
            lines.append(f"| {t} | {_status(v['bundle1'])} | {_status(v['bundle2'])} |")
    else:
        lines.append("Neither bundle has a validation record.")
    return "\n".join(lines) + "\n"
