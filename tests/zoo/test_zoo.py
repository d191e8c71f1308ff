"""The model zoo acceptance suite (issue #26): architectures people ship, through every format and target.

Each model goes through ``conv2d pack create --formats onnx,coreml,hailo,executorch`` and
``conv2d pack verify --target all`` as a user runs them (the CLI, in this process: the worker has torch,
coremltools and onnxruntime imported already, which a subprocess per step would pay again). Every target must
pass except what cannot run on this host, and each of those must say why:

- ios: the ML Program reference interpreter runs the program here; Core ML ``predict()`` needs macOS
  (``test_parity[ios-...]`` skipped, "not verified");
- hailo: the kit's checks pass; ``test_hef_present`` fails (no Dataflow Compiler here: the HEF is compiled
  elsewhere and attached) and the checks that read the HEF or the emulator's outputs are skipped.

The models: the built-in Conv2dFSQ (codes + probabilities), a dict-output model of our own, and four
``transformers`` image classifiers built from small configs with random weights (tests/usermodels/zoo.py).
Each is built once, by the one test that verifies it (the built-in model's all-formats bundle is the run's shared
one, which the ExecuTorch checks use too: create finds it); README's zoo table is what this suite proves.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner

from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.cli import main
from conv2d_bundle.verify.verdict import bound_verdict
from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL
from tests.usermodels import zoo

FORMATS = "onnx,coreml,hailo,executorch"
CLASSIFIERS = ["resnet", "mobilenet_v2", "convnext", "regnet"]
MODELS = ["conv2d_fsq", "two_heads", *CLASSIFIERS]

#: the one check that fails for a reason of this host's, and the skips each target may have, by message
HOST_FAILURES = {"hailo": {"test_hailo.py::test_hef_present"}}
HOST_SKIPS = {
    "ios": "Core ML prediction needs macOS",
    "hailo": ("no models/hailo.hef to check", "int8 emulator outputs not attached"),
}


def _model_files(name: str, where: Path) -> tuple[Path, Path]:
    """(config, checkpoint) for a zoo model: the example's own files, or a config written as a user would."""
    if name == "conv2d_fsq":
        return EXAMPLE_CONFIG, EXAMPLE_MODEL
    spec = zoo.ZOO[name]
    model = getattr(zoo, name)()
    checkpoint = where / f"{name}.pt"
    torch.save(model.state_dict(), checkpoint)
    n_labels = 4 if name == "two_heads" else zoo.N_CLASSES
    config = {
        "name": f"zoo_{name}",
        "model": spec,
        "labels": [f"class_{i}" for i in range(n_labels)],
        "export": {"hailo": {"hw_arch": "hailo8"}, "reference": {"num_samples": 16, "seed": 0}},
    }
    path = where / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, checkpoint


def _cli(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the CLI run in this process."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _create(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """``pack create --formats onnx,coreml,hailo,executorch --json`` of a zoo model: what it printed. The
    built-in model's bundle is the run's shared all-formats one (the ExecuTorch checks verify it too), copied."""
    out = tmp_path / "artifacts"
    if name == "conv2d_fsq":
        shared: Path = request.getfixturevalue("all_formats_bundle")
        shutil.copytree(shared, out / shared.name, symlinks=True)
        shutil.rmtree(out / shared.name / "validation", ignore_errors=True)
        config, checkpoint = EXAMPLE_CONFIG, EXAMPLE_MODEL  # the same inputs: create finds the bundle
    else:
        config, checkpoint = _model_files(name, tmp_path)
    code, text, err = _cli(
        "pack", "create", "--config", str(config), "--model", str(checkpoint), "--output-dir", str(out),
        "--formats", FORMATS, "--json",
    )  # fmt: skip
    assert code == 0, err[-3000:]
    created: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    assert created["already_existed"] == (name == "conv2d_fsq")
    return created


@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_bundles_and_verifies_on_every_target(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    created = _create(name, tmp_path, request)
    out = tmp_path / "artifacts"
    assert created["formats"] == {"onnx": "built", "coreml": "built", "executorch": "built", "hailo": "kit"}

    code, text, err = _cli("pack", "verify", created["exp_hash"], "--output-dir", str(out), "--target", "all")
    assert code == 1, (text + err)[-3000:]  # the HEF is missing: compiled where the Dataflow Compiler is
    bundle = Bundle(Path(created["bundle_dir"]))
    digest = bundle.content_digest
    for target in ("general", "onnx", "ios", "executorch", "hailo"):
        report = json.loads((bundle.bundle_dir / "validation" / f"{target}_validation.json").read_text())
        assert report["check_profile"] == "default"
        verdict = bound_verdict(report, target=target, content_digest=digest, exp_hash=created["exp_hash"])
        failed = {c["id"] for c in report["checks"] if c["outcome"] == "failed"}
        assert failed == HOST_FAILURES.get(target, set()), (target, _outcomes(report))
        skipped = [c for c in report["checks"] if c["outcome"] == "skipped"]
        for check in skipped:
            assert target in HOST_SKIPS and check["message"].startswith(HOST_SKIPS[target]), (target, check)
        if target == "hailo":
            assert not verdict.passed
            continue
        assert verdict.passed, (target, verdict.describe(), _outcomes(report))
        assert report["counts"]["passed"] > 0

    ios = json.loads((bundle.bundle_dir / "validation" / "ios_validation.json").read_text())
    executed = [c for c in ios["checks"] if c["id"].startswith("test_ios.py::test_coreml_program_parity")]
    outputs = (
        [o["name"] for o in zoo.ZOO[name]["outputs"]]
        if name in zoo.ZOO
        else ["behavioral_codes", "confidence"]
    )
    for output in outputs:  # the program ran here, on every output, and agreed with the golden outputs
        assert any(f"[{output}-" in c["id"] and c["outcome"] == "passed" for c in executed), executed

    executorch = json.loads((bundle.bundle_dir / "metadata.json").read_text())["formats"]["executorch"]
    rows = 64 if name == "conv2d_fsq" else 16  # the golden windows: the example's 64, the zoo configs' 16
    # the program takes up to 64 windows; its bundled cases are capped by the golden rows
    assert executorch["max_batch"] == 64 and executorch["bundled_cases"] == sorted({1, 7, rows})
    ran = set(
        json.loads((bundle.bundle_dir / "validation" / "executorch_validation.json").read_text())[
            "checks_run"
        ]
    )
    assert {f"test_targets.py::test_parity[executorch-{o}-{n}]" for o in outputs for n in (1, 7, rows)} <= ran

    if name in CLASSIFIERS:  # the golden windows exercise the classes: agreement on them says something
        metadata = json.loads((bundle.bundle_dir / "metadata.json").read_text())
        coverage = metadata["model"]["reference"]["coverage"]
        assert coverage["degenerate"] == []
        assert coverage["classes"]["logits"]["distinct"] >= 5, coverage


def _outcomes(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["id"], c["outcome"], c["message"][:200]) for c in report["checks"] if c["outcome"] != "passed"]
