"""The compiler path, with the fake DFC (tests/hailo/fakes) in a child process, and the kit's library parts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conv2d_bundle.errors import BundleWarning, ConfigError, ExportError
from conv2d_bundle.targets.hailo import dfc as hailo_compile
from conv2d_bundle.targets.hailo.int8 import below_thresholds, thresholds
from conv2d_bundle.targets.hailo.kit import calibration_set, export_device_onnx
from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL, conv2d, last_json
from tests.hailo.conftest import fake_env


def test_create_with_fake_dfc_builds_and_passes(tmp_path: Path, run_checks) -> None:
    env = fake_env()
    p = conv2d(
        "pack", "create", "--config", str(EXAMPLE_CONFIG), "--model", str(EXAMPLE_MODEL),
        "--output-dir", str(tmp_path), "--formats", "onnx,hailo", "--json", env=env,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    made = last_json(p.stdout)
    assert made["formats"]["hailo"] == "built"
    bundle = Path(made["bundle_dir"])
    info = json.loads((bundle / "metadata.json").read_text())["formats"]["hailo"]
    assert (info["status"], info["dfc_version"], info["hef_hw_arch"]) == ("built", "3.27.0", "HAILO8P")
    assert (bundle / "models/hailo.hef").read_bytes()[:4] == b"\x01HEF"
    rc, report, output = run_checks(bundle, "hailo", env=env)
    assert rc == 0, output
    assert report is not None and "test_hailo.py::test_hef_parse_hef" in report["checks_run"]
    # what only a board (HailoRT + a device) or attached emulator outputs can verify is skipped, with why;
    # everything else ran
    skipped = {s["id"].split("[")[0]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"test_hailo.py::test_emulator_int8", "test_hailo.py::test_hef_on_device"}, skipped
    assert skipped["test_hailo.py::test_emulator_int8"].startswith("int8 emulator outputs not attached")
    assert skipped["test_hailo.py::test_hef_on_device"].startswith("needs a Hailo device with HailoRT: ")


def _request(kit: Path, tmp_path: Path) -> hailo_compile.CompileRequest:
    return hailo_compile.CompileRequest(
        onnx=kit / "model.onnx",
        calib=kit / "calib_set.npy",
        script=kit / "model_script.alls",
        hef=tmp_path / "out.hef",
        net_name="conv2d_fsq",
        hw_arch="hailo8l",
        input_name="imu_input",
        input_shape=(1, 9, 2, 100),
        end_nodes=("/Sub", "/classifier/classifier.2/Gemm"),
    )


def test_run_dfc_and_its_failures(
    example_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = example_bundle / "models/hailo"
    for key, value in fake_env(hailortcli=False).items():
        monkeypatch.setenv(key, value)
    assert hailo_compile.run_dfc(_request(kit, tmp_path)) == "3.27.0"
    from conv2d_bundle.targets.hailo.hef import read_hef

    assert read_hef(tmp_path / "out.hef").hw_arch == "HAILO8L"
    monkeypatch.setenv("FAKE_HAILO_FAIL", "optimize")
    with pytest.raises(ExportError, match="fake DFC: optimize failed: UnsupportedModelError"):
        hailo_compile.run_dfc(_request(kit, tmp_path))
    monkeypatch.delenv("FAKE_HAILO_FAIL")
    bad = _request(kit, tmp_path)
    bad = hailo_compile.CompileRequest(**{**bad.__dict__, "end_nodes": ("/NoSuchNode",)})
    with pytest.raises(ExportError, match="end node '/NoSuchNode' not found"):
        hailo_compile.run_dfc(bad)


def test_dfc_available_follows_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    assert hailo_compile.dfc_available() is False
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "fakes"))
    assert hailo_compile.dfc_available() is True
    sys.modules.pop("hailo_sdk_client", None)


def test_calibration_from_config(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    windows = rng.standard_normal((80, 9, 2, 100)).astype(np.float64)
    path = tmp_path / "real.npy"
    np.save(path, windows)
    calib, info = calibration_set(
        {"calibration_data": str(path)}, np.zeros((64, 9, 2, 100), np.float32), (1, 9, 2, 100), 0
    )
    assert calib.dtype == np.float32 and calib.shape == (80, 2, 100, 9)
    np.testing.assert_allclose(calib[3, 1, 40], windows[3, :, 1, 40].astype(np.float32))
    assert info["source"] == "config"
    np.save(path, windows[:10])
    with pytest.raises(ConfigError, match="10 windows, at least 64"):
        calibration_set({"calibration_data": str(path)}, windows, (1, 9, 2, 100), 0)
    np.save(path, windows.transpose(0, 2, 3, 1))
    with pytest.raises(ConfigError, match=r"expected \[N, 9, 2, 100\] \(NCHW\)"):
        calibration_set({"calibration_data": str(path)}, windows, (1, 9, 2, 100), 0)


def test_relative_calibration_data_is_taken_from_the_config_directory(tmp_path: Path) -> None:
    """As docker-compose and others do; EXP_HASH covers the path as written, not where the config lies."""
    import yaml

    from conv2d_bundle.bundle.digest import experiment_hash, sha256_file
    from conv2d_bundle.config import load_config

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    windows = np.random.default_rng(2).standard_normal((70, 9, 2, 100)).astype(np.float32)
    np.save(project / "calib.npy", windows)
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data.setdefault("export", {}).setdefault("hailo", {})["calibration_data"] = "calib.npy"
    config = project / "dogs.yaml"
    config.write_text(yaml.safe_dump(data))
    p = conv2d(
        "pack", "create", "--config", str(config), "--model", str(EXAMPLE_MODEL),
        "--output-dir", str(tmp_path / "out"), "--formats", "onnx,hailo", "--json", cwd=elsewhere,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    made = last_json(p.stdout)
    bundle = Path(made["bundle_dir"])
    calib = np.load(bundle / "models" / "hailo" / "calib_set.npy")
    np.testing.assert_array_equal(calib, windows.transpose(0, 2, 3, 1))
    info = json.loads((bundle / "metadata.json").read_text())["formats"]["hailo"]["calibration"]
    assert info["source"] == "config" and info["path"] == "calib.npy"
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "dogs.yaml").write_text(config.read_text())
    assert load_config(moved / "dogs.yaml").data == load_config(config).data
    assert made["exp_hash"] == experiment_hash(
        load_config(moved / "dogs.yaml").data, sha256_file(EXAMPLE_MODEL)
    )


def test_synthetic_calibration_warns() -> None:
    ref = np.ones((64, 9, 2, 100), np.float32)
    with pytest.warns(BundleWarning, match="real windows quantize better"):
        calib, info = calibration_set({}, ref, (1, 9, 2, 100), 3)
    assert calib.shape == (256, 2, 100, 9) and info["source"] == "reference+synthetic"
    assert (calib[:64] == 1).all() and calib[64:].std() > 0.5


def test_calibration_defaults_to_the_real_golden_source() -> None:
    """export.reference.inputs and no calibration_data: a seeded sample of the file's windows (no warning), topped
    up with synthetic ones (and a warning) only below the minimum a calibration needs."""
    import warnings

    from conv2d_bundle.config import ReferenceInputs

    rng = np.random.default_rng(0)
    ref = np.ones((64, 9, 2, 100), np.float32)
    many = ReferenceInputs(
        "w.npy", Path("w.npy"), "c" * 64, rng.standard_normal((300, 9, 2, 100), np.float32)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calib, info = calibration_set({}, ref, (1, 9, 2, 100), 0, real=many)
    assert calib.shape == (256, 2, 100, 9)
    rows = {r.tobytes() for r in many.windows}
    assert all(np.ascontiguousarray(c.transpose(2, 0, 1)).tobytes() in rows for c in calib)
    assert (info["source"], info["path"], info["sha256"], info["windows"], info["synthetic"]) == (
        "reference.inputs", "w.npy", "c" * 64, 256, 0,
    )  # fmt: skip
    few = ReferenceInputs("f.npy", Path("f.npy"), "d" * 64, many.windows[:40])
    with pytest.warns(
        BundleWarning, match=r"40 of the 40 windows of export.reference.inputs \(f.npy\) \+ 24 random"
    ):
        calib, info = calibration_set({}, ref, (1, 9, 2, 100), 0, real=few)
    assert calib.shape == (64, 2, 100, 9) and (info["windows"], info["synthetic"]) == (40, 24)


def test_int8_thresholds() -> None:
    limits = thresholds({"min_code_agreement": 0.9})
    assert limits == {"code_agreement": 0.9, "argmax_agreement": 0.95}
    messages = below_thresholds({"code_agreement": 0.35, "argmax_agreement": 0.995}, limits)
    assert len(messages) == 1 and "FSQ codes for 35.0%" in messages[0]
    assert below_thresholds({"error": "x"}, limits) == []


def test_model_without_split_exports_whole(tmp_path: Path) -> None:
    import torch

    from conv2d_bundle.config import load_config
    from conv2d_bundle.models.loading import load_model

    cfg = load_config(EXAMPLE_CONFIG)
    inner = load_model(cfg.model, EXAMPLE_MODEL)

    class Whole(torch.nn.Module):  # no device_forward
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.inner(x)

    with pytest.warns(BundleWarning, match="has no device_forward"):
        export = export_device_onnx(Whole().eval(), cfg.model, tmp_path / "m.onnx", opset=13, metadata={})
    assert export.split is False and export.output_names == ("behavioral_codes", "confidence")
