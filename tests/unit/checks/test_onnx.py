"""The ONNX checks (``conv2d_bundle/targets/onnx/test_onnx.py``) called directly: on the example's model and
session they pass; on an edited copy of the model, or a session that misbehaves, they fail saying what."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import pytest

from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.errors import BundleWarning
from conv2d_bundle.parity import fuzzing
from conv2d_bundle.parity.tolerance import TolerancePolicy
from conv2d_bundle.targets.onnx import test_onnx as checks
from tests.unit.checks import fails

CODES, CONF = "behavioral_codes", "confidence"


@pytest.fixture(scope="module")
def model(example_bundle: Path) -> onnx.ModelProto:
    return onnx.load(str(example_bundle / "models" / "model.onnx"))


@pytest.fixture
def edited(model: onnx.ModelProto) -> onnx.ModelProto:
    """A private copy of the example's model to break."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


@pytest.fixture(scope="module")
def session(example_bundle: Path) -> Any:
    from conv2d_bundle.targets.onnx.runner import session

    return session(example_bundle / "models" / "model.onnx")


# -- structure --------------------------------------------------------------------------------------
def test_onnx_loads(model: onnx.ModelProto, edited: onnx.ModelProto) -> None:
    checks.test_onnx_loads(model)
    del edited.graph.node[:]
    assert fails(checks.test_onnx_loads, edited) == "models/model.onnx has an empty graph"


def test_onnx_checker(model: onnx.ModelProto, edited: onnx.ModelProto) -> None:
    checks.test_onnx_checker(model)
    edited.graph.node[0].input[0] = "nowhere"
    message = fails(checks.test_onnx_checker, edited)
    assert message.startswith("models/model.onnx fails onnx.checker: ")
    assert "nowhere" in message and "\n" not in message  # the first line of the checker's complaint


def test_onnx_checker_runs_shape_inference(edited: onnx.ModelProto) -> None:
    """An output declared int32 that the graph computes as int64 passes the plain checker, not the full one."""
    edited.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.INT32
    onnx.checker.check_model(edited)
    message = fails(checks.test_onnx_checker, edited)
    assert message.startswith("models/model.onnx fails onnx.checker: [ShapeInferenceError]")
    assert "Inferred elem type differs" in message


def test_input_signature(model: onnx.ModelProto, edited: onnx.ModelProto, model_spec: Any) -> None:
    checks.test_input_signature(model, model_spec)
    edited.graph.input[0].name = "x"
    assert fails(checks.test_input_signature, edited, model_spec) == (
        "model.onnx inputs ['x'] != expected [imu_input]"
    )


def test_input_signature_ignores_weights_listed_as_inputs(edited: onnx.ModelProto, model_spec: Any) -> None:
    weight = edited.graph.initializer[0]
    edited.graph.input.append(onnx.helper.make_tensor_value_info(weight.name, weight.data_type, weight.dims))
    checks.test_input_signature(edited, model_spec)


def test_input_signature_dtype_and_shape(model: onnx.ModelProto, model_spec: Any) -> None:
    def with_input(elem: int, shape: list[Any]) -> onnx.ModelProto:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        del copy.graph.input[:]
        copy.graph.input.append(onnx.helper.make_tensor_value_info("imu_input", elem, shape))
        return copy

    assert fails(
        checks.test_input_signature, with_input(onnx.TensorProto.DOUBLE, ["N", 9, 2, 100]), model_spec
    ) == ("input imu_input is float64, expected float32")
    expected = "!= expected ['N', 9, 2, 100] (dynamic batch, fixed other axes)"
    for shape in ([1, 9, 2, 100], ["N", 9, 2, "T"], ["N", 9, 2, 50], ["N", 9, 2], ["N", 9, 2, 100, 1]):
        assert fails(checks.test_input_signature, with_input(onnx.TensorProto.FLOAT, shape), model_spec) == (
            f"input shape {shape} {expected}"
        )
    checks.test_input_signature(with_input(onnx.TensorProto.FLOAT, ["batch", 9, 2, 100]), model_spec)
    checks.test_input_signature(with_input(onnx.TensorProto.FLOAT, [None, 9, 2, 100]), model_spec)  # "?"


def test_output_signature(model: onnx.ModelProto, edited: onnx.ModelProto, model_spec: Any) -> None:
    for name in (CODES, CONF):
        checks.test_output_signature(model, model_spec, name)
    assert fails(checks.test_output_signature, model, model_spec, "logits") == (
        "model.onnx has no output logits (has ['behavioral_codes', 'confidence'])"
    )
    edited.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.INT32
    assert fails(checks.test_output_signature, edited, model_spec, CODES) == (
        "output behavioral_codes is int32, expected int64"
    )
    edited.graph.output[1].type.tensor_type.shape.dim[0].dim_value = 1
    assert fails(checks.test_output_signature, edited, model_spec, CONF) == (
        "output confidence shape [1, 4]: the batch axis is not dynamic"
    )
    del edited.graph.output[1].type.tensor_type.shape.dim[:]
    assert fails(checks.test_output_signature, edited, model_spec, CONF) == (
        "output confidence shape []: the batch axis is not dynamic"
    )


def set_opset(model: onnx.ModelProto, version: int, domain: str = "") -> None:
    del model.opset_import[:]
    model.opset_import.append(onnx.helper.make_opsetid(domain, version))


def test_opset(model: onnx.ModelProto, edited: onnx.ModelProto, metadata: dict[str, Any]) -> None:
    details: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checks.test_opset(model, metadata, details)
    assert details == {"opset": 13, "configured": 13}
    set_opset(edited, 12)
    with pytest.warns(BundleWarning, match=r"^model.onnx opset 12 is below the configured 13$"):
        checks.test_opset(edited, metadata, {})
    set_opset(edited, 11)  # the minimum: with nothing configured, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checks.test_opset(edited, {}, details)
    assert details == {"opset": 11, "configured": 11}
    set_opset(edited, 10)
    assert fails(checks.test_opset, edited, {}, {}) == "model.onnx opset 10 < 11"
    set_opset(edited, 13, "ai.onnx.ml")  # another domain's opset is not the model's
    assert fails(checks.test_opset, edited, {}, {}) == "model.onnx opset 0 < 11"


def test_ir_version(model: onnx.ModelProto, edited: onnx.ModelProto) -> None:
    details: dict[str, Any] = {}
    checks.test_ir_version(model, details)
    assert details == {"ir_version": 7}
    for ok in (3, 9):
        edited.ir_version = ok
        checks.test_ir_version(edited, {})
    for bad in (2, 10):
        edited.ir_version = bad
        assert fails(checks.test_ir_version, edited, details) == (
            f"model.onnx IR version {bad} outside 3..9 (IR 10 is refused by the Hailo parser and older runtimes)"
        )
        assert details == {"ir_version": bad}


def set_props(model: onnx.ModelProto, **props: str | None) -> None:
    current = {p.key: p.value for p in model.metadata_props}
    current.update(props)
    onnx.helper.set_model_props(model, {k: v for k, v in current.items() if v is not None})


def test_embedded_metadata(
    model: onnx.ModelProto, edited: onnx.ModelProto, metadata: dict[str, Any], example: Bundle
) -> None:
    checks.test_embedded_metadata(model, metadata, example)
    set_props(edited, exp_hash="0123456789ab", labels='["rest", "walk"]', version="0.0.9")
    assert fails(checks.test_embedded_metadata, edited, metadata, example) == (
        "model.onnx metadata_props: exp_hash '0123456789ab' != metadata.json '7bda82d7df9d'; "
        "labels ['rest', 'walk'] != label_map.json ['rest', 'walk', 'trot', 'play']; "
        "version '0.0.9' != '0.1.0'"
    )
    set_props(edited, exp_hash="7bda82d7df9d", labels="rest,walk,trot,play", version="0.1.0")
    assert fails(checks.test_embedded_metadata, edited, metadata, example) == (
        "model.onnx metadata_props: labels 'rest,walk,trot,play' != label_map.json ['rest', 'walk', 'trot', 'play']"
    )
    set_props(edited, exp_hash=None, labels=None, version=None)
    assert fails(checks.test_embedded_metadata, edited, metadata, example) == (
        "model.onnx metadata_props: exp_hash None != metadata.json '7bda82d7df9d'; "
        "labels None != label_map.json ['rest', 'walk', 'trot', 'play']; version None != '0.1.0'"
    )


# -- fuzzing ----------------------------------------------------------------------------------------
@pytest.fixture
def no_shrink(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks' hypothesis settings without the shrink phase: a failing property is reported as found
    (shrinking a batch of 256 takes minutes; what is reported is the same kind of message)."""
    from hypothesis import Phase, settings

    real = fuzzing.fuzz_settings

    def without_shrinking(examples: int) -> Any:
        return settings(real(examples), phases=[Phase.explicit, Phase.reuse, Phase.generate])

    monkeypatch.setattr(fuzzing, "fuzz_settings", without_shrinking)


class Session:
    """The example's session, with its outputs changed by ``change(name, value, batch)``."""

    def __init__(self, real: Any, change: Callable[[str, np.ndarray, int], np.ndarray]) -> None:
        self.real, self.change = real, change

    def get_outputs(self) -> Any:
        return self.real.get_outputs()

    def run(self, names: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        (x,) = feed.values()
        outs = self.real.run(names, feed)
        return [
            self.change(o.name, v, x.shape[0]) for o, v in zip(self.real.get_outputs(), outs, strict=True)
        ]


def fuzz_valid(
    session: Any,
    model_spec: Any,
    examples: int = 6,
    details: dict[str, Any] | None = None,
    saved: Any = None,
) -> None:
    checks.test_fuzz_valid_inputs(
        onnx_session=session,
        model_spec=model_spec,
        fuzz_examples=examples,
        tolerance_policy=TolerancePolicy(),
        fuzz_counterexamples=NoneSaved() if saved is None else saved,
        check_details={} if details is None else details,
    )


class NoneSaved:
    """No saved counterexamples, and a failure is not saved (tests/plugin covers saving and replaying)."""

    def load(self) -> list[dict[str, Any]]:
        return []

    def save(self, example: Any, message: str, inputs: Any) -> str:
        return "not saved"


def fuzz_fails(*args: Any) -> str:
    """The message of a failing valid-input fuzz run, without the note on where it was saved."""
    message = fails(fuzz_valid, *args)
    assert message.endswith(" (not saved)"), message
    return message.removesuffix(" (not saved)")


def test_fuzz_valid_inputs_passes_on_the_export(session: Any, model_spec: Any) -> None:
    details: dict[str, Any] = {}
    fuzz_valid(session, model_spec, 6, details)
    # one fixed example per input kind, then the 6 drawn
    assert details["examples"] == len(fuzzing.KINDS) + 6 and 1 <= details["max_batch"] <= 256


def test_fuzz_valid_inputs_runs_every_input_kind_whatever_it_draws(
    session: Any, model_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[tuple[str, int]] = []
    real = fuzzing.window_batch
    monkeypatch.setattr(
        fuzzing, "window_batch", lambda b, s, k, shape: runs.append((k, b)) or real(b, s, k, shape)
    )
    fuzz_valid(session, model_spec, 1)
    assert sorted({k for k, _ in runs}) == sorted(fuzzing.KINDS)
    # before anything drawn, each kind at its own batch size: 2, 3, 5, 12, 16 besides parity's 1, 7, 64
    assert runs[: len(fuzzing.KINDS)] == [(k, fuzzing.KIND_BATCHES[k]) for k in fuzzing.KINDS]
    assert sorted(fuzzing.KIND_BATCHES.values()) == [2, 3, 5, 12, 16] and fuzzing.KIND_BATCH == 16


class Saved(NoneSaved):
    """Two saved counterexamples that pass: the largest batch the check draws, and the smallest."""

    def load(self) -> list[dict[str, Any]]:
        return [
            {"example": {"batch": 256, "seed": 7, "kind": "normal"}},
            {"example": {"batch": 1, "seed": 3, "kind": "zeros"}},
        ]


def test_fuzz_valid_inputs_records_what_it_replayed_and_what_it_ran(session: Any, model_spec: Any) -> None:
    details: dict[str, Any] = {}
    fuzz_valid(session, model_spec, 3, details, Saved())
    # the replayed batches are examples too: 2 replayed + one per input kind + 3 drawn, the largest the replayed 256
    examples = 2 + len(fuzzing.KINDS) + 3
    assert details == {"counterexamples_replayed": 2, "examples": examples, "max_batch": 256}


def test_fuzz_valid_inputs_that_ran_nothing_fails(
    session: Any, model_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fuzzing, "check_valid_inputs", lambda *args: [])
    details: dict[str, Any] = {}
    assert (
        fails(fuzz_valid, session, model_spec, 6, details) == "fuzzing ran no examples: nothing was verified"
    )
    assert details == {"counterexamples_replayed": 0, "examples": 0, "max_batch": 0}


def test_fuzz_valid_inputs_draws_batches_of_1_to_256(
    session: Any, model_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    monkeypatch.setattr(fuzzing, "check_valid_inputs", lambda *args: asked.append(args[4]) or [1])
    fuzz_valid(session, model_spec)
    assert asked == [256]  # the batch sizes the docstring promises, and the ones a device may be given


def test_fuzz_valid_inputs_tolerates_float_noise_across_batches(session: Any, model_spec: Any) -> None:
    """A row computed in a batch may differ from the same window alone in the last float bits."""

    def noise(name: str, value: np.ndarray, batch: int) -> np.ndarray:
        if name == CONF and batch > 1:
            return value * np.float32(1 - 1e-6)
        return value

    fuzz_valid(Session(session, noise), model_spec)


FUZZ_FAILURES: dict[str, tuple[Callable[[str, np.ndarray, int], np.ndarray], str]] = {
    "rows": (
        lambda n, v, b: v[:-1] if n == CODES and b > 1 else v,
        r"behavioral_codes: \d+ rows for a batch of \d+ \(\w+\)",
    ),
    "codes above": (
        lambda n, v, b: v + 800 if n == CODES else v,
        r"behavioral_codes: codes outside \[0, 800\) for \w+ input: \d+\.\.\d+",
    ),
    "codes below": (
        lambda n, v, b: v - 800 if n == CODES else v,
        r"behavioral_codes: codes outside \[0, 800\) for \w+ input: -\d+\.\.-\d+",
    ),
    "probabilities above 1": (
        lambda n, v, b: np.where(np.arange(4) == 0, v + 1, v).astype(np.float32) if n == CONF else v,
        r"confidence: values outside \[0, 1\] for \w+ input",
    ),
    "negative probabilities": (
        lambda n, v, b: (v - 0.5).astype(np.float32) if n == CONF else v,
        r"confidence: values outside \[0, 1\] for \w+ input",
    ),
    "nan": (
        lambda n, v, b: np.full_like(v, np.nan) if n == CONF else v,
        r"confidence: values outside \[0, 1\] for \w+ input",
    ),
    "not normalised": (
        lambda n, v, b: (v * np.float32(0.999)).astype(np.float32) if n == CONF else v,
        r"confidence: rows sum to 1 \+- 1\.00e-03 for \w+ input",
    ),
    "codes depend on the batch": (
        lambda n, v, b: np.where(np.arange(b) == b - 1, (v + 1) % 800, v) if n == CODES and b > 1 else v,
        r"behavioral_codes: row \d+ of a batch of \d+ differs from the same window alone",
    ),
    "probabilities depend on the batch": (
        lambda n, v, b: v[:, ::-1].copy() if n == CONF and b > 1 else v,
        r"confidence: row 0 of a batch of \d+ differs from the same window alone",
    ),
}


@pytest.mark.usefixtures("no_shrink")
@pytest.mark.parametrize("case", list(FUZZ_FAILURES))
def test_fuzz_valid_inputs_names_the_broken_property(session: Any, model_spec: Any, case: str) -> None:
    change, message = FUZZ_FAILURES[case]
    assert re.fullmatch(message, fuzz_fails(Session(session, change), model_spec))


@pytest.mark.usefixtures("no_shrink")
def test_fuzz_valid_inputs_compares_the_middle_row_too(session: Any, model_spec: Any) -> None:
    """Only the middle row of a batch of three changes: the rows compared include it."""

    def middle(name: str, value: np.ndarray, batch: int) -> np.ndarray:
        if name == CODES and batch >= 3:
            value = value.copy()
            value[batch // 2] = (value[batch // 2] + 1) % 800
        return value

    assert re.fullmatch(
        r"behavioral_codes: row \d+ of a batch of \d+ differs from the same window alone",
        fuzz_fails(Session(session, middle), model_spec, 20),
    )


@pytest.mark.parametrize("case", ["codes above", "codes depend on the batch"])
def test_fuzz_valid_inputs_without_draws_runs_the_fixed_examples_only(
    session: Any, model_spec: Any, case: str
) -> None:
    """The ``seal`` budget (0 drawn): every input kind once, each at its own batch size, still judged; hypothesis
    not used."""
    import hypothesis

    details: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as m:
        m.setattr(hypothesis, "given", None)  # a drawn run would fail on this, not merely run
        fuzz_valid(session, model_spec, 0, details)
        assert details["examples"] == len(fuzzing.KINDS) and details["max_batch"] == fuzzing.KIND_BATCH
        change, message = FUZZ_FAILURES[case]
        assert re.fullmatch(message, fuzz_fails(Session(session, change), model_spec, 0))


def test_fuzz_invalid_inputs_without_draws_tries_every_case_once(session: Any, model_spec: Any) -> None:
    details: dict[str, Any] = {}
    checks.test_fuzz_invalid_inputs(session, model_spec, 0, details)
    assert details["examples"] == 11 and details["accepted_invalid"] == []
    time_dynamic = Accepting(
        session, lambda x: x.ndim == 4 and x.shape[1:3] == (9, 2) and x.dtype == np.float32
    )
    message = fails(checks.test_fuzz_invalid_inputs, time_dynamic, model_spec, 0, {})
    assert message.startswith(
        "model.onnx accepted invalid inputs instead of refusing them: ['time steps [1, 9, 2,"
    )


def test_fuzz_valid_inputs_saves_the_shrunk_drawn_failure(session: Any, model_spec: Any) -> None:
    """A fault the fixed examples cannot show (batches above 16 only): a drawn batch finds it, hypothesis shrinks
    it, and the shrunk example, with its own input, is what is reported and saved."""
    saved: list[tuple[dict[str, Any], str, tuple[int, ...]]] = []

    class Saving(NoneSaved):
        def save(self, example: Any, message: str, inputs: Any) -> str:
            saved.append((dict(example), message, inputs.shape))
            return "saved"

    def above_16(name: str, value: np.ndarray, batch: int) -> np.ndarray:
        return value + 800 if name == CODES and batch > fuzzing.KIND_BATCH else value

    message = fails(fuzz_valid, Session(session, above_16), model_spec, 6, None, Saving())
    assert re.fullmatch(
        r"behavioral_codes: codes outside \[0, 800\) for normal input: \d+\.\.\d+ \(saved\)", message
    )
    ((example, said, shape),) = saved
    assert example == {"batch": fuzzing.KIND_BATCH + 1, "seed": 0, "kind": "normal"}  # shrunk to the edge
    assert shape == (fuzzing.KIND_BATCH + 1, *model_spec.input_shape[1:]) and message.startswith(said)


def test_fuzz_input_kinds() -> None:
    shape = (9, 2, 100)
    normal = fuzzing.window_batch(6, 1, "normal", shape)
    assert normal.dtype == np.float32 and normal.shape == (6, *shape)
    assert 0.5 < float(normal.std()) < 2
    assert np.array_equal(fuzzing.window_batch(6, 1, "normal", shape), normal)  # seeded
    assert not fuzzing.window_batch(6, 1, "zeros", shape).any()
    assert np.allclose(fuzzing.window_batch(6, 1, "large", shape), normal * 1e4)
    tiny = np.abs(fuzzing.window_batch(6, 1, "denormal", shape))
    assert tiny.max() < np.finfo(np.float32).tiny and (tiny > 0).mean() > 0.5
    mixed = fuzzing.window_batch(6, 1, "mixed", shape)
    assert np.allclose(mixed[[0, 2]], normal[[0, 2]] * 1e4)
    assert not mixed[[1, 4]].any()
    assert np.array_equal(mixed[[3, 5]], normal[[3, 5]])


def test_fuzz_invalid_inputs_passes_when_the_export_refuses_them(session: Any, model_spec: Any) -> None:
    details: dict[str, Any] = {}
    checks.test_fuzz_invalid_inputs(session, model_spec, 6, details)
    assert details["accepted_invalid"] == []
    assert details["examples"] >= 11 + 11  # each of the 11 kinds once, then at least as many drawn


def test_fuzz_invalid_inputs_draws_half_the_budget_and_at_least_every_case(
    session: Any, model_spec: Any
) -> None:
    """After every case once: max(budget // 2, cases) drawn (11 cases for the example: 7 shapes, 4 dtypes)."""
    for examples, drawn in ((1, 11), (30, 15)):
        details: dict[str, Any] = {}
        checks.test_fuzz_invalid_inputs(session, model_spec, examples, details)
        assert details["examples"] == 11 + drawn, examples


class Accepting:
    """A session that answers inputs whose ``accept(x)`` holds instead of refusing them."""

    def __init__(self, real: Any, accept: Callable[[np.ndarray], bool]) -> None:
        self.real, self.accept = real, accept

    def run(self, names: Any, feed: dict[str, np.ndarray]) -> Any:
        (x,) = feed.values()
        if self.accept(x):
            return [np.zeros(x.shape[0], np.int64)]
        return self.real.run(names, feed)


def test_fuzz_invalid_inputs_fails_on_a_dynamic_time_axis(session: Any, model_spec: Any) -> None:
    details: dict[str, Any] = {}
    time_dynamic = Accepting(
        session, lambda x: x.ndim == 4 and x.shape[1:3] == (9, 2) and x.dtype == np.float32
    )
    message = fails(checks.test_fuzz_invalid_inputs, time_dynamic, model_spec, 6, details)
    assert re.fullmatch(
        r"model.onnx accepted invalid inputs instead of refusing them: "
        r"\['time steps \[\d, 9, 2, (50|101)\] float32'(, 'time steps \[\d, 9, 2, (50|101)\] float32')*\]",
        message,
    )
    assert {a.split(" [")[0] for a in details["accepted_invalid"]} == {"time steps"}
    assert {a.split(", ")[-1].split("]")[0] for a in details["accepted_invalid"]} == {"50", "101"}


def test_fuzz_invalid_inputs_lists_at_most_four(session: Any, model_spec: Any) -> None:
    details: dict[str, Any] = {}
    message = fails(
        checks.test_fuzz_invalid_inputs, Accepting(session, lambda x: True), model_spec, 6, details
    )
    accepted = sorted(set(details["accepted_invalid"]))
    assert message == f"model.onnx accepted invalid inputs instead of refusing them: {accepted[:4]}"
    assert len(accepted) > 4
    kinds = {a.split(" [")[0] for a in accepted}
    assert kinds == {
        "rank 3",
        "rank 5",
        "channels",
        "sensors",
        "time steps",
        "dtype float64",
        "dtype float16",
        "dtype int32",
        "dtype int64",
    }
    assert {a for a in accepted if a.startswith("channels")} >= {
        "channels [1, 10, 2, 100] float32",
        "channels [1, 8, 2, 100] float32",
    }
    assert "rank 3 [1, 9, 2] float32" in accepted and "rank 5 [1, 9, 2, 100, 1] float32" in accepted
    assert "sensors [1, 9, 3, 100] float32" in accepted and "dtype int64 [1, 9, 2, 100] int64" in accepted


def test_fuzz_invalid_inputs_single_channel_models(session: Any) -> None:
    """With one channel, 'fewer channels' stays at one (the same shape), so it is not a case of its own."""
    spec = SimpleNamespace(input_name="imu_input", input_shape=(1, 1, 2, 100))
    details: dict[str, Any] = {}
    fails(checks.test_fuzz_invalid_inputs, Accepting(session, lambda x: True), spec, 2, details)
    channels = {a.split(", ", 1)[1] for a in details["accepted_invalid"] if a.startswith("channels")}
    assert channels == {"2, 2, 100] float32", "1, 2, 100] float32"}  # one more channel, or still one


def test_fuzz_invalid_inputs_needs_a_four_axis_input(session: Any) -> None:
    spec = SimpleNamespace(input_name="imu_input", input_shape=(1, 9, 100))
    assert fails(checks.test_fuzz_invalid_inputs, session, spec, 6, {}) == (
        "config input_shape (1, 9, 100) is not [N, C, H, W]"
    )
