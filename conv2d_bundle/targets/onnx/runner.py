"""Run an ONNX file in onnxruntime (the checks' session fixture and the parity runner both open it here)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conv2d_bundle.errors import BundleIntegrityError


def session(path: Path, label: str = "") -> Any:
    """An onnxruntime session on ``path`` (CPU, quiet); BundleIntegrityError naming ``label`` (the file's
    path in the bundle) if it does not load."""
    import onnxruntime as ort

    label = label or path.name
    if not path.is_file():
        raise BundleIntegrityError(f"{label} is missing")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # onnxruntime's intra-op threads spin while they wait for work by default: a verify burnt ~12% more CPU for
    # the same wall time (2.9 vs 2.6 s user+sys, bench/README.md row 9), CPU a second verify on the other core
    # needs; measured no slower for one verify alone. The latency check opens its own session, spinning.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's Fail/InvalidGraph/...: the export does not load
        text = str(exc).strip()
        raise BundleIntegrityError(
            f"onnxruntime cannot load {label}: {type(exc).__name__}: {text.splitlines()[0] if text else ''}"
        ) from exc


def run(sess: Any, input_name: str, inputs: Any) -> dict[str, Any]:
    """The session's outputs on ``inputs``, by name."""
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {input_name: inputs}), strict=True))


def session_runner(path: Path, input_name: str, label: str = "") -> Any:
    sess = session(Path(path), label)

    def runner(inputs: Any) -> Mapping[str, Any]:
        return run(sess, input_name, inputs)

    return runner
