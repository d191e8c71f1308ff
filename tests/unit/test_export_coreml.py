"""Core ML export: spec contents, metadata, typed errors and byte-reproducible files."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
# coremltools is imported by the ``ct`` fixture, not here: the subprocess test imports this file and must
# see coremltools' first (noisy) import happen inside the export
import torch

from conv2d_bundle.errors import ExportError, MissingExtraError
from conv2d_bundle.targets.ios.export import (
    CoreMLExport,
    export_coreml,
    normalize_mlmodel_spec,
    normalize_mlpackage,
)

INPUT_SHAPE = (1, 9, 2, 100)
DATE_KEY = "com.github.apple.coremltools.conversion_date"
METADATA = {
    "exp_hash": "0123456789ab",
    "labels": json.dumps(["rest", "walk", "run", "groom"]),
    "system_version": "0.1.0",
}
NOISE = ("has not been tested", "Failed to load", "Running MIL", "Converting PyTorch", "%|")
Exports = dict[str, CoreMLExport]


class StandInModel(torch.nn.Module):
    """Shaped like the reference model: [N, 9, 2, 100] -> int64 codes [N], softmax confidence [N, 4]."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(9, 8, kernel_size=(1, 5))
        self.norm = torch.nn.BatchNorm2d(8)
        self.latent = torch.nn.Linear(8, 3)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x: Any) -> tuple[Any, Any]:
        h = torch.relu(self.norm(self.conv(x))).mean(dim=(2, 3))
        digits = torch.round(torch.tanh(self.latent(h)) * 2) + 2  # FSQ-like: 3 digits in 0..4
        codes = (digits * torch.tensor([1.0, 5.0, 25.0])).sum(dim=-1).to(torch.int64)
        return codes, torch.softmax(self.head(h), dim=-1)


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (or of ``root`` itself), by posix relative path."""
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def ct() -> Any:
    return pytest.importorskip("coremltools")


def load_spec(ct: Any, path: Path) -> Any:
    return ct.utils.load_spec(str(path))


@pytest.fixture(scope="module")
def exported(ct: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, CoreMLExport]:
    out = tmp_path_factory.mktemp("coreml")
    model = StandInModel().train()  # export_coreml must switch it to eval mode itself
    package = export_coreml(
        model,
        INPUT_SHAPE,
        out / "coreml.mlpackage",
        metadata=METADATA,
        version="0.1.0",
        short_description="stand-in",
        input_descriptions={"imu_input": "IMU window"},
        output_descriptions={"confidence": "class probabilities"},
    )
    assert not model.training
    legacy = export_coreml(
        StandInModel(),
        INPUT_SHAPE,
        out / "legacy" / "coreml.mlpackage",
        minimum_deployment_target="iOS13",
        metadata=METADATA,
    )
    return {"iOS15": package, "iOS13": legacy}


def test_ios15_writes_an_fp32_ml_program_with_flexible_batch(ct: Any, exported: Exports) -> None:
    result = exported["iOS15"]
    assert result.path.name == "coreml.mlpackage" and result.path.is_dir()
    assert (result.model_format, result.codes_dtype) == ("mlprogram", "int32")
    assert result.coremltools_version == ct.__version__
    spec = load_spec(ct, result.path)
    assert spec.WhichOneof("Type") == "mlProgram"
    assert spec.specificationVersion == result.specification_version >= 6
    (inp,) = spec.description.input
    assert inp.name == "imu_input"
    array = inp.type.multiArrayType
    assert array.dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    ranges = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
    assert ranges == [(1, 64), (9, 9), (2, 2), (100, 100)]
    assert [o.name for o in spec.description.output] == ["behavioral_codes", "confidence"]


def test_ios13_writes_a_neuralnetwork_mlmodel(ct: Any, exported: Exports) -> None:
    result = exported["iOS13"]
    assert result.path.name == "coreml.mlmodel" and result.path.is_file()  # suffix switched
    assert (result.model_format, result.specification_version, result.codes_dtype) == (
        "neuralnetwork",
        4,
        "float32",
    )
    spec = load_spec(ct, result.path)
    assert spec.WhichOneof("Type") == "neuralNetwork" and spec.specificationVersion == 4
    assert [o.name for o in spec.description.output] == ["behavioral_codes", "confidence"]
    assert DATE_KEY not in spec.description.metadata.userDefined


def test_metadata_is_written_without_the_conversion_date(ct: Any, exported: Exports) -> None:
    meta = load_spec(ct, exported["iOS15"].path).description.metadata
    assert DATE_KEY not in meta.userDefined
    assert {k: meta.userDefined[k] for k in METADATA} == METADATA
    assert (meta.author, meta.versionString, meta.shortDescription) == ("conv2d-bundle", "0.1.0", "stand-in")
    described = {f.name: f.shortDescription for f in load_spec(ct, exported["iOS15"].path).description.output}
    assert described["confidence"] == "class probabilities"


def test_package_is_world_readable(exported: Exports) -> None:
    for dirpath, _dirs, files in os.walk(exported["iOS15"].path):
        assert os.stat(dirpath).st_mode & 0o777 == 0o755, dirpath
        for name in files:
            assert os.stat(os.path.join(dirpath, name)).st_mode & 0o777 == 0o644, name


def test_opening_a_copy_changes_no_byte(ct: Any, exported: Exports, tmp_path: Path) -> None:
    copy = tmp_path / "copy.mlpackage"
    shutil.copytree(exported["iOS15"].path, copy)
    before = tree_digest(copy)
    ct.models.MLModel(str(copy), skip_model_load=True)  # rewrites Manifest.json on Linux too
    assert tree_digest(copy) == before
    normalize_mlpackage(copy)  # idempotent
    assert tree_digest(copy) == before


def test_normalize_mlmodel_spec_leaves_its_argument_alone(ct: Any) -> None:
    spec = ct.proto.Model_pb2.Model()
    spec.description.metadata.userDefined[DATE_KEY] = "2026-01-01"
    spec.description.metadata.userDefined["b"], spec.description.metadata.userDefined["a"] = "2", "1"
    data = normalize_mlmodel_spec(spec)
    assert DATE_KEY in spec.description.metadata.userDefined
    parsed = ct.proto.Model_pb2.Model.FromString(data)
    assert dict(parsed.description.metadata.userDefined) == {"a": "1", "b": "2"}


_EXPORT_SCRIPT = """
import hashlib, importlib.util, json, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("standin", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
out = Path(sys.argv[2])
for target in ("iOS15", "iOS13"):
    mod.export_coreml(mod.StandInModel(), mod.INPUT_SHAPE, out / target / "coreml.mlpackage",
                      minimum_deployment_target=target, metadata=mod.METADATA)
print(json.dumps(mod.tree_digest(out)))
"""


def test_separate_processes_write_identical_files(ct: Any, tmp_path: Path) -> None:
    """Fresh interpreters (different hash seeds, own uuid4s) must write the same bytes; stderr stays quiet."""
    path = os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _EXPORT_SCRIPT, __file__, str(tmp_path / f"run{seed}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": path, "PYTHONHASHSEED": str(seed)},
        )
        for seed in (1, 2)
    ]
    results = [run.communicate(timeout=120) for run in runs]
    for run, (_out, err) in zip(runs, results, strict=True):
        assert run.returncode == 0, err
        assert not [n for n in NOISE if n in err], err  # import-time and converter noise went to logging
    first, second = (json.loads(out) for out, _err in results)
    assert len(first) == 4  # Manifest.json, model.mlmodel, weight.bin and the iOS13 .mlmodel
    assert first == second


def test_converter_noise_goes_to_debug_log(
    ct: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG, logger="conv2d_bundle.targets.ios.export")
    export_coreml(StandInModel(), INPUT_SHAPE, tmp_path / "m.mlpackage")
    out, err = capfd.readouterr()
    assert not [n for n in NOISE if n in out + err], out + err
    assert "Running MIL" in caplog.text
    assert logging.getLogger("coremltools").propagate  # restored


def test_converter_failure_is_an_export_error(ct: Any, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="Core ML conversion failed: Number of outputs"):
        export_coreml(StandInModel(), INPUT_SHAPE, tmp_path / "m.mlpackage", output_names=("a", "b", "c"))
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no staging directory left


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"minimum_deployment_target": "iOS12"}, "accepted: iOS13, iOS14, iOS15"),
        ({"batch_range": (4, 2)}, "batch_range"),
        ({"output_descriptions": {"logits": "x"}}, "unknown outputs"),
        ({"metadata": {"exp_hash": 3}}, "str to str"),
    ],
)
def test_bad_arguments_are_export_errors(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        export_coreml(StandInModel(), INPUT_SHAPE, tmp_path / "m.mlpackage", **kwargs)


def test_missing_coremltools_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "coremltools", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'conv2d-bundle\[coreml\]'") as info:
        export_coreml(StandInModel(), INPUT_SHAPE, tmp_path / "m.mlpackage")
    assert isinstance(info.value, ExportError)
