"""The ONNX target: ``models/model.onnx`` (TorchScript exporter, opset 13, dynamic batch), run by onnxruntime.

Its parity executes on any host with onnxruntime, the edge device included: numpy + onnx + onnxruntime only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conv2d_bundle.targets import EXECUTES_HERE, Capability, Runner, Target, installed

ONNX_FILE = "models/model.onnx"


class OnnxTarget(Target):
    name = "onnx"
    format = "onnx"
    title = "ONNX"
    checks = "conv2d_bundle.targets.onnx.test_onnx"
    runs_as = "onnxruntime (CPU)"

    def export(self, ctx: Any) -> dict[str, Any]:
        from conv2d_bundle.targets.onnx.export import build

        return build(ctx)

    def capability(self) -> Capability:
        if not installed("onnxruntime"):
            return Capability(False, "onnxruntime is not installed")
        return EXECUTES_HERE

    def guide(self, meta: Mapping[str, Any]) -> str:
        m = meta["model"]
        return f"""## ONNX (any onnxruntime host)
```python
import numpy as np, onnxruntime as ort
sess = ort.InferenceSession("{ONNX_FILE}", providers=["CPUExecutionProvider"])
x = np.load("reference/inputs.npy")             # float32 {["N", *m["input_shape"][1:]]}
outputs = sess.run(None, {{"{m["input_name"]}": x}})   # {", ".join(o["name"] for o in m["outputs"])}
```
The batch axis is dynamic; every other axis is fixed.
"""

    def locate_divergence(self, bundle: Any, inputs: Any, policy: Any) -> Any:
        from conv2d_bundle.errors import BundleIntegrityError
        from conv2d_bundle.targets.onnx.divergence import locate_in_bundle

        mapping = bundle.format_info(self.format).get("taps")
        if not isinstance(mapping, dict):
            raise BundleIntegrityError(
                f"metadata.json formats.{self.format} maps no taps (created before taps?)"
            )
        return locate_in_bundle(bundle, ONNX_FILE, mapping, inputs, policy)

    def runner(self, bundle: Any) -> Runner:
        from conv2d_bundle.targets.onnx.runner import session_runner

        return session_runner(bundle.path(ONNX_FILE), bundle.config.model.input_name, ONNX_FILE)


TARGET = OnnxTarget()
