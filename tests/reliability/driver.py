"""Run `conv2d pack create` with a fault injected at a named point (used by the reliability tests).

    python -m tests.reliability.driver POINT ACTION -- <conv2d args>

POINT: staging | onnx-export | coreml-export | reference | manifest | seal-checks | rename
ACTION: kill (SIGKILL this process there) | enospc | erofs (raise that OSError there)
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Any


def _fault(action: str) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    code = {"enospc": errno.ENOSPC, "erofs": errno.EROFS}[action]
    raise OSError(code, os.strerror(code), "models/model.onnx")


def _wrap(module: Any, name: str, action: str) -> None:
    original = getattr(module, name)

    def faulty(*args: Any, **kwargs: Any) -> Any:
        _fault(action)
        return original(*args, **kwargs)

    setattr(module, name, faulty)


def main() -> None:
    point, action = sys.argv[1], sys.argv[2]
    args = sys.argv[sys.argv.index("--") + 1 :]
    from conv2d_bundle.bundle import manifest
    from conv2d_bundle.lifecycle import create as bundler
    from conv2d_bundle.targets.onnx import export as onnx_export

    if point == "onnx-export":
        _wrap(onnx_export, "export_onnx", action)
    elif point == "coreml-export":
        from conv2d_bundle.targets.ios import export as coreml

        _wrap(coreml, "normalize_mlpackage", action)  # after conversion wrote the package
    elif point == "reference":
        _wrap(bundler, "save_npz", action)
    elif point == "manifest":
        _wrap(manifest.BundleManifest, "write", action)
    elif point == "seal-checks":
        from conv2d_bundle.verify import runner as validation

        _wrap(validation, "run_checks", action)
    elif point == "staging":
        _wrap(bundler.tempfile, "mkdtemp", action)
    elif point == "rename":
        _wrap(bundler, "_move_into_place", action)
    else:
        raise SystemExit(f"unknown point {point}")
    from conv2d_bundle.cli import main as cli

    sys.argv = ["conv2d", *args]
    cli()


if __name__ == "__main__":
    main()
