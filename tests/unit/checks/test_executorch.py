"""The ExecuTorch checks (``conv2d_bundle/targets/executorch/test_executorch.py``) called directly, the ones that
need no runtime: the bundled program's cases are the example's golden rows and its embedded program is
``models/model.pte`` byte for byte; an embedded program that differs in any way, even one byte, fails naming
both files."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from conv2d_bundle.targets.executorch import BPTE_FILE, PTE_FILE
from conv2d_bundle.targets.executorch import test_executorch as checks
from conv2d_bundle.targets.executorch.bundled import BundledCase, BundledFile
from tests.unit.checks import fails, passes

#: the start of a .pte (flatbuffer root offset, file identifier ET12) and a body: the check compares bytes only
PROGRAM = b"\x1c\x00\x00\x00ET12" + bytes(range(256)) * 4
NOT_THE_PTE = f"{BPTE_FILE}: the embedded program is not {PTE_FILE}"


@pytest.fixture(scope="module")
def golden(example_bundle: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    inputs = np.load(example_bundle / "reference" / "inputs.npy")
    with np.load(example_bundle / "reference" / "outputs.npz") as data:
        return inputs, {k: data[k] for k in data.files}


@pytest.fixture
def pte_bundle(tmp_path: Path) -> SimpleNamespace:
    """A bundle whose ``models/model.pte`` is ``PROGRAM`` (the ``path`` of a Bundle, nothing else)."""
    (tmp_path / PTE_FILE).parent.mkdir(parents=True)
    (tmp_path / PTE_FILE).write_bytes(PROGRAM)
    return SimpleNamespace(bundle_dir=tmp_path, path=lambda rel: tmp_path / rel)


def bundled_file(golden: Any, model_spec: Any, program: bytes) -> BundledFile:
    """A ``.bpte`` as ``read_bundled`` returns it: the golden cases of batches 1, 7 and all rows, and ``program``."""
    inputs, outputs = golden
    cases = [
        BundledCase([inputs[:n].copy()], [outputs[name][:n].copy() for name in model_spec.output_names])
        for n in (1, 7, int(inputs.shape[0]))
    ]
    return BundledFile(version=1, suites={"forward": cases}, program=program)


def golden_check(golden: Any, model_spec: Any, bundle: Any, program: bytes) -> Any:
    """``test_bundled_cases_are_the_golden_ones`` as a callable of nothing, on golden cases and ``program``."""
    inputs, outputs = golden
    return lambda: checks.test_bundled_cases_are_the_golden_ones(
        bundled_file(golden, model_spec, program), bundle, inputs, outputs, model_spec, {}
    )


def one_byte_changed(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_bundled_program_embedding_the_pte_passes(golden: Any, model_spec: Any, pte_bundle: Any) -> None:
    details: dict[str, Any] = {}
    inputs, outputs = golden
    passes(
        checks.test_bundled_cases_are_the_golden_ones,
        bundled_file(golden, model_spec, bytes(PROGRAM)),
        pte_bundle,
        inputs,
        outputs,
        model_spec,
        details,
    )
    assert details["cases"] == [1, 7, int(inputs.shape[0])]


@pytest.mark.parametrize(
    "program",
    [
        pytest.param(one_byte_changed(PROGRAM, len(PROGRAM) // 2), id="one-byte-changed-in-the-middle"),
        pytest.param(one_byte_changed(PROGRAM, 0), id="first-byte-changed"),
        pytest.param(one_byte_changed(PROGRAM, len(PROGRAM) - 1), id="last-byte-changed"),
        pytest.param(b"\x1c\x00\x00\x00ET12" + bytes(range(255, -1, -1)) * 4, id="another-program-same-size"),
        pytest.param(b"\x1c\x00\x00\x00ET12" + b"\x07" * 100, id="another-smaller-program"),
        pytest.param(PROGRAM[:-1], id="the-pte-truncated"),
        pytest.param(PROGRAM + b"\x00", id="the-pte-with-a-byte-appended"),
        pytest.param(PROGRAM * 2, id="the-pte-twice"),
        pytest.param(b"", id="no-program"),
    ],
)
def test_bundled_program_embedding_another_program_fails(
    golden: Any, model_spec: Any, pte_bundle: Any, program: bytes
) -> None:
    """The cases are the golden ones, so the only problem, and the whole message, is the embedded program: any
    non-empty program is not enough, it must be ``models/model.pte`` byte for byte."""
    assert program != PROGRAM
    assert fails(golden_check(golden, model_spec, pte_bundle, program)) == NOT_THE_PTE


def test_a_changed_pte_no_longer_matches_the_program_embedded_before(
    golden: Any, model_spec: Any, pte_bundle: Any
) -> None:
    """The other side: the .bpte embeds the program as built and ``models/model.pte`` is later changed."""
    passes(golden_check(golden, model_spec, pte_bundle, PROGRAM))
    pte_bundle.path(PTE_FILE).write_bytes(one_byte_changed(PROGRAM, 100))
    assert fails(golden_check(golden, model_spec, pte_bundle, PROGRAM)) == NOT_THE_PTE


def test_the_program_problem_is_reported_with_the_case_problems(
    golden: Any, model_spec: Any, pte_bundle: Any
) -> None:
    inputs, outputs = golden
    bpte = bundled_file(golden, model_spec, one_byte_changed(PROGRAM, 9))
    bpte.suites["forward"][0].inputs[0].flat[0] += 1.0
    assert fails(
        checks.test_bundled_cases_are_the_golden_ones, bpte, pte_bundle, inputs, outputs, model_spec, {}
    ) == (
        f"{BPTE_FILE}: case 0: inputs are not the first rows of reference/inputs.npy; "
        f"the embedded program is not {PTE_FILE}"
    )
