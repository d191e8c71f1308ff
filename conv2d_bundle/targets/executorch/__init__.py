"""The ExecuTorch target: PyTorch's own on-device runtime, for Android, iOS and embedded Linux.

``models/model.pte`` is the model lowered to XNNPACK (fp32) with a dynamic batch of 1 up to
``export.executorch.max_batch`` (default 64); ``models/model.bpte`` is a BundledProgram: the same program with
golden test cases embedded, so a device can check the program by itself. Its parity executes on this host:
the ExecuTorch Python runtime runs on the CPU (it needs torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conv2d_bundle.targets import EXECUTES_HERE, Capability, Runner, Target, installed

PTE_FILE = "models/model.pte"
BPTE_FILE = "models/model.bpte"
DEFAULT_MAX_BATCH = 64
NEEDS_TORCH = "ExecuTorch runtime needs torch: install conv2d-bundle[executorch]"
NOT_INSTALLED = "ExecuTorch is not installed: install conv2d-bundle[executorch]"


def max_batch(options: Mapping[str, Any]) -> int:
    """The largest batch the program takes (``export.executorch.max_batch``)."""
    return int(options.get("max_batch", DEFAULT_MAX_BATCH))


class ExecutorchTarget(Target):
    name = "executorch"
    format = "executorch"
    title = "ExecuTorch (Android, iOS, embedded Linux)"
    checks = "conv2d_bundle.targets.executorch.test_executorch"
    extra = "executorch"
    runs_as = "the ExecuTorch runtime (XNNPACK, CPU)"
    default = False  # ~20 s of export: built when asked for (--formats ...,executorch)

    def exportable(self) -> str | None:
        return None if installed("executorch") else NOT_INSTALLED

    def export(self, ctx: Any) -> dict[str, Any]:
        from conv2d_bundle.targets.executorch.export import build

        return build(ctx)

    def capability(self) -> Capability:
        if not installed("torch"):
            return Capability(False, NEEDS_TORCH)
        if not installed("executorch"):
            return Capability(False, NOT_INSTALLED)
        return EXECUTES_HERE

    def runner(self, bundle: Any) -> Runner:
        from conv2d_bundle.targets.executorch.runner import program_runner

        return program_runner(bundle.path(PTE_FILE), bundle.config.model)

    def guide(self, meta: Mapping[str, Any]) -> str:
        info = meta["formats"].get(self.format, {})
        return f"""## ExecuTorch (Android, iOS, embedded Linux)
`{PTE_FILE}`: XNNPACK-delegated, fp32, batch 1 to {info.get("max_batch")}; load it with ExecuTorch's `Module`
(`forward`, input `{meta["model"]["input_name"]}` float32 [N, {", ".join(map(str, meta["model"]["input_shape"][1:]))}]).
The runtime checks an input's element count and dtype, not every axis: check the window's shape in the app.

`{BPTE_FILE}` embeds {len(info.get("bundled_cases", []))} golden cases (batches {info.get("bundled_cases")})
with their expected outputs. On the device, with ExecuTorch's `executor_runner` built with
`EXECUTORCH_BUILD_DEVTOOLS=ON` and `EXECUTORCH_ENABLE_BUNDLE_IO=ON`:
```
executor_runner --model_path=model.bpte --bundleio_rtol=1e-5 --bundleio_atol=1e-5
```
prints `Test_result: PASS` (it checks the first case; `examples/devtools/example_runner
--bundled_program_path=model.bpte --output_verification --testset_idx=N` checks case N).
"""


TARGET = ExecutorchTarget()
