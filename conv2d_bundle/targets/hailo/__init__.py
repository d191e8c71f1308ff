"""The Hailo-8 / 8L target: a compile kit in every bundle (``models/hailo/``: the device part of the model as
ONNX, an NHWC calibration set, a model script, ``compile.sh``), and ``models/hailo.hef`` once the Hailo
Dataflow Compiler has compiled it (here, or elsewhere and ``conv2d pack attach-hef``).

Its runner executes what can be executed off the device: the kit's device ONNX in onnxruntime followed by the
host post-processing (numpy), which is what the HEF plus the host will compute, before quantization.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conv2d_bundle.targets import EXECUTES_HERE, Capability, Runner, Target, installed

KIT_DIR = "models/hailo"
DEVICE_ONNX = f"{KIT_DIR}/model.onnx"
HEF_FILE = "models/hailo.hef"
#: the DFC's quantized emulator on the golden inputs (written by compile.sh, sealed in by attach-hef)
EMULATOR_FILE = f"{KIT_DIR}/emulator_outputs.npz"
NOT_COMPILED = "HEF not compiled: run models/hailo/compile.sh where the Hailo DFC 3.x is installed, then conv2d pack attach-hef"


class HailoTarget(Target):
    name = "hailo"
    format = "hailo"
    title = "Hailo-8 / 8L"
    checks = "conv2d_bundle.targets.hailo.test_hailo"
    runs_as = "the kit's device part in onnxruntime + host post-processing (the HEF runs only on the device)"

    def export(self, ctx: Any) -> dict[str, Any]:
        from conv2d_bundle.targets.hailo.export import build_hailo_kit

        return build_hailo_kit(ctx)

    def missing(self, bundle: Any) -> str | None:
        info = bundle.format_info(self.format)
        if not info:
            return "the bundle was built without hailo (metadata.json has no formats.hailo)"
        if info.get("status") not in ("kit", "built"):
            return f"formats.hailo is {info.get('status')!r}: {info.get('reason', 'no reason given')}"
        if not bundle.path(DEVICE_ONNX).is_file():
            return f"{DEVICE_ONNX} is missing: the compile kit is incomplete"
        return None

    def capability(self) -> Capability:
        if not installed("onnxruntime"):
            return Capability(False, "onnxruntime is not installed")
        return EXECUTES_HERE

    def runner(self, bundle: Any) -> Runner:
        from conv2d_bundle.targets.hailo.kit import split_runner

        info = bundle.format_info(self.format)
        return split_runner(bundle.path(DEVICE_ONNX), bundle.config.model, bool(info.get("split")))

    def guide(self, meta: Mapping[str, Any]) -> str:
        info = meta["formats"].get(self.format, {})
        host = {"codes": "rounding and code index", "probabilities": "softmax"}
        work = [host[o["kind"]] for o in meta["model"]["outputs"] if o.get("kind") in host]
        finish = (
            f"The host finishes what the device cannot do ({', '.join(work)}): `conv2d_bundle.models.postprocess`"
            " in numpy (see the kit's README).\n"
            if info.get("split") and work
            else "The whole model runs on the device.\n"
        )
        hef = (
            "`models/hailo.hef` is attached."
            if info.get("status") == "built"
            else f"{NOT_COMPILED}. Until then `conv2d pack verify . --target hailo` (and `--target all`) says"
            " `failed (1 error)`: `test_hailo.py::test_hef_present: HEF not compiled` -- the kit is checked, but"
            " the bundle is not deployable to a Hailo board without its HEF."
        )
        exp_hash = meta.get("exp_hash", "<hash>")
        return f"""## Hailo-8 / Hailo-8L
`{KIT_DIR}/` is the compile kit (device-part ONNX, calibration set, model script, `compile.sh`) for
`--hw-arch {info.get("hw_arch")}`. {hef}
{finish}
Where the Hailo DFC is installed, `bash {KIT_DIR}/compile.sh build/` compiles the HEF and runs the DFC's
quantized emulator on the golden inputs (`build/emulator_outputs.npz`); seal both in with
`conv2d pack attach-hef {exp_hash} build/{info.get("net_name")}.hef --emulator-outputs build/emulator_outputs.npz`.

### Verifying on the board (Raspberry Pi with a Hailo-8 / 8L)
With HailoRT and its Python API (`hailo_platform`) installed from Hailo's packages, and the bundle copied over:
```
pip install conv2d-bundle          # the checks need numpy, onnx and onnxruntime: no torch
pytest --pyargs conv2d_bundle.checks --bundle {exp_hash} --artifacts artifacts --target hailo --strict-targets
pytest --pyargs conv2d_bundle.checks --bundle {exp_hash} --artifacts artifacts --target hailo --benchmark
```
`validation/hailo_validation.json` then holds `test_hef_on_device[<output>]` for every output: the golden
inputs (NHWC) run through the HEF by HailoRT (float in, float out: HailoRT quantizes and dequantizes), the host
post-processing applied, and code agreement, argmax agreement and PSNR against the golden outputs, each with
the verifier's int8 floor (built in: codes >= 90%, argmax >= 95%, PSNR >= 30 dB; `--tolerance-policy FILE`
with an `int8:` section sets others). With `--benchmark`, `test_hef_benchmark` adds the HEF's latency and
throughput on the device. Without HailoRT or a device these checks are skipped, "needs a Hailo device with
HailoRT", with the reason; `--strict-targets` fails them.
"""


TARGET = HailoTarget()
