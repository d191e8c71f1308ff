"""ONNX checks: the export loads, has the configured signature, versions and metadata, answers any valid
batch and refuses invalid inputs (fuzzing), and, with ``--benchmark``, how fast it runs. Its parity with the
golden outputs is the shared check (``conv2d_bundle/checks/test_targets.py``) through the ONNX runner.

numpy + onnx + onnxruntime only, so a bundle can be verified on the edge device itself.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pytest

from conv2d_bundle.errors import BundleError, BundleWarning
from conv2d_bundle.targets.onnx import ONNX_FILE
from conv2d_bundle.targets.onnx.graph import (
    MAX_IR_VERSION,
    MIN_OPSET,
    dims,
    dtype,
    graph_inputs,
    load,
    opset_of,
)
from conv2d_bundle.targets.onnx.runner import session

pytestmark = pytest.mark.conv2d_target("onnx")


@pytest.fixture(scope="session")
def onnx_model(bundle: Any) -> Any:
    """The parsed ``models/model.onnx`` (onnx ModelProto), loaded once."""
    try:
        return load(bundle.path(ONNX_FILE), ONNX_FILE)
    except BundleError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def onnx_session(bundle: Any) -> Any:
    """One onnxruntime session on ``models/model.onnx`` for the whole pytest session."""
    try:
        return session(bundle.path(ONNX_FILE), ONNX_FILE)
    except BundleError as exc:  # the export does not load: a failure, never a skip
        pytest.fail(str(exc))


def test_onnx_loads(onnx_model: Any) -> None:
    if not onnx_model.graph.node:
        pytest.fail("models/model.onnx has an empty graph")


def test_onnx_checker(onnx_model: Any) -> None:
    import onnx

    try:
        onnx.checker.check_model(onnx_model, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError: both mean an invalid model
        pytest.fail(f"models/model.onnx fails onnx.checker: {str(exc).splitlines()[0]}")


def test_input_signature(onnx_model: Any, model_spec: Any) -> None:
    inputs = graph_inputs(onnx_model)
    if [i.name for i in inputs] != [model_spec.input_name]:
        pytest.fail(f"model.onnx inputs {[i.name for i in inputs]} != expected [{model_spec.input_name}]")
    elem = dtype(inputs[0])
    if elem != "float32":
        pytest.fail(f"input {model_spec.input_name} is {elem}, expected float32")
    shape = dims(inputs[0])
    expected = ["N", *model_spec.input_shape[1:]]
    if len(shape) != len(expected) or shape[1:] != expected[1:] or isinstance(shape[0], int):
        pytest.fail(f"input shape {shape} != expected {expected} (dynamic batch, fixed other axes)")


def test_output_signature(onnx_model: Any, model_spec: Any, output_name: str) -> None:
    outputs = {o.name: o for o in onnx_model.graph.output}
    if output_name not in outputs:
        pytest.fail(f"model.onnx has no output {output_name} (has {sorted(outputs)})")
    got = dtype(outputs[output_name])
    if got != model_spec.output(output_name).dtype:
        pytest.fail(f"output {output_name} is {got}, expected {model_spec.output(output_name).dtype}")
    shape = dims(outputs[output_name])
    if not shape or isinstance(shape[0], int):
        pytest.fail(f"output {output_name} shape {shape}: the batch axis is not dynamic")


def test_opset(onnx_model: Any, metadata: Any, check_details: dict) -> None:
    opset = opset_of(onnx_model)
    configured = metadata.get("formats", {}).get("onnx", {}).get("opset_version", MIN_OPSET)
    check_details.update(opset=opset, configured=configured)
    if opset < MIN_OPSET:
        pytest.fail(f"model.onnx opset {opset} < {MIN_OPSET}")
    if opset < configured:
        warnings.warn(
            BundleWarning(f"model.onnx opset {opset} is below the configured {configured}"), stacklevel=1
        )


def test_ir_version(onnx_model: Any, check_details: dict) -> None:
    check_details["ir_version"] = onnx_model.ir_version
    if not 3 <= onnx_model.ir_version <= MAX_IR_VERSION:
        pytest.fail(
            f"model.onnx IR version {onnx_model.ir_version} outside 3..{MAX_IR_VERSION} "
            "(IR 10 is refused by the Hailo parser and older runtimes)"
        )


def test_embedded_metadata(onnx_model: Any, metadata: Any, bundle: Any) -> None:
    props = {p.key: p.value for p in onnx_model.metadata_props}
    problems = []
    if props.get("exp_hash") != metadata.get("exp_hash"):
        problems.append(f"exp_hash {props.get('exp_hash')!r} != metadata.json {metadata.get('exp_hash')!r}")
    try:
        labels = json.loads(props.get("labels", "null"))
    except ValueError:
        labels = props.get("labels")
    expected = [bundle.label_map[str(i)] for i in range(len(bundle.label_map))]
    if labels != expected:
        problems.append(f"labels {labels!r} != label_map.json {expected!r}")
    if props.get("version") != metadata.get("system_version"):
        problems.append(f"version {props.get('version')!r} != {metadata.get('system_version')!r}")
    if problems:
        pytest.fail("model.onnx metadata_props: " + "; ".join(problems))


# -- property checks (hypothesis, shared with the other targets: conv2d_bundle/parity/fuzzing.py) --------------
def test_fuzz_valid_inputs(
    onnx_session: Any,
    model_spec: Any,
    fuzz_examples: int,
    tolerance_policy: Any,
    fuzz_counterexamples: Any,
    check_details: dict,
) -> None:
    """Any batch size 1..256 and any finite input: shapes follow the batch, codes and confidences stay in range,
    and each row of a batch equals that window run alone. Saved counterexamples are replayed first."""
    from conv2d_bundle.parity.fuzzing import check_valid_inputs
    from conv2d_bundle.targets.onnx.runner import run

    # batch invariance within the verifier's tolerance (the cap, where the bundle asks for more than that)
    tolerances = {spec.name: tolerance_policy.resolve(spec) for spec in model_spec.outputs}
    replayed = len(fuzz_counterexamples.load())
    check_details.update(counterexamples_replayed=replayed)
    try:
        seen = check_valid_inputs(
            lambda x: run(onnx_session, model_spec.input_name, x),
            model_spec,
            tolerances,
            fuzz_examples,
            256,
            fuzz_counterexamples,
        )
    except AssertionError as exc:
        pytest.fail(str(exc))
    check_details.update(examples=len(seen), max_batch=max(seen, default=0))
    if not seen:
        pytest.fail("fuzzing ran no examples: nothing was verified")


def test_fuzz_invalid_inputs(
    onnx_session: Any, model_spec: Any, fuzz_examples: int, check_details: dict
) -> None:
    """Wrong rank, channels, sensors, time steps or dtype must be refused, not answered: an export whose
    non-batch axes became dynamic fails here. Every case runs once at batch 1; with a drawn budget, hypothesis
    then draws cases and batches (the ``seal`` profile draws none)."""
    from conv2d_bundle.parity.fuzzing import fuzz_settings, invalid_shapes

    shape = tuple(model_spec.input_shape[1:])
    if len(shape) != 3:
        pytest.fail(f"config input_shape {model_spec.input_shape} is not [N, C, H, W]")
    # the shapes without their batch axis: hypothesis draws the batch
    cases = [(what, s[1:], np.dtype(np.float32)) for what, s in invalid_shapes(shape)]
    cases += [(f"dtype {d}", shape, np.dtype(d)) for d in ("float64", "float16", "int32", "int64")]
    accepted: list[str] = []
    tried: list[str] = []

    def prop(case: tuple[str, tuple[int, ...], np.dtype], batch: int) -> None:
        what, s, dtype = case
        x = np.zeros((batch, *s), dtype=dtype)
        tried.append(what)
        try:
            onnx_session.run(None, {model_spec.input_name: x})
        except Exception:  # onnxruntime's InvalidArgument/Fail: the refusal we want
            return
        accepted.append(f"{what} {list(x.shape)} {dtype}")

    for case in cases:  # every kind at least once, whatever hypothesis draws (so `tried` is never empty)
        prop(case=case, batch=1)
    if fuzz_examples > 0:
        from hypothesis import given
        from hypothesis import strategies as st

        fuzz_settings(max(fuzz_examples // 2, len(cases)))(
            given(case=st.sampled_from(cases), batch=st.integers(1, 8))(prop)
        )()
    check_details.update(examples=len(tried), accepted_invalid=sorted(set(accepted)))
    if accepted:
        pytest.fail(
            f"model.onnx accepted invalid inputs instead of refusing them: {sorted(set(accepted))[:4]}"
        )


# -- latency (only with --benchmark) ----------------------------------------------------------------
LATENCY_RUNS = 500
THROUGHPUT_BATCH = 64
THROUGHPUT_RUNS = 30


@pytest.mark.conv2d_needs_benchmark
def test_latency(
    bundle: Any, reference_inputs: Any, model_spec: Any, benchmark_enabled: bool, check_details: dict
) -> None:
    """How fast the model runs on the host that verifies it: single-window latency p50/p99 and throughput
    at batch 64, recorded in the report (``--benchmark``; deselected otherwise). It uses its own session with
    onnxruntime's default threading, as a deployment would, not the checks' single-threaded one."""
    import os
    import time

    import onnxruntime as ort

    if not benchmark_enabled:
        pytest.skip("latency is measured with --benchmark")
    onnx_session = ort.InferenceSession(
        str(bundle.path("models/model.onnx")), providers=["CPUExecutionProvider"]
    )
    feed = {model_spec.input_name: reference_inputs[:1]}
    for _ in range(20):  # warm-up: first runs allocate
        onnx_session.run(None, feed)
    times = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        onnx_session.run(None, feed)
        times.append(time.perf_counter() - start)
    reps = -(-THROUGHPUT_BATCH // reference_inputs.shape[0])
    batch = np.concatenate([reference_inputs] * reps)[:THROUGHPUT_BATCH]
    onnx_session.run(None, {model_spec.input_name: batch})
    start = time.perf_counter()
    for _ in range(THROUGHPUT_RUNS):
        onnx_session.run(None, {model_spec.input_name: batch})
    elapsed = time.perf_counter() - start
    check_details.update(
        latency_p50_us=round(float(np.percentile(times, 50)) * 1e6, 1),
        latency_p99_us=round(float(np.percentile(times, 99)) * 1e6, 1),
        latency_runs=LATENCY_RUNS,
        threads="onnxruntime default",
        cpu_count=os.cpu_count(),
        throughput_batch=int(batch.shape[0]),
        throughput_windows_per_s=round(THROUGHPUT_RUNS * int(batch.shape[0]) / elapsed, 1),
    )
