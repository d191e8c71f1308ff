"""Run a bundle's Core ML model through ``predict()`` (macOS only), from a private copy of it.

coremltools rewrites ``Manifest.json`` whenever it opens a package, so the model is opened from a temporary
copy: verifying never writes into the bundle, which may be read-only on a device.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from conv2d_bundle.errors import BundleIntegrityError


def private_copy(src: Path, dst: Path) -> Path:
    """Copy a model to ``dst`` as plain writable files, whatever the bundle's own permissions."""
    if src.is_dir():
        for dirpath, _dirnames, filenames in os.walk(src):
            target = dst / Path(dirpath).relative_to(src)
            target.mkdir(parents=True, exist_ok=True)
            for name in filenames:
                shutil.copyfile(Path(dirpath) / name, target / name)
    else:
        shutil.copyfile(src, dst)
    return dst


def open_model(path: Path, *, compile_for_prediction: bool) -> tuple[Any, tempfile.TemporaryDirectory[str]]:
    """``coremltools.models.MLModel`` on a temporary copy of ``path`` (kept alive with the returned dir)."""
    from conv2d_bundle.targets.ios.export import _converter_output_to_log

    tmp = tempfile.TemporaryDirectory(prefix="conv2d-coreml-")
    copy = private_copy(path, Path(tmp.name) / path.name)
    try:
        with _converter_output_to_log():
            import coremltools

            model = coremltools.models.MLModel(str(copy), skip_model_load=not compile_for_prediction)
    except Exception as exc:  # coremltools raises many types (DecodeError, RuntimeError, ...) for a bad model
        tmp.cleanup()
        raise BundleIntegrityError(
            f"coremltools cannot load {path.name}: {type(exc).__name__}: {exc}"
        ) from exc
    return model, tmp


def predict_runner(path: Path, input_name: str) -> Any:
    if not path.exists():
        raise BundleIntegrityError(f"the Core ML model {path.name} is missing")
    model, tmp = open_model(path, compile_for_prediction=True)

    def runner(inputs: Any) -> Mapping[str, Any]:
        _ = tmp  # the copy lives as long as the runner
        try:
            got = model.predict({input_name: np.ascontiguousarray(inputs)})
        except Exception as exc:  # Core ML reports every prediction failure as some runtime error
            raise BundleIntegrityError(f"Core ML predict() failed: {type(exc).__name__}: {exc}") from exc
        # integers are compared by value, not cast: float codes like 42.3 must not pass as 42
        return {name: np.asarray(value) for name, value in got.items()}

    return runner
