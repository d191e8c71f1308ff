"""The "bad" bundle of the same-EXP_HASH attack: the example's ONNX model with one classifier bias moved by
+0.5 and MANIFEST.json re-sealed. Its config and weights are untouched, so it has the good bundle's EXP_HASH
and passes every identity check; its content digest differs, and its ONNX parity checks fail."""

from __future__ import annotations

import shutil
from pathlib import Path

BIAS = "inner.classifier.2.bias"


def bad_copy(good: Path, artifacts: Path, shift: float = 0.5) -> Path:
    """A copy of ``good`` at ``artifacts/<its hash>`` (no validation reports) with the bias shifted, re-sealed."""
    import onnx
    from onnx import numpy_helper

    from tests.conftest import reseal

    dst = artifacts / good.name
    shutil.copytree(good, dst, ignore=shutil.ignore_patterns("validation"))
    path = dst / "models" / "model.onnx"
    model = onnx.load(path)
    init = next(i for i in model.graph.initializer if i.name == BIAS)
    values = numpy_helper.to_array(init).copy()
    values[0] += shift
    init.CopyFrom(numpy_helper.from_array(values, BIAS))
    onnx.save(model, path)
    reseal(dst)
    return dst
