"""The iOS target: Core ML (``models/coreml.mlpackage``, an ML Program for iOS 15 by default), made with
coremltools. Its structure and spec are checked anywhere coremltools is installed; its parity runs through
``predict()``, which Core ML offers only on macOS."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

from conv2d_bundle.targets import EXECUTES_HERE, Capability, Runner, Target, installed

NO_COREMLTOOLS = "coremltools not installed (pip install 'conv2d-bundle[coreml]')"
NEEDS_MACOS = "Core ML prediction needs macOS"


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
        if not installed("coremltools"):
            return Capability(False, NO_COREMLTOOLS)
        if platform.system() != "Darwin":
            return Capability(False, NEEDS_MACOS)
        return EXECUTES_HERE

    def guide(self, meta: Mapping[str, Any]) -> str:
        info = meta["formats"].get(self.format, {})
        integer = [o["name"] for o in meta["model"]["outputs"] if str(o["dtype"]).startswith("int")]
        ints = (
            f"Core ML has no int64: {', '.join(integer)} arrive as {info.get('codes_dtype', 'int32')}.\n"
            if integer
            else ""
        )
        return f"""## Core ML (iOS)
`{info.get("file")}`: {info.get("model_format")}, minimum {info.get("minimum_deployment_target")}.
{ints}Parity through `predict()` can be checked on macOS only: run `--target ios` there.
"""

    def runner(self, bundle: Any) -> Runner:
        from conv2d_bundle.targets.ios.runner import predict_runner

        info = bundle.format_info(self.format)
        return predict_runner(bundle.path(str(info.get("file"))), bundle.config.model.input_name)


TARGET = IosTarget()
