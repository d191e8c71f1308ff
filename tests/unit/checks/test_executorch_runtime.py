"""The ExecuTorch checks that need the runtime's loaded ``forward`` method, called directly with a stand-in for
it: its declared inputs and outputs, the inputs it must refuse, and the fuzzing check's bookkeeping. What the
real runtime answers is tests/plugin's and the bundle checks' own business; these pin each check's verdict and
message.

Written for the 2026-12-05 mutation run (tests/README.md): no unit test reached these checks before (mutmut's
"no tests").
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from conv2d_bundle.errors import BundleWarning
from conv2d_bundle.parity.fuzzing import invalid_shapes
from conv2d_bundle.targets.executorch import BPTE_FILE, PTE_FILE
from conv2d_bundle.targets.executorch import test_executorch as checks
from conv2d_bundle.targets.executorch.bundled import BundledCase
from tests.unit.checks import fails, passes

FLOAT32, INT64, FLOAT16 = 6, 4, 5
MAX_BATCH = 8
INFO = {"max_batch": MAX_BATCH}
SPEC = SimpleNamespace(
    input_shape=[1, 3, 4, 16],
    outputs=[
        SimpleNamespace(name="codes", dtype="int64"),
        SimpleNamespace(name="confidence", dtype="float32"),
    ],
    output_names=["codes", "confidence"],
    output=lambda name: {
        "codes": SimpleNamespace(dtype="int64"),
        "confidence": SimpleNamespace(dtype="float32"),
    }[name],
)


class TensorMeta:
    def __init__(self, sizes: list[int], dtype: int) -> None:
        self._sizes, self._dtype = sizes, dtype

    def sizes(self) -> list[int]:
        return self._sizes

    def dtype(self) -> int:
        return self._dtype


class Method:
    """``forward`` as the runtime loads it: its metadata, and ``execute`` that answers what ``answers`` allows."""

    def __init__(
        self,
        inputs: list[TensorMeta] | None = None,
        outputs: list[TensorMeta] | None = None,
        answers: Any = None,
    ) -> None:
        ins = inputs if inputs is not None else [TensorMeta([MAX_BATCH, 3, 4, 16], FLOAT32)]
        outs = (
            outputs
            if outputs is not None
            else [TensorMeta([MAX_BATCH, 4], INT64), TensorMeta([MAX_BATCH], FLOAT32)]
        )
        self.metadata = SimpleNamespace(
            num_inputs=lambda: len(ins),
            num_outputs=lambda: len(outs),
            input_tensor_meta=lambda i: ins[i],
            output_tensor_meta=lambda i: outs[i],
        )
        self.answers = answers or (lambda x: tuple(x.shape[1:]) == (3, 4, 16) and x.shape[0] <= MAX_BATCH)
        self.executed: list[Any] = []

    def execute(self, args: list[Any]) -> list[Any]:
        (x,) = args
        self.executed.append(x)
        if x.dtype != torch.float32 or not self.answers(x):
            raise RuntimeError("Execution failed with error 0x12")
        return [x]


def test_a_program_of_one_input_loads() -> None:
    details: dict[str, Any] = {}
    passes(checks.test_program_loads, Method(), details)
    assert details == {"inputs": 1, "outputs": 2}
    two = Method(inputs=[TensorMeta([1], FLOAT32), TensorMeta([1], FLOAT32)])
    assert fails(checks.test_program_loads, two, {}) == f"{PTE_FILE} forward takes 2 inputs, expected 1"


def test_the_input_is_float32_planned_for_the_maximum_batch() -> None:
    details: dict[str, Any] = {}
    passes(checks.test_input_declared, Method(), SPEC, INFO, details)
    assert details == {"sizes": [MAX_BATCH, 3, 4, 16], "dtype": FLOAT32}
    half = Method(inputs=[TensorMeta([MAX_BATCH, 3, 4, 16], FLOAT16)])
    assert fails(checks.test_input_declared, half, SPEC, INFO, {}) == (
        f"{PTE_FILE} input dtype code 5, expected float32 (6)"
    )
    one = Method(inputs=[TensorMeta([1, 3, 4, 16], FLOAT32)])
    assert fails(checks.test_input_declared, one, SPEC, INFO, {}) == (
        f"{PTE_FILE} input planned as [1, 3, 4, 16], expected [8, 3, 4, 16] (max batch, then the config's axes)"
    )
    # no max batch recorded: 0 is expected, so any planned batch fails
    assert "expected [0, 3, 4, 16]" in fails(checks.test_input_declared, Method(), SPEC, {}, {})


def test_each_output_has_its_dtype_and_is_batch_first() -> None:
    for name in SPEC.output_names:
        passes(checks.test_output_declared, Method(), SPEC, INFO, name)
    one = Method(outputs=[TensorMeta([MAX_BATCH, 4], INT64)])
    assert fails(checks.test_output_declared, one, SPEC, INFO, "codes") == (
        f"{PTE_FILE} forward returns 1 outputs, the config names ['codes', 'confidence']"
    )
    swapped = Method(outputs=[TensorMeta([MAX_BATCH, 4], INT64), TensorMeta([MAX_BATCH], INT64)])
    assert fails(checks.test_output_declared, swapped, SPEC, INFO, "confidence") == (
        f"{PTE_FILE} output confidence dtype code 4, expected 6"
    )
    for sizes in ([], [4, MAX_BATCH]):
        method = Method(outputs=[TensorMeta([MAX_BATCH, 4], INT64), TensorMeta(sizes, FLOAT32)])
        assert fails(checks.test_output_declared, method, SPEC, INFO, "confidence") == (
            f"{PTE_FILE} output confidence planned as {sizes}: batch-first expected"
        )
    zero = Method(outputs=[TensorMeta([0, 4], INT64), TensorMeta([0], FLOAT32)])
    passes(checks.test_output_declared, zero, SPEC, {}, "codes")  # no max batch recorded: 0


def test_a_runtime_that_refuses_what_it_must_passes_quietly(recwarn: pytest.WarningsRecorder) -> None:
    details: dict[str, Any] = {}
    method = Method()
    passes(checks.test_invalid_inputs_refused, method, SPEC, INFO, details)
    assert details == {"answered_invalid": [], "runtime_answers_shapes": []}
    assert [w for w in recwarn if issubclass(w.category, BundleWarning)] == []
    tried = [(str(x.dtype), tuple(x.shape)) for x in method.executed]
    assert tried[:5] == [
        ("torch.float32", (MAX_BATCH + 1, 3, 4, 16)),
        ("torch.float64", (2, 3, 4, 16)),
        ("torch.float16", (2, 3, 4, 16)),
        ("torch.int32", (2, 3, 4, 16)),
        ("torch.int64", (2, 3, 4, 16)),
    ]
    assert tried[5:] == [("torch.float32", s) for _, s in invalid_shapes((3, 4, 16))]


def test_a_runtime_that_answers_an_oversized_batch_fails() -> None:
    details: dict[str, Any] = {}
    method = Method(answers=lambda x: True)
    assert fails(checks.test_invalid_inputs_refused, method, SPEC, INFO, details) == (
        f"{PTE_FILE} answered inputs it must refuse: ['batch over the maximum']"
    )
    assert details["answered_invalid"] == ["batch over the maximum"]


def test_shapes_the_runtime_answers_without_checking_are_warned_about() -> None:
    # answers any float32 batch within the maximum, whatever its shape (the runtime checks the element count)
    method = Method(answers=lambda x: x.shape[0] <= MAX_BATCH)
    details: dict[str, Any] = {}
    with pytest.warns(BundleWarning) as record:
        passes(checks.test_invalid_inputs_refused, method, SPEC, INFO, details)
    assert details["answered_invalid"] == []
    assert details["runtime_answers_shapes"][:2] == ["rank 3 [2, 3, 4]", "rank 5 [2, 3, 4, 16, 1]"]
    assert len(details["runtime_answers_shapes"]) == 7
    assert [str(w.message) for w in record] == [
        "the ExecuTorch runtime answers 7 wrongly shaped inputs it does not check (e.g. rank 3 [2, 3, 4]): "
        "an app must check the window's shape itself"
    ]


class Counterexamples:
    def load(self) -> list[Any]:
        return [1, 2]


def test_fuzzing_reports_what_it_ran_and_fails_on_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import conv2d_bundle.parity.fuzzing as fuzzing

    calls: list[tuple[Any, ...]] = []
    seen: list[int] = [1, 5, 3]
    monkeypatch.setattr(fuzzing, "check_valid_inputs", lambda *args: calls.append(args) or seen)
    policy = SimpleNamespace(resolve=lambda o: f"tolerance of {o.name}")
    runner, saved = object(), Counterexamples()
    details: dict[str, Any] = {}
    passes(checks.test_fuzz_valid_inputs, runner, SPEC, INFO, 40, policy, saved, details)
    assert calls == [
        (runner, SPEC, {"codes": "tolerance of codes", "confidence": "tolerance of confidence"}, 40, 8, saved)
    ]
    assert details == {"counterexamples_replayed": 2, "examples": 3, "max_batch": 5}
    seen.clear()
    details = {}
    assert fails(checks.test_fuzz_valid_inputs, runner, SPEC, INFO, 40, policy, saved, details) == (
        "fuzzing ran no examples: nothing was verified"
    )
    assert details == {"counterexamples_replayed": 2, "examples": 0, "max_batch": 0}

    def broken(*args: Any) -> list[int]:
        raise AssertionError("batch 3: row 1 differs from its window run alone")

    monkeypatch.setattr(fuzzing, "check_valid_inputs", broken)
    assert fails(checks.test_fuzz_valid_inputs, runner, SPEC, INFO, 40, policy, saved, {}) == (
        "batch 3: row 1 differs from its window run alone"
    )


# -- the bundled program's cases, on small arrays -------------------------------------------------------------

INPUTS = np.arange(4 * 6, dtype=np.float32).reshape(4, 6)
OUTPUTS = {"codes": np.arange(4 * 2).reshape(4, 2), "confidence": np.linspace(0, 1, 4, dtype=np.float32)}


def _case(n: int, inputs: Any = None, expected: Any = None) -> BundledCase:
    return BundledCase(
        [INPUTS[:n]] if inputs is None else inputs,
        [OUTPUTS["codes"][:n], OUTPUTS["confidence"][:n]] if expected is None else expected,
    )


def _golden(tmp_path: Any, cases: Any) -> str:
    (tmp_path / PTE_FILE).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / PTE_FILE).write_bytes(b"program")
    bundle = SimpleNamespace(path=lambda rel: tmp_path / rel)
    bundled = SimpleNamespace(suites={"forward": cases} if cases is not None else {}, program=b"program")
    return fails(checks.test_bundled_cases_are_the_golden_ones, bundled, bundle, INPUTS, OUTPUTS, SPEC, {})


def test_bundled_cases_each_name_their_own_problem(tmp_path: Any) -> None:
    assert _golden(tmp_path, None) == f"{BPTE_FILE} embeds no test case for forward"
    cases = [
        # two inputs: not the golden rows, even though the first one is
        _case(1, inputs=[INPUTS[:1], INPUTS[:1]]),
        _case(1, inputs=[INPUTS[1:2]]),  # not the first rows
        _case(3, expected=[OUTPUTS["codes"][:3]]),  # one expected output of two
        _case(2, expected=[OUTPUTS["codes"][:2]]),
        _case(2, expected=[OUTPUTS["codes"][:2], OUTPUTS["confidence"][:2] + 1]),
        _case(4),
    ]
    assert _golden(tmp_path, cases) == (
        f"{BPTE_FILE}: case 0: inputs are not the first rows of reference/inputs.npy; case 1: inputs are not the "
        "first rows of reference/inputs.npy; case 2: 1 expected outputs, the config names 2; case 3: 1 expected "
        "outputs, the config names 2; case 4: expected confidence differs from reference/outputs.npz"
    )
