"""`--target hailo` on the board: the HEF run through HailoRT (a fake ``hailo_platform`` in a child process)
and judged against the golden outputs under the verifier's int8 policy.

The fake's "device" is the kit's device ONNX with HailoRT's quantize/dequantize arithmetic around it, using
the vstream quantization parameters the HEF declares; here those are derived from the kit's calibration set
the way a calibration would (min/max of each tensor), so a faithful device keeps the golden results and a
wrong one does not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.targets.hailo.attach import attach_hef
from tests.conftest import check_outcome
from tests.hef_factory import bytes_field, proto_body, wrap

FAKE_HAILORT = Path(__file__).parent / "fakes_hailort"
NET = "conv2d_fsq"
DEVICE_CHECK = "test_hailo.py::test_hef_on_device"


def _qparams(values: np.ndarray, bits: int) -> dict[str, float]:
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = (high - low) / (2**bits - 1)
    return {"qp_scale": scale, "qp_zp": round(-low / scale)}


def describe_hef(bundle: Path) -> dict[str, Any]:
    """The vstreams a DFC would write for this bundle's kit: NHWC input, one output per device output, named
    by HN layer with the ONNX end node as original name; 8-bit input and logits, the latent at 16 bits (as
    the kit's model script asks)."""
    from conv2d_bundle.targets.hailo.kit import run_device

    meta = json.loads((bundle / "metadata.json").read_text())["formats"]["hailo"]
    onnx = bundle / "models/hailo/model.onnx"
    calib = np.load(bundle / "models/hailo/calib_set.npy")
    floats = run_device(onnx, calib[:64].transpose(0, 3, 1, 2), meta["device_input_name"])
    outputs = []
    for i, (name, node) in enumerate(zip(meta["device_outputs"], meta["end_node_names"], strict=True)):
        bits, fmt = (16, "UINT16") if name == "bounded_latent" else (8, "UINT8")
        width = int(floats[name].shape[-1])
        outputs.append(
            {
                "name": f"{NET}/fc{i + 1}",
                "shape": [1, 1, width],
                "format": fmt,
                "original_names": [node],
                "onnx": name,
                **_qparams(floats[name], bits),
            }
        )
    return {
        "network_group": NET,
        "onnx": str(onnx),
        "inputs": [
            {
                "name": f"{NET}/input_layer1",
                "shape": list(calib.shape[1:]),
                "format": "UINT8",
                **_qparams(calib, 8),
            }
        ],
        "outputs": outputs,
    }


def device_hef(bundle: Path, description: dict[str, Any]) -> bytes:
    proto = proto_body(1, [NET]) + bytes_field(1000, json.dumps(description).encode())
    return wrap(0, proto)


def hailort_env(device: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FAKE_HAILORT), env.get("PYTHONPATH", "")) if p)
    env.pop("FAKE_HAILORT_DEVICE", None)
    if device:
        env["FAKE_HAILORT_DEVICE"] = device
    return env


@pytest.fixture
def bundle_with_hef(bundle_copy: Path, tmp_path: Path) -> Path:
    hef = tmp_path / f"{NET}.hef"
    hef.write_bytes(device_hef(bundle_copy, describe_hef(bundle_copy)))
    attach_hef(Bundle(bundle_copy), hef)
    return bundle_copy


def _device_checks(report: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        c["id"]: (c["outcome"], c["message"], c.get("details") or {})
        for c in report["checks"]
        if c["id"].startswith(DEVICE_CHECK)
    }


def test_faithful_device_passes_with_figures(bundle_with_hef: Path, run_checks: Any) -> None:
    """A device that quantizes as the HEF says keeps the golden results: both outputs pass, with the figures
    and the policy they were judged by in the report."""
    _, report, out = run_checks(
        bundle_with_hef, "hailo", "-k", "test_hef_on_device", env=hailort_env("faithful")
    )
    assert report is not None, out[-3000:]
    checks = _device_checks(report)
    assert set(checks) == {f"{DEVICE_CHECK}[behavioral_codes]", f"{DEVICE_CHECK}[confidence]"}, out[-3000:]
    for outcome, message, _ in checks.values():
        assert outcome == "passed", message
    _, _, codes = checks[f"{DEVICE_CHECK}[behavioral_codes]"]
    _, _, confidence = checks[f"{DEVICE_CHECK}[confidence]"]
    assert codes["code_agreement"] >= 0.9
    assert confidence["argmax_agreement"] >= 0.95 and confidence["psnr_db"] >= 30
    assert confidence["policy"] == {
        "min_code_agreement": 0.9,
        "min_argmax_agreement": 0.95,
        "min_psnr_db": 30.0,
        "source": "built-in policy",
    }
    assert codes["vstreams"] == {f"{NET}/fc1": "bounded_latent", f"{NET}/fc2": "class_logits"}
    # the fake, like HailoRT, schedules by default and refuses activate() there: the session never called it
    assert codes["scheduler"] == "ROUND_ROBIN"


def test_without_the_scheduler_the_network_group_is_activated(bundle_with_hef: Path, run_checks: Any) -> None:
    """A HailoRT whose VDevice runs without the scheduler infers only inside activate(): the session activates
    the network group there, and says so."""
    env = {**hailort_env("faithful"), "FAKE_HAILORT_SCHEDULER": "none"}
    _, report, out = run_checks(bundle_with_hef, "hailo", "-k", "test_hef_on_device", env=env)
    assert report is not None, out[-3000:]
    checks = _device_checks(report)
    assert {outcome for outcome, _, _ in checks.values()} == {"passed"}, out[-3000:]
    assert {d["scheduler"] for _, _, d in checks.values()} == {"off (network group activated)"}


def test_benchmark_names_hailort_hw_time_for_what_it_is(bundle_with_hef: Path, run_checks: Any) -> None:
    """get_hw_time() is host wall-clock time around HailoRT's native call: the figures say so and never call
    it device latency."""
    _, report, out = run_checks(
        bundle_with_hef,
        "hailo",
        "-k",
        "test_hef_benchmark",
        "--conv2d-benchmark",
        env=hailort_env("faithful"),
    )
    assert report is not None, out[-3000:]
    (bench,) = [c for c in report["checks"] if c["id"].endswith("test_hef_benchmark")]
    assert bench["outcome"] == "passed", bench
    details = bench["details"]
    assert details["latency_p50_us"] > 0 and details["hailort_hw_time_p50_us"] > 0
    assert details["hailort_hw_time_is"].startswith("host wall-clock time")
    assert not [k for k in details if "device_latency" in k or "device_throughput" in k]


def test_wrong_device_fails_naming_output_and_figure(bundle_with_hef: Path, run_checks: Any) -> None:
    """A device that returns each frame's class logits for the next frame: the codes still agree, the
    confidences do not, and the failure names the output, the figure and the floor."""
    code, report, out = run_checks(
        bundle_with_hef, "hailo", "-k", "test_hef_on_device", env=hailort_env("wrong")
    )
    assert report is not None, out[-3000:]
    checks = _device_checks(report)
    assert checks[f"{DEVICE_CHECK}[behavioral_codes]"][0] == "passed"
    outcome, message, details = checks[f"{DEVICE_CHECK}[confidence]"]
    assert outcome == "failed" and report["verdict"] == "failed" and code == 1
    assert message.startswith("the HEF on the device: confidence argmax agreement ")
    assert "< int8.min_argmax_agreement 95.0% (built-in policy)" in message
    assert "confidence psnr db " in message and "< int8.min_psnr_db 30 dB" in message
    assert details["argmax_agreement"] < 0.95 and details["psnr_db"] < 30


@pytest.mark.parametrize(
    ("device", "reason"),
    [
        (None, "needs a Hailo device with HailoRT: no Hailo device answered: HailoRTException: "),
        (
            "absent-module",
            "needs a Hailo device with HailoRT: hailo_platform (HailoRT's Python API) is not importable",
        ),
    ],
)
def test_no_device_is_not_verified(
    bundle_with_hef: Path, run_checks: Any, device: str | None, reason: str
) -> None:
    """Without HailoRT or without a device the checks are skipped with the reason found, never passed;
    --strict-targets turns them into failures."""
    env = dict(os.environ) if device == "absent-module" else hailort_env(device)
    code, report, out = run_checks(bundle_with_hef, "hailo", "-k", "test_hef_on_device", env=env)
    assert report is not None, out[-3000:]
    checks = _device_checks(report)
    assert len(checks) == 2
    for outcome, _, _ in checks.values():
        assert outcome == "skipped"
    skipped = [s for s in report["skipped"] if s["id"].startswith(DEVICE_CHECK)]
    assert len(skipped) == 2 and all(s["reason"].startswith(reason) for s in skipped), skipped

    code, report, out = run_checks(
        bundle_with_hef, "hailo", "--strict-targets", "-k", "test_hef_on_device", env=env
    )
    assert code == 1 and report is not None and report["verdict"] == "failed", out[-3000:]
    outcome, message = check_outcome(report, f"{DEVICE_CHECK}[confidence]")
    # a skip in setup becomes a setup error: either way it counts as failed
    assert outcome in ("failed", "error") and message.startswith(f"not verified (--strict-targets): {reason}")


# -- the DFC's quantized emulator: attached with the HEF, judged on any host ------------------------------
EMULATOR_CHECK = "test_hailo.py::test_emulator_int8"


def emulator_npz(bundle: Path, path: Path, *, shuffle_logits: bool = False, **override: Any) -> Path:
    """What compile.sh's emulator step writes: the device outputs on the golden inputs, quantized as the HEF
    description says, in the emulator's (N, 1, 1, C) layout. ``shuffle_logits``: a wrong emulator run."""
    from conv2d_bundle.targets.hailo.kit import run_device

    description = describe_hef(bundle)
    golden = np.load(bundle / "reference/inputs.npy")
    floats = run_device(bundle / "models/hailo/model.onnx", golden, "imu_input")
    arrays = {}
    for vinfo in description["outputs"]:
        scale, zp = vinfo["qp_scale"], vinfo["qp_zp"]
        limit = 65535 if vinfo["format"] == "UINT16" else 255
        value = floats[vinfo["onnx"]]
        if shuffle_logits and vinfo["onnx"] == "class_logits":
            value = np.roll(value, 1, axis=0)
        q = np.clip(np.rint(value / scale + zp), 0, limit)
        arrays[vinfo["onnx"]] = ((q - zp) * scale).astype(np.float32).reshape(len(golden), 1, 1, -1)
    arrays.update(override)
    np.savez(path, **arrays)
    return path


def _emulator_checks(report: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        c["id"]: (c["outcome"], c["message"], c.get("details") or {})
        for c in report["checks"]
        if c["id"].startswith(EMULATOR_CHECK)
    }


def test_emulator_figures_in_the_report_without_a_device(
    bundle_copy: Path, tmp_path: Path, run_checks: Any
) -> None:
    """Emulator outputs attached with the HEF: the hailo report carries their int8 figures on a host with
    neither HailoRT nor a device; a wrong emulator run fails, naming the output and the figure."""
    hef = tmp_path / f"{NET}.hef"
    hef.write_bytes(device_hef(bundle_copy, describe_hef(bundle_copy)))
    attach_hef(Bundle(bundle_copy), hef, emulator_npz(bundle_copy, tmp_path / "emulator_outputs.npz"))
    meta = json.loads((bundle_copy / "metadata.json").read_text())["formats"]["hailo"]
    assert (
        meta["emulator"]["file"] == "models/hailo/emulator_outputs.npz" and meta["emulator"]["windows"] == 64
    )

    _, report, out = run_checks(bundle_copy, "hailo", "-k", "test_emulator_int8")
    assert report is not None, out[-3000:]
    checks = _emulator_checks(report)
    assert {o for o, _, _ in checks.values()} == {"passed"}, checks
    codes = checks[f"{EMULATOR_CHECK}[behavioral_codes]"][2]
    confidence = checks[f"{EMULATOR_CHECK}[confidence]"][2]
    assert 0.9 <= codes["code_agreement"] <= 1.0
    assert confidence["argmax_agreement"] >= 0.95 and confidence["psnr_db"] >= 30

    wrong = emulator_npz(bundle_copy, tmp_path / "wrong.npz", shuffle_logits=True)
    attach_hef(Bundle(bundle_copy), hef, wrong)
    code, report, out = run_checks(bundle_copy, "hailo", "-k", "test_emulator_int8")
    assert report is not None and code == 1, out[-3000:]
    outcome, message, details = _emulator_checks(report)[f"{EMULATOR_CHECK}[confidence]"]
    assert outcome == "failed" and details["argmax_agreement"] < 0.95
    assert message.startswith("the DFC's quantized emulator: confidence argmax agreement ")

    attach_hef(Bundle(bundle_copy), hef)  # a HEF without emulator outputs: the old ones go
    assert not (bundle_copy / "models/hailo/emulator_outputs.npz").exists()
    assert "emulator" not in json.loads((bundle_copy / "metadata.json").read_text())["formats"]["hailo"]
    _, report, out = run_checks(bundle_copy, "hailo", "-k", "test_emulator_int8")
    assert report is not None, out[-3000:]
    assert {o for o, _, _ in _emulator_checks(report).values()} == {"skipped"}
    assert all("int8 emulator outputs not attached" in s["reason"] for s in report["skipped"])


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"class_logits": np.zeros((64, 4), dtype=np.int32)}, "class_logits is int32, not float"),
        (
            {"class_logits": np.zeros((63, 4), dtype=np.float32)},
            "class_logits has 63 rows, the golden inputs 64",
        ),
        ({"bounded_latent": np.full((64, 4), np.nan, dtype=np.float32)}, "bounded_latent holds NaN"),
    ],
)
def test_attach_refuses_emulator_outputs_that_do_not_fit(
    bundle_copy: Path, tmp_path: Path, override: dict[str, Any], problem: str
) -> None:
    from conv2d_bundle.errors import HefError
    from tests.hailo.test_attach import _tree

    hef = tmp_path / f"{NET}.hef"
    hef.write_bytes(device_hef(bundle_copy, describe_hef(bundle_copy)))
    bad = emulator_npz(bundle_copy, tmp_path / "bad.npz", **override)
    before = _tree(bundle_copy)
    with pytest.raises(HefError, match=problem):
        attach_hef(Bundle(bundle_copy), hef, bad)
    assert _tree(bundle_copy) == before


def test_attach_refuses_emulator_outputs_without_every_device_output(
    bundle_copy: Path, tmp_path: Path
) -> None:
    from conv2d_bundle.errors import HefError

    hef = tmp_path / f"{NET}.hef"
    hef.write_bytes(device_hef(bundle_copy, describe_hef(bundle_copy)))
    partial = tmp_path / "partial.npz"
    np.savez(partial, bounded_latent=np.zeros((64, 4), dtype=np.float32))
    with pytest.raises(
        HefError, match=r"no class_logits.*expected the device outputs \['bounded_latent', 'class_logits'\]"
    ):
        attach_hef(Bundle(bundle_copy), hef, partial)
    not_npz = tmp_path / "not.npz"
    not_npz.write_bytes(b"not a zip")
    with pytest.raises(HefError, match=r"not a readable \.npz"):
        attach_hef(Bundle(bundle_copy), hef, not_npz)
