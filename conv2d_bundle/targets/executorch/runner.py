"""Run a ``.pte`` with the ExecuTorch Python runtime (which imports torch): numpy in, outputs by name out.

The runtime checks an input's dtype and element count against the planned bound, not each axis (measured: a
[2, 9, 2, 50] window is answered): the runner refuses any input whose shape or dtype differs from what the
program declares, as an application on the device must.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from conv2d_bundle.errors import BundleIntegrityError

log = logging.getLogger(__name__)
#: ExecuTorch ScalarType codes (MethodMeta's dtype()) -> numpy dtype names
SCALAR_NAMES = {3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64"}


class InvalidInput(ValueError):
    """An input the program does not declare (shape or dtype): refused before the runtime sees it."""


@contextlib.contextmanager
def _native_stderr_to_log() -> Iterator[None]:
    """The runtime's C++ start-up notes (cpuinfo) go to file descriptor 2: to the debug log instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                log.debug("executorch runtime: %s", text)


def load_method(path: Path) -> Any:
    """The program's ``forward`` method; BundleIntegrityError naming the file when it does not load."""
    if not path.is_file():
        raise BundleIntegrityError(f"{path.parent.name}/{path.name} is missing")
    with warnings.catch_warnings(), _native_stderr_to_log():
        warnings.simplefilter("ignore")  # the runtime's ExperimentalWarning and torchao's import noise
        from executorch.runtime import Runtime

        try:
            program = Runtime.get().load_program(str(path))
            return program.load_method("forward")
        except Exception as exc:  # the runtime raises RuntimeError with an error code for a bad program
            raise BundleIntegrityError(
                f"the ExecuTorch runtime cannot load {path.parent.name}/{path.name}: {type(exc).__name__}: {exc}"
            ) from exc


def declared_input(method: Any) -> tuple[list[int], str]:
    meta = method.metadata.input_tensor_meta(0)
    return list(meta.sizes()), SCALAR_NAMES.get(int(meta.dtype()), str(meta.dtype()))


def program_runner(path: Path, spec: Any) -> Any:
    method = load_method(Path(path))
    sizes, dtype = declared_input(method)

    def runner(inputs: Any) -> Mapping[str, Any]:
        import torch

        x = np.asarray(inputs)
        if str(x.dtype) != dtype or x.ndim != len(sizes) or list(x.shape[1:]) != sizes[1:]:
            raise InvalidInput(
                f"input {x.dtype!s} {list(x.shape)} != declared {dtype} [N <= {sizes[0]}, {', '.join(map(str, sizes[1:]))}]"
            )
        if not 1 <= x.shape[0] <= sizes[0]:
            raise InvalidInput(f"batch {x.shape[0]} outside 1..{sizes[0]}")
        outputs = method.execute([torch.from_numpy(np.ascontiguousarray(x))])
        return {name: out.numpy() for name, out in zip(spec.output_names, outputs, strict=True)}

    return runner
