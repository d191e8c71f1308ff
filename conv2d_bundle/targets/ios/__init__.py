"""The iOS target: Core ML (``models/coreml.mlpackage``, an ML Program for iOS 15 by default), made with
coremltools. Its structure and spec are checked anywhere coremltools is installed, and so is its parity through
the ML Program reference interpreter (``mil.py``, numpy: the program and weights as converted, computed op by op;
``test_coreml_program_parity``). Parity through ``predict()``, Apple's runtime (``test_parity``, what
:meth:`IosTarget.capability` governs), runs only on macOS, where Core ML exists."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

from conv2d_bundle.targets import EXECUTES_HERE, Capability, Runner, Target, installed

NO_COREMLTOOLS = "coremltools not installed (pip install 'conv2d-bundle[coreml]')"
NEEDS_MACOS = "Core ML prediction needs macOS"
#: the engine of ``test_coreml_program_parity``, as its report entries name it
INTERPRETER = "ML Program reference interpreter (numpy), not Apple's runtime"
#: the check that executes the program through the interpreter
PROGRAM_PARITY_CHECK = "test_coreml_program_parity"


class IosTarget(Target):
    name = "ios"
    format = "coreml"
    title = "Core ML (iOS)"
    checks = "conv2d_bundle.targets.ios.test_ios"
    extra = "coreml"
    runs_as = "Core ML predict() (macOS only)"

    def exportable(self) -> str | None:
        return None if installed("coremltools") else NO_COREMLTOOLS

    def export(self, ctx: Any) -> dict[str, Any]:
        from conv2d_bundle.targets.ios.export import build

        return build(ctx)

    def capability(self) -> Capability:
        """Whether ``predict()`` parity (``test_parity``) executes here: macOS with coremltools only."""
        if not installed("coremltools"):
            return Capability(False, NO_COREMLTOOLS)
        if platform.system() != "Darwin":
            return Capability(False, NEEDS_MACOS)
        return EXECUTES_HERE

    def interpreter_capability(self) -> Capability:
        """Whether ``test_coreml_program_parity`` executes here: wherever coremltools is installed (it reads
        the spec with coremltools' protobuf classes and the weights with its blob reader; numpy computes)."""
        return EXECUTES_HERE if installed("coremltools") else Capability(False, NO_COREMLTOOLS)

    def describe(self) -> dict[str, Any]:
        """The common description, plus the second parity engine (``conv2d pack targets`` lists it)."""
        return {
            **super().describe(),
            "more_parity": [
                {
                    "check": PROGRAM_PARITY_CHECK,
                    "runs_as": INTERPRETER,
                    **self.interpreter_capability().as_dict(),
                }
            ],
        }

    def guide(self, meta: Mapping[str, Any]) -> str:
        info = meta["formats"].get(self.format, {})
        integer = [o["name"] for o in meta["model"]["outputs"] if str(o["dtype"]).startswith("int")]
        ints = (
            f"Core ML has no int64: {', '.join(integer)} arrive as {info.get('codes_dtype', 'int32')}.\n"
            if integer
            else ""
        )
        program = (
            "Parity of the ML Program (its program and weights as converted, computed op by op) is checked "
            "anywhere coremltools is installed, Linux included, through a numpy reference interpreter, not "
            "Apple's runtime (`test_coreml_program_parity`). "
            if info.get("model_format", "mlprogram") == "mlprogram"
            else ""
        )
        return f"""## Core ML (iOS)
`{info.get("file")}`: {info.get("model_format")}, minimum {info.get("minimum_deployment_target")}.
{ints}{program}Parity through `predict()`, Apple's runtime, can be checked on macOS only: run `--target ios` there.
"""

    def runner(self, bundle: Any) -> Runner:
        from conv2d_bundle.targets.ios.runner import predict_runner

        info = bundle.format_info(self.format)
        return predict_runner(bundle.path(str(info.get("file"))), bundle.config.model.input_name)


TARGET = IosTarget()
