"""`--target executorch`: a bundle made with ExecuTorch passes with parity executed here; a program from other
weights fails parity naming the output; the bundled cases are checked against reference/; without torch the
runtime's checks are skipped, saying what to install."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL, ROOT, check_outcome, reseal

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("executorch") is None,
    reason="executorch not installed (conv2d-bundle[executorch])",
)


NO_TORCH = """
import sys


class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NoTorch())
"""


@pytest.fixture
def et_bundle(all_formats_bundle: Path) -> Path:
    """The example with every format, ExecuTorch among them (read-only use: tests take ``et_copy``)."""
    return all_formats_bundle


@pytest.fixture
def et_copy(et_bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "artifacts" / et_bundle.name
    shutil.copytree(et_bundle, dst)
    shutil.rmtree(dst / "validation", ignore_errors=True)
    return dst


def test_passes_with_parity_executed(et_copy: Path, run_checks: Any) -> None:
    rc, report, out = run_checks(et_copy, "executorch")
    assert rc == 0, out[-2000:]
    assert report is not None and report["verdict"] == "passed" and report["skipped"] == []
    ran = set(report["checks_run"])
    assert {
        f"test_targets.py::test_parity[executorch-{o}-{n}]"
        for o in ("behavioral_codes", "confidence")
        for n in (1, 7, 64)
    } <= ran
    assert "test_executorch.py::test_bundled_cases_are_the_golden_ones" in ran
    details = {c["id"]: c.get("details", {}) for c in report["checks"]}
    assert details["test_targets.py::test_parity[executorch-confidence-64]"]["max_abs_error"] < 1e-5
    assert details["test_executorch.py::test_bundled_cases_are_the_golden_ones"]["cases"] == [1, 7, 64]


def test_program_from_other_weights_fails_parity_naming_the_output(et_copy: Path, run_checks: Any) -> None:
    import torch

    from conv2d_bundle.config import load_config
    from conv2d_bundle.models.loading import load_model, outputs_in_config_order
    from conv2d_bundle.targets.executorch.export import bundled_program, export_program

    cfg = load_config(EXAMPLE_CONFIG)
    model = load_model(cfg.model, EXAMPLE_MODEL)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p, generator=torch.Generator().manual_seed(1)))
    program = export_program(outputs_in_config_order(model, cfg.model), cfg.model.input_shape, 64)
    (et_copy / "models/model.pte").write_bytes(program.buffer)
    inputs = np.load(et_copy / "reference/inputs.npy")
    outputs = dict(np.load(et_copy / "reference/outputs.npz"))
    bpte = bundled_program(program, inputs, outputs, cfg.model.output_names, [1, 7])
    (et_copy / "models/model.bpte").write_bytes(bpte)
    reseal(et_copy)
    rc, report, out = run_checks(et_copy, "executorch", "-k", "test_parity or test_bundled")
    assert rc == 1 and report is not None, out[-2000:]
    outcome, message = check_outcome(report, "test_targets.py::test_parity[executorch-confidence-64]")
    assert outcome == "failed" and message.startswith("executorch parity, batch 64: confidence: "), message
    outcome, message = check_outcome(report, "test_executorch.py::test_bundled_cases_are_the_golden_ones")
    assert (
        outcome == "passed"
    )  # the cases are reference/'s, the embedded program is this .pte: the parity catches it


def test_a_dead_program_answering_the_majority_fails_naming_the_constant(
    et_copy: Path, run_checks: Any
) -> None:
    """A program that ignores its input and answers the golden set's majority code (95% of the windows) and one
    fixed probability row: the parity over all the windows fails, naming the constant answer it is no better than."""
    import torch

    from conv2d_bundle.config import load_config
    from conv2d_bundle.targets.executorch.export import export_program

    class Dead(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            zeros = x.mean(dim=(1, 2, 3)) * 0
            row = torch.tensor([0.7, 0.1, 0.1, 0.1])
            return zeros.to(torch.int64) + 500, zeros[:, None] + row

    cfg = load_config(EXAMPLE_CONFIG)
    (et_copy / "models/model.pte").write_bytes(export_program(Dead(), cfg.model.input_shape, 64).buffer)
    reseal(et_copy)
    rc, report, out = run_checks(et_copy, "executorch", "-k", "test_parity")
    assert rc == 1 and report is not None, out[-2000:]
    outcome, message = check_outcome(report, "test_targets.py::test_parity[executorch-behavioral_codes-64]")
    assert outcome == "failed", message
    assert "code agreement 95.3% is no better than answering the constant code 500" in message, message
    for n in (1, 7, 64):
        outcome, message = check_outcome(report, f"test_targets.py::test_parity[executorch-confidence-{n}]")
        assert outcome == "failed" and "top-1 agreement" in message, message


def test_bundled_cases_that_are_not_the_reference_fail(et_copy: Path, run_checks: Any) -> None:
    from conv2d_bundle.targets.executorch.bundled import read_bundled

    original = read_bundled((et_copy / "models/model.bpte").read_bytes())
    assert [c.inputs[0].shape[0] for c in original.suites["forward"]] == [1, 7, 64]
    ref = np.load(et_copy / "reference/inputs.npy")
    ref[0, 0, 0, 0] += 1.0
    np.save(et_copy / "reference/inputs.npy", ref)
    reseal(et_copy)
    rc, report, out = run_checks(et_copy, "executorch", "-k", "test_bundled")
    assert rc == 1 and report is not None, out[-2000:]
    outcome, message = check_outcome(report, "test_executorch.py::test_bundled_cases_are_the_golden_ones")
    assert outcome == "failed" and "case 0: inputs are not the first rows of reference/inputs.npy" in message


def test_bundled_program_embedding_another_program_fails(et_copy: Path, run_checks: Any) -> None:
    """A .bpte whose embedded program is models/model.pte with one byte changed: still a valid BundledProgram
    with the golden cases, still a non-empty program, but not this program."""
    from conv2d_bundle.targets.executorch.bundled import read_bundled

    pte = (et_copy / "models/model.pte").read_bytes()
    bpte = (et_copy / "models/model.bpte").read_bytes()
    at = bpte.find(pte)  # the program is stored whole, as a byte vector of the flatbuffer
    assert at > 0 and read_bundled(bpte).program == pte
    flip = at + len(pte) // 2
    changed = bpte[:flip] + bytes([bpte[flip] ^ 0x01]) + bpte[flip + 1 :]
    embedded = read_bundled(changed).program
    assert len(embedded) == len(pte) and embedded != pte
    (et_copy / "models/model.bpte").write_bytes(changed)
    reseal(et_copy)
    rc, report, out = run_checks(et_copy, "executorch", "-k", "test_bundled")
    assert rc == 1 and report is not None, out[-2000:]
    outcome, message = check_outcome(report, "test_executorch.py::test_bundled_cases_are_the_golden_ones")
    assert outcome == "failed"
    assert message == "models/model.bpte: the embedded program is not models/model.pte"  # the only problem


def test_without_torch_the_runtime_checks_say_what_to_install(
    et_copy: Path, run_checks: Any, tmp_path: Path
) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(NO_TORCH)  # the device install: no torch at all
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), str(ROOT)])}
    rc, report, out = run_checks(et_copy, "executorch", env=env)
    assert rc == 0 and report is not None, out[-2000:]
    reasons = {s["reason"] for s in report["skipped"]}
    assert reasons == {"ExecuTorch runtime needs torch: install conv2d-bundle[executorch]"}
    assert "test_executorch.py::test_bundled_cases_are_the_golden_ones" in report["checks_run"]  # torch-free
    # "passed" with skips is shown as "not verified (n skipped)"; --strict-targets turns the skips into failures
    assert report["verdict"] == "passed" and len(report["skipped"]) >= 6
