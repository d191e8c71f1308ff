"""ExecuTorch checks: the program loads, ``forward`` declares the configured input and outputs, the bundled
program embeds the golden cases of ``reference/`` and this very program, any valid batch is answered
sensibly (fuzzing), invalid inputs are refused, and, with ``--benchmark``, how fast it runs. Its parity with
the golden outputs is the shared check (``conv2d_bundle/checks/test_targets.py``) through the ExecuTorch runner.

The bundled program is read without torch; loading and running the program needs the ExecuTorch runtime,
which imports torch: where it is missing those checks are skipped, saying so.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from conv2d_bundle.errors import BundleError, BundleWarning
from conv2d_bundle.targets import get_target
from conv2d_bundle.targets.executorch import BPTE_FILE, PTE_FILE

pytestmark = pytest.mark.conv2d_target("executorch")

#: ExecuTorch ScalarType codes of the dtypes a config declares
SCALAR_CODES = {"int32": 3, "int64": 4, "float16": 5, "float32": 6}


@pytest.fixture(scope="session")
def et_info(bundle: Any) -> Any:
    return bundle.format_info("executorch")


@pytest.fixture(scope="session")
def et_method(bundle: Any) -> Any:
    """The program's ``forward`` method, loaded by the ExecuTorch runtime (skipped where it cannot run)."""
    capability = get_target("executorch").capability()
    if not capability.executes:
        pytest.skip(capability.reason)
    from conv2d_bundle.targets.executorch.runner import load_method

    try:
        return load_method(bundle.path(PTE_FILE))
    except BundleError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def et_runner(bundle: Any, et_method: Any) -> Any:
    return get_target("executorch").runner(bundle)


@pytest.fixture(scope="session")
def bundled(bundle: Any) -> Any:
    from conv2d_bundle.targets.executorch.bundled import read_bundled

    path = bundle.path(BPTE_FILE)
    if not path.is_file():
        pytest.fail(f"{BPTE_FILE} is missing")
    try:
        return read_bundled(path.read_bytes())
    except BundleError as exc:
        pytest.fail(f"{BPTE_FILE}: {exc}")


def test_program_loads(et_method: Any, check_details: dict) -> None:
    meta = et_method.metadata
    check_details.update(inputs=meta.num_inputs(), outputs=meta.num_outputs())
    if meta.num_inputs() != 1:
        pytest.fail(f"{PTE_FILE} forward takes {meta.num_inputs()} inputs, expected 1")


def test_input_declared(et_method: Any, model_spec: Any, et_info: Any, check_details: dict) -> None:
    """One float32 input: the maximum batch, then the configured axes, all fixed (the runtime checks only the
    element count at run time, so the declared shape is what an app can rely on)."""
    meta = et_method.metadata.input_tensor_meta(0)
    sizes, dtype = list(meta.sizes()), int(meta.dtype())
    expected = [int(et_info.get("max_batch", 0)), *model_spec.input_shape[1:]]
    check_details.update(sizes=sizes, dtype=dtype)
    if dtype != SCALAR_CODES["float32"]:
        pytest.fail(f"{PTE_FILE} input dtype code {dtype}, expected float32 ({SCALAR_CODES['float32']})")
    if sizes != expected:
        pytest.fail(
            f"{PTE_FILE} input planned as {sizes}, expected {expected} (max batch, then the config's axes)"
        )


def test_output_declared(et_method: Any, model_spec: Any, et_info: Any, output_name: str) -> None:
    meta = et_method.metadata
    names = list(model_spec.output_names)
    if meta.num_outputs() != len(names):
        pytest.fail(f"{PTE_FILE} forward returns {meta.num_outputs()} outputs, the config names {names}")
    out = meta.output_tensor_meta(names.index(output_name))
    want = SCALAR_CODES[model_spec.output(output_name).dtype]
    if int(out.dtype()) != want:
        pytest.fail(f"{PTE_FILE} output {output_name} dtype code {int(out.dtype())}, expected {want}")
    sizes = list(out.sizes())
    if not sizes or sizes[0] != int(et_info.get("max_batch", 0)):
        pytest.fail(f"{PTE_FILE} output {output_name} planned as {sizes}: batch-first expected")


def test_bundled_cases_are_the_golden_ones(
    bundled: Any,
    bundle: Any,
    reference_inputs: Any,
    reference_outputs: Any,
    model_spec: Any,
    check_details: dict,
) -> None:
    """The cases a device checks the program with are ``reference/``'s rows and outputs, and the program they
    embed is ``models/model.pte`` byte for byte."""
    cases = bundled.suites.get("forward", [])
    check_details["cases"] = [int(c.inputs[0].shape[0]) for c in cases if c.inputs]
    if not cases:
        pytest.fail(f"{BPTE_FILE} embeds no test case for forward")
    problems = []
    for i, case in enumerate(cases):
        n = int(case.inputs[0].shape[0]) if len(case.inputs) == 1 else -1
        if n < 1 or not np.array_equal(case.inputs[0], reference_inputs[:n]):
            problems.append(f"case {i}: inputs are not the first rows of reference/inputs.npy")
            continue
        if len(case.expected) != len(model_spec.outputs):
            problems.append(
                f"case {i}: {len(case.expected)} expected outputs, the config names {len(model_spec.outputs)}"
            )
            continue
        for name, got in zip(model_spec.output_names, case.expected, strict=True):
            if not np.array_equal(got, reference_outputs[name][:n]):
                problems.append(f"case {i}: expected {name} differs from reference/outputs.npz")
    if bundled.program != bundle.path(PTE_FILE).read_bytes():
        problems.append(f"the embedded program is not {PTE_FILE}")
    if problems:
        pytest.fail(f"{BPTE_FILE}: " + "; ".join(problems))


def test_fuzz_valid_inputs(
    et_runner: Any,
    model_spec: Any,
    et_info: Any,
    fuzz_examples: int,
    tolerance_policy: Any,
    fuzz_counterexamples: Any,
    check_details: dict,
) -> None:
    """Any batch 1..max and any finite input: shapes follow the batch, codes and confidences stay in range,
    each row of a batch equals that window run alone. Saved counterexamples are replayed first."""
    from conv2d_bundle.parity.fuzzing import check_valid_inputs

    tolerances = {o.name: tolerance_policy.resolve(o) for o in model_spec.outputs}
    check_details.update(counterexamples_replayed=len(fuzz_counterexamples.load()))
    try:
        seen = check_valid_inputs(
            et_runner, model_spec, tolerances, fuzz_examples, int(et_info["max_batch"]), fuzz_counterexamples
        )
    except AssertionError as exc:
        pytest.fail(str(exc))
    check_details.update(examples=len(seen), max_batch=max(seen, default=0))
    if not seen:
        pytest.fail("fuzzing ran no examples: nothing was verified")


def test_invalid_inputs_refused(et_method: Any, model_spec: Any, et_info: Any, check_details: dict) -> None:
    """What the runtime itself refuses: a batch over the maximum and any dtype but float32. Shapes within the
    planned element count that the runtime still answers are listed and warned about: an app must check them."""
    import torch

    from conv2d_bundle.parity.fuzzing import invalid_shapes

    limit = int(et_info["max_batch"])
    shape = tuple(model_spec.input_shape[1:])
    must_refuse = [("batch over the maximum", np.zeros((limit + 1, *shape), np.float32))]
    must_refuse += [
        (f"dtype {d}", np.zeros((2, *shape), d)) for d in ("float64", "float16", "int32", "int64")
    ]
    answered = [what for what, x in must_refuse if _answers(et_method, torch.from_numpy(x))]
    lenient = [
        f"{what} {list(s)}" for what, s in invalid_shapes(shape) if _answers(et_method, torch.zeros(s))
    ]
    check_details.update(answered_invalid=answered, runtime_answers_shapes=lenient)
    if answered:
        pytest.fail(f"{PTE_FILE} answered inputs it must refuse: {answered}")
    if lenient:
        warnings.warn(
            BundleWarning(
                f"the ExecuTorch runtime answers {len(lenient)} wrongly shaped inputs it does not check "
                f"(e.g. {lenient[0]}): an app must check the window's shape itself"
            ),
            stacklevel=1,
        )


def _answers(method: Any, x: Any) -> bool:
    try:
        method.execute([x])
    except Exception:  # the runtime's refusal (RuntimeError with an error code)
        return False
    return True


@pytest.mark.conv2d_needs_benchmark
def test_latency(et_runner: Any, reference_inputs: Any, benchmark_enabled: bool, check_details: dict) -> None:
    """Single-window latency p50/p99 of the program on this host (``--benchmark``)."""
    import time

    if not benchmark_enabled:
        pytest.skip("latency is measured with --benchmark")
    window = reference_inputs[:1]
    for _ in range(20):
        et_runner(window)
    times = []
    for _ in range(300):
        start = time.perf_counter()
        et_runner(window)
        times.append(time.perf_counter() - start)
    check_details.update(
        latency_p50_us=round(float(np.percentile(times, 50)) * 1e6, 1),
        latency_p99_us=round(float(np.percentile(times, 99)) * 1e6, 1),
        latency_runs=len(times),
    )
