"""The shared parity check (``conv2d_bundle/checks/test_targets.py``) called directly with a fake runner: it
passes on the golden outputs and fails, naming the output, target and batch, on each way parity can break; a
failing ONNX item says where the export left the source model (its taps), or why that could not be located."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.checks import test_targets as targets
from conv2d_bundle.parity.tolerance import TolerancePolicy
from conv2d_bundle.targets import get_target
from conv2d_bundle.targets.onnx import ONNX_FILE
from tests.unit.checks import fails

CODES, CONF = "behavioral_codes", "confidence"
NOT_LOCATED = " (divergence not located: metadata.json formats.onnx maps no taps (created before taps?))"


@pytest.fixture(scope="module")
def golden(example_bundle: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    inputs = np.load(example_bundle / "reference" / "inputs.npy")
    with np.load(example_bundle / "reference" / "outputs.npz") as data:
        return inputs, {k: data[k] for k in data.files}


def replay(outputs: Mapping[str, np.ndarray], **changes: Any) -> Callable[[int], Mapping[str, Any]]:
    """A runner's outputs on the first ``n`` windows: the golden ones, with ``changes`` applied."""

    def run(n: int) -> Mapping[str, Any]:
        got = {k: v[:n].copy() for k, v in outputs.items()}
        for name, change in changes.items():
            if change is None:
                del got[name]
            else:
                got[name] = change(got[name])
        return got

    return run


def parity(
    golden: Any,
    model_spec: Any,
    output: str,
    batch: int,
    runner: Callable[[int], Mapping[str, Any]] | None = None,
    *,
    inputs: Any = None,
    outputs: Any = None,
    policy: TolerancePolicy | None = None,
    details: dict[str, Any] | None = None,
    target: str = "onnx",
    bundle: Any = None,
) -> None:
    ref_in, ref_out = golden
    targets.test_parity(
        target_name=target,
        bundle=bundle or NoTaps(),
        target_outputs=runner or replay(ref_out),
        reference_inputs=ref_in if inputs is None else inputs,
        reference_outputs=ref_out if outputs is None else outputs,
        model_spec=model_spec,
        tolerance_policy=policy or TolerancePolicy(),
        output_name=output,
        batch_size=batch,
        check_details={} if details is None else details,
    )


class NoTaps:
    """A bundle made before taps: a failing item says the divergence was not located."""

    def format_info(self, fmt: str) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_parity_passes_on_the_golden_outputs(golden: Any, model_spec: Any, batch: int) -> None:
    for output in (CODES, CONF):
        details: dict[str, Any] = {}
        parity(golden, model_spec, output, batch, details=details)
        assert details["batch_size"] == batch and details["passed"] is True
    assert details["tolerance"]["atol"] == 1e-5 and details["tolerance"]["rtol"] == 1e-5


def test_parity_records_the_exact_comparison_of_codes(golden: Any, model_spec: Any) -> None:
    details: dict[str, Any] = {}
    parity(golden, model_spec, CODES, 7, details=details)
    assert details["tolerance"] == {"exact": True, "source": "integers are compared exactly"}
    assert details["mismatches"] == 0


def test_parity_needs_as_many_golden_windows_as_the_batch(golden: Any, model_spec: Any) -> None:
    ref_in, _ = golden
    assert fails(parity, golden, model_spec, CONF, 7, inputs=ref_in[:6]) == (
        "reference/inputs.npy holds 6 windows; parity at batch 7 needs 7"
    )
    parity(golden, model_spec, CONF, 7, inputs=ref_in[:7])  # exactly enough is enough


def test_parity_fails_without_the_golden_output(golden: Any, model_spec: Any) -> None:
    _, ref_out = golden
    assert fails(parity, golden, model_spec, CONF, 7, outputs={CODES: ref_out[CODES]}) == (
        "reference/outputs.npz has no confidence"
    )


def test_parity_fails_when_the_runner_lacks_the_output(golden: Any, model_spec: Any) -> None:
    _, ref_out = golden
    assert fails(parity, golden, model_spec, CONF, 7, replay(ref_out, confidence=None)) == (
        "ONNX produced no confidence (has ['behavioral_codes'])"
    )


def test_parity_fails_on_a_changed_code(golden: Any, model_spec: Any) -> None:
    _, ref_out = golden

    def off_by_one(codes: np.ndarray) -> np.ndarray:
        codes[3] += 1
        return codes

    details: dict[str, Any] = {}
    message = fails(
        parity, golden, model_spec, CODES, 7, replay(ref_out, behavioral_codes=off_by_one), details=details
    )
    assert message == (
        "onnx parity, batch 7: behavioral_codes: 1/7 values differ (max abs error 1, code agreement 85.7%); "
        "code agreement 85.7% is no better than answering the constant code 500 (100.0% of the golden values)"
        + NOT_LOCATED
    )
    assert details["batch_size"] == 7 and details["mismatches"] == 1 and details["passed"] is False


def test_parity_compares_only_the_rows_of_its_batch(golden: Any, model_spec: Any) -> None:
    """A runner that returns every golden row for batch 7 is not 'the first 7 rows'."""
    _, ref_out = golden
    message = fails(parity, golden, model_spec, CONF, 7, lambda n: ref_out)
    assert message == "onnx parity, batch 7: confidence: shape [64, 4] != expected [7, 4]" + NOT_LOCATED


def test_parity_fails_beyond_the_tolerance(golden: Any, model_spec: Any) -> None:
    _, ref_out = golden
    nudged = replay(ref_out, confidence=lambda c: c + np.float32(1e-3))
    message = fails(parity, golden, model_spec, CONF, 1, nudged)
    assert message.startswith("onnx parity, batch 1: confidence: 4/4 outside atol=1e-05 rtol=1e-05;")
    within = replay(ref_out, confidence=lambda c: c + np.float32(5e-6))
    parity(golden, model_spec, CONF, 1, within)


def test_parity_fails_when_the_bundle_asks_more_than_the_policy_allows(golden: Any, model_spec: Any) -> None:
    strict = TolerancePolicy(caps={"float32": (1e-6, 1e-6), "float16": (1e-3, 1e-3)})
    details: dict[str, Any] = {}
    message = fails(parity, golden, model_spec, CONF, 7, policy=strict, details=details)
    assert message == (
        "confidence: config.yaml asks for a looser tolerance than the verifier allows "
        "(atol 1e-05 > cap 1e-06, rtol 1e-05 > cap 1e-06; built-in policy (float32)): "
        "a bundle may only ask for tighter tolerances"
    )
    assert details["tolerance"]["violation"] == message
    assert "passed" not in details  # figures of a comparison at the cap are not reported as the verdict


def _nudged(ref_out: Mapping[str, np.ndarray]) -> Callable[[int], Mapping[str, Any]]:
    return replay(ref_out, confidence=lambda c: c + np.float32(1e-3))


class Reexported:
    """The example bundle (read-only) seen with another ONNX file and/or another tap mapping in its metadata,
    as a broken conversion or a bundle re-exported without re-mapping would have them."""

    def __init__(self, bundle: Bundle, onnx_file: Path | None = None, taps: Any = None) -> None:
        self.bundle, self.onnx_file, self.taps = bundle, onnx_file, taps

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bundle, name)

    def path(self, relpath: str) -> Path:
        return self.onnx_file if self.onnx_file and relpath == ONNX_FILE else self.bundle.path(relpath)

    def format_info(self, fmt: str) -> dict[str, Any]:
        info = dict(self.bundle.format_info(fmt))
        return info if self.taps is None else {**info, "taps": self.taps}


@pytest.fixture(scope="module")
def scaled_classifier(example: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Reexported:
    """The example's ONNX export with the first classifier layer's weights scaled by 1.5 (its taps, in
    execution order: encoder, to_latent, classifier)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(example.path(ONNX_FILE)))
    node = next(n for n in model.graph.node if n.name == "/inner/classifier/classifier.0/Gemm")
    init = next(i for i in model.graph.initializer if i.name == node.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.5), init.name))
    path = tmp_path_factory.mktemp("scaled") / "model.onnx"
    onnx.save(model, str(path))
    return Reexported(example, onnx_file=path)


def test_parity_failure_names_the_first_divergent_tap(
    golden: Any, model_spec: Any, scaled_classifier: Reexported
) -> None:
    """The export's own outputs on the golden inputs: parity fails, and the message and the details name the
    tap where the values first leave the source model's and the last one that still agrees."""
    ref_in, _ = golden
    runner = get_target("onnx").runner(scaled_classifier)
    details: dict[str, Any] = {}
    message = fails(
        parity,
        golden,
        model_spec,
        CONF,
        7,
        lambda n: runner(ref_in[:n]),
        bundle=scaled_classifier,
        details=details,
    )
    where = details["divergence"]
    assert where["first_divergent_tap"] == "classifier" and where["last_agreeing_tap"] == "to_latent"
    assert [t["tap"] for t in where["taps"]] == ["encoder", "to_latent", "classifier"]
    assert [t["agrees"] for t in where["taps"]] == [True, True, False]
    assert where["unmapped_taps"] == []
    bad, good = where["taps"][2]["max_abs_error"], where["taps"][1]["max_abs_error"]
    assert bad > 1e-3 and good < 1e-5
    assert message.startswith("onnx parity, batch 7: confidence: ")
    assert message.endswith(
        f"; diverges at classifier (max abs {bad:.2g}); agrees up to to_latent ({good:.2g})"
    )
    assert details["passed"] is False  # the comparison's figures stay in the details beside the divergence


def test_parity_failure_after_every_tap_says_so(golden: Any, model_spec: Any, example: Bundle) -> None:
    """Outputs off while the export's taps all agree (the golden export, compared on the 7 rows the item
    names): the difference comes after the last tap."""
    _, ref_out = golden
    details: dict[str, Any] = {}
    message = fails(parity, golden, model_spec, CONF, 7, _nudged(ref_out), bundle=example, details=details)
    last = details["divergence"]["taps"][-1]
    assert details["divergence"]["first_divergent_tap"] is None and last["tap"] == "classifier"
    assert message.endswith(
        f"; every tap agrees, the last (classifier) within {last['max_abs_error']:.2g}: it diverges after it"
    )


def test_parity_failure_of_a_target_that_cannot_locate(golden: Any, model_spec: Any, example: Bundle) -> None:
    """A target that cannot expose intermediate tensors (Core ML) fails with the comparison alone."""
    _, ref_out = golden
    details: dict[str, Any] = {}
    message = fails(
        parity,
        golden,
        model_spec,
        CODES,
        1,
        replay(ref_out, behavioral_codes=lambda c: c + 1),
        target="ios",
        bundle=example,
        details=details,
    )
    assert message == (
        "ios parity, batch 1: behavioral_codes: 1/1 values differ (max abs error 1, code agreement 0.0%); "
        "code agreement 0.0% is no better than answering the constant code 500 (100.0% of the golden values)"
    )
    assert "divergence" not in details


def test_parity_failure_without_taps_says_why_not_located(golden: Any, model_spec: Any) -> None:
    _, ref_out = golden
    details: dict[str, Any] = {}
    message = fails(parity, golden, model_spec, CONF, 1, _nudged(ref_out), details=details)
    assert message.endswith(NOT_LOCATED)
    assert details["divergence"] == {
        "error": "metadata.json formats.onnx maps no taps (created before taps?)"
    }


def test_a_tap_the_export_lacks_is_unmapped_not_a_crash(
    golden: Any, model_spec: Any, example: Bundle
) -> None:
    """A tap mapped to a tensor the export does not have (an export replaced after its taps were mapped): that
    tap is left out as unmapped, the others still locate the divergence; with none left, the item says so."""
    _, ref_out = golden
    real = dict(example.format_info("onnx")["taps"])
    stale = Reexported(example, taps={**real, "classifier": "/inner/no_such/Gemm_output_0"})
    details: dict[str, Any] = {}
    message = fails(parity, golden, model_spec, CONF, 1, _nudged(ref_out), bundle=stale, details=details)
    where = details["divergence"]
    assert [t["tap"] for t in where["taps"]] == ["encoder", "to_latent"]
    assert where["unmapped_taps"] == ["classifier"]
    assert message.startswith("onnx parity, batch 1: confidence: 4/4 outside atol=1e-05 rtol=1e-05;")
    assert "; every tap agrees, the last (to_latent) within " in message

    only_stale = Reexported(example, taps={"classifier": "/inner/no_such/Gemm_output_0"})
    details = {}
    message = fails(parity, golden, model_spec, CONF, 1, _nudged(ref_out), bundle=only_stale, details=details)
    assert details["divergence"]["taps"] == []
    assert details["divergence"]["unmapped_taps"] == ["encoder", "to_latent", "classifier"]
    assert message.endswith(
        "; no tap of the source model maps to a tensor of this export: divergence not located"
    )
