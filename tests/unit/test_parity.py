"""Parity figures: what passes, what does not, and that every figure can be written as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conv2d_bundle.config import OutputSpec
from conv2d_bundle.errors import ParityError
from conv2d_bundle.parity.figures import check_outputs, compare, compare_output
from conv2d_bundle.parity.tolerance import TolerancePolicy


def test_within_tolerance_passes_with_figures() -> None:
    s = compare("c", np.array([1.0, 2.0 + 5e-6]), np.array([1.0, 2.0]), integer=False)
    assert s.passed and s.mismatches == 0 and 0 < s.max_abs_error < 1e-5 and s.cosine_similarity > 0.999999


def test_outside_tolerance_names_the_smallest_passing_atol() -> None:
    s = compare("c", np.array([1.0, 2.001]), np.array([1.0, 2.0]), integer=False)
    assert not s.passed and s.mismatches == 1
    assert s.min_atol_to_pass == pytest.approx(0.001 - 2e-5, rel=1e-3)
    assert "would pass with atol >=" in s.describe()


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        ([1.0, np.nan], [1.0, 2.0]),
        ([1.0, 2.0], [1.0, np.nan]),
        ([np.nan], [np.nan]),
        ([1.0, 2.0], [1.0, np.inf]),
    ],
)
def test_nan_and_inf_never_match(actual: list[float], expected: list[float]) -> None:
    s = compare("c", np.array(actual), np.array(expected), integer=False)
    assert not s.passed
    json.dumps(s.as_dict(), allow_nan=False)


def test_integers_exact_by_value() -> None:
    assert compare("k", np.array([3, 4], np.int32), np.array([3, 4]), integer=True).passed
    assert not compare("k", np.array([3.0, 4.3], np.float32), np.array([3, 4]), integer=True).passed


def test_shape_mismatch_is_reported_and_serializable() -> None:
    s = compare("c", np.zeros((32, 4)), np.zeros((64, 4)), integer=False)
    assert not s.passed and "shape [32, 4] != expected [64, 4]" in s.describe()
    json.dumps(s.as_dict(), allow_nan=False)


def test_figures_psnr_snr_and_mean_errors_as_defined() -> None:
    ref = np.array([[0.5, -2.0], [1.0, 0.25]])
    out = ref + np.array([[0.01, -0.02], [0.0, 0.03]])
    s = compare("c", out, ref, integer=False, atol=1e-4, rtol=0.0)
    rmse = np.sqrt(np.mean((out - ref) ** 2))
    assert s.psnr_db == pytest.approx(20 * np.log10((2.0 + 1e-5) / (rmse + 1e-10)))
    assert s.snr_db == pytest.approx(10 * np.log10(np.mean(ref**2) / rmse**2))
    assert s.mean_abs_error == pytest.approx(0.015)
    assert s.mean_rel_error == pytest.approx(np.mean(np.abs(out - ref) / np.abs(ref)))
    assert s.p99_rel_error == pytest.approx(np.percentile(np.abs(out - ref) / np.abs(ref), 99))
    assert "PSNR 40.6 dB" in s.describe()  # rmse 0.01871


def test_identical_outputs_have_finite_figures() -> None:
    ref = np.linspace(-1, 1, 10)
    s = compare("c", ref.copy(), ref, integer=False)
    assert s.passed and s.mean_abs_error == 0 and s.psnr_db > 150 and s.snr_db > 150
    json.dumps(s.as_dict(), allow_nan=False)


def test_top1_agreement_for_class_outputs_is_reported_even_when_passing() -> None:
    ref = np.array([[0.1, 0.9], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    out = ref.copy()
    out[1] = [0.4, 0.6]  # the argmax of one window flips
    s = compare("p", out, ref, integer=False, kind="probabilities")
    assert s.agreement_kind == "top1" and s.agreement == 0.75 and "top-1 agreement 75.0%" in s.describe()
    assert compare("p", ref, ref, integer=False, kind="probabilities").as_dict()["agreement"] == 1.0


def test_code_agreement_for_code_outputs() -> None:
    s = compare("k", np.array([[1, 2], [3, 5]]), np.array([[1, 2], [3, 4]]), integer=True, kind="codes")
    assert s.agreement_kind == "codes" and s.agreement == 0.75 and "code agreement 75.0%" in s.describe()
    assert compare("t", np.ones(3), np.ones(3), integer=False).agreement is None  # kind: tensor has none


def test_float_figures_under_rtol_and_atol() -> None:
    # |a - e| <= atol + rtol * |e|: the last value is off by 1 with 0.5 allowed from rtol, so atol 0.5 is the edge
    s = compare("c", np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.0, 5.0]), integer=False, atol=0.5, rtol=0.1)
    assert s.passed and s.mismatches == 0 and s.total == 3
    assert (s.max_abs_error, s.max_rel_error) == (1.0, pytest.approx(0.2))
    assert s.p99_abs_error == pytest.approx(0.98)  # the 99th percentile, not the maximum
    assert s.cosine_similarity == pytest.approx(25 / np.sqrt(21 * 30))
    assert s.min_atol_to_pass == pytest.approx(0.5)
    off = compare(
        "c", np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.0, 5.0]), integer=False, atol=0.49, rtol=0.1
    )
    assert not off.passed and off.mismatches == 1 and off.min_atol_to_pass == pytest.approx(0.5)
    assert (
        off.describe()
        == (
            "c: 1/3 outside atol=0.49 rtol=0.1; max abs 1, max rel 0.2, p99 abs 0.98, "
            f"cosine {25 / np.sqrt(630):.9f}, PSNR 18.8 dB; would pass with atol >= 0.5"  # 20 log10(5 / sqrt(1/3))
        )
    )


def test_default_tolerances_and_nothing_needed_when_exact() -> None:
    s = compare("c", np.array([[1.0, -2.0]]), np.array([[1.0, -2.0]]), integer=False)
    assert (s.atol, s.rtol) == (1e-5, 1e-5)
    assert (s.shape, s.expected_shape, s.integer) == ((1, 2), (1, 2), False)
    assert (s.max_abs_error, s.max_rel_error, s.p99_abs_error, s.min_atol_to_pass) == (0.0, 0.0, 0.0, 0.0)
    assert s.cosine_similarity == pytest.approx(1.0)


def test_relative_error_against_a_zero_expectation_is_huge_but_finite() -> None:
    s = compare("c", np.array([1e-3]), np.array([0.0]), integer=False, atol=1e-2, rtol=0.0)
    assert s.passed  # within atol, whatever the relative error
    assert s.max_rel_error == pytest.approx(1e-3 / np.finfo(np.float32).tiny)


def test_equal_infinities_match_and_nan_needs_infinite_atol() -> None:
    inf = compare("c", np.array([np.inf, 1.0]), np.array([np.inf, 1.0]), integer=False)
    assert inf.passed and inf.max_abs_error == 0.0
    assert inf.cosine_similarity == 1.0  # an infinite norm: equal arrays are similar
    nan = compare("c", np.array([np.nan, 1.0]), np.array([1.0, 1.0]), integer=False)
    assert nan.mismatches == 1 and nan.max_abs_error == np.inf and nan.min_atol_to_pass == np.inf
    assert nan.as_dict()["max_abs_error"] == "inf" and nan.as_dict()["min_atol_to_pass"] == "inf"


def test_cosine_of_zero_or_tiny_vectors() -> None:
    assert compare("c", np.zeros(3), np.zeros(3), integer=False).cosine_similarity == 1.0
    assert compare("c", np.zeros(3), np.ones(3), integer=False, atol=1.0).cosine_similarity == 0.0
    tiny = compare("c", np.array([0.1]), np.array([0.2]), integer=False, atol=1.0)
    assert tiny.cosine_similarity == pytest.approx(1.0)  # same direction, however short


def test_integer_figures_and_description() -> None:
    s = compare("k", np.array([3, 5, 7]), np.array([3, 4, 7]), integer=True, atol=0.5, rtol=0.5)
    assert not s.passed and s.mismatches == 1 and s.integer
    assert s.min_atol_to_pass == 1.0 and s.max_abs_error == 1.0
    assert s.describe() == "k: 1/3 values differ (max abs error 1)"
    nan = compare("k", np.array([3.0, np.nan]), np.array([3.0, 4.0]), integer=True)
    assert nan.mismatches == 1 and nan.describe() == "k: 1/2 values differ (max abs error inf)"


def test_shape_mismatch_figures() -> None:
    s = compare("c", np.zeros((2, 3)), np.zeros((4,)), integer=True, atol=0.1, rtol=0.2)
    assert s.as_dict() == {
        "output": "c",
        "passed": False,
        "shape": [2, 3],
        "expected_shape": [4],
        "integer": True,
        "mismatches": 4,
        "total": 4,
        "max_abs_error": "inf",
        "max_rel_error": "inf",
        "p99_abs_error": "inf",
        "cosine_similarity": 0.0,
        "atol": 0.1,
        "rtol": 0.2,
        "min_atol_to_pass": "inf",
        "mean_abs_error": "nan",  # not measured: nothing comparable
        "mean_rel_error": "nan",
        "p99_rel_error": "nan",
        "psnr_db": "nan",
        "snr_db": "nan",
        "agreement_kind": None,
        "agreement": None,
        "constant_agreement": None,
        "constant_answer": None,
    }
    assert s.describe() == "c: shape [2, 3] != expected [4]"


def test_nothing_to_compare_is_not_a_pass() -> None:
    s = compare("c", np.zeros((0, 4)), np.zeros((0, 4)), integer=False, atol=0.1, rtol=0.2)
    assert s.as_dict() == {
        "output": "c",
        "passed": False,
        "shape": [0, 4],
        "expected_shape": [0, 4],
        "integer": False,
        "mismatches": 0,
        "total": 0,
        "max_abs_error": 0.0,
        "max_rel_error": 0.0,
        "p99_abs_error": 0.0,
        "cosine_similarity": 0.0,
        "atol": 0.1,
        "rtol": 0.2,
        "min_atol_to_pass": 0.0,
        "mean_abs_error": "nan",  # not measured: nothing comparable
        "mean_rel_error": "nan",
        "p99_rel_error": "nan",
        "psnr_db": "nan",
        "snr_db": "nan",
        "agreement_kind": None,
        "agreement": None,
        "constant_agreement": None,
        "constant_answer": None,
    }
    assert s.describe() == "c: nothing compared (0 values, shape [0, 4])"


def test_compare_output_uses_the_policy_tolerance() -> None:
    spec = OutputSpec("confidence", "float32", atol=1e-6, rtol=0.0)
    tolerance, stats = compare_output(spec, np.array([1.0 + 5e-6]), np.array([1.0]))
    assert tolerance.source.startswith("config.yaml") and not stats.passed  # the bundle's tighter ask
    assert (stats.output, stats.atol, stats.rtol) == ("confidence", 1e-6, 0.0)
    loose = OutputSpec("confidence", "float32", atol=1e-2, rtol=0.0)
    tolerance, stats = compare_output(loose, np.array([1.0 + 5e-4]), np.array([1.0]))
    assert tolerance.violation and not stats.passed and stats.atol == 1e-4  # compared at the cap
    policy = TolerancePolicy(outputs={"confidence": (1.0, 0.0)})
    tolerance, stats = compare_output(loose, np.array([1.0 + 5e-4]), np.array([1.0]), policy)
    assert tolerance.violation is None and stats.passed and stats.atol == 1e-2
    codes = OutputSpec("codes", "int64", atol=0.5, rtol=0.5)
    tolerance, stats = compare_output(codes, np.array([1, 2]), np.array([1, 3]))
    assert tolerance.exact and stats.integer and stats.mismatches == 1


def test_check_outputs_figures_when_everything_matches() -> None:
    specs = [OutputSpec("confidence", "float32"), OutputSpec("codes", "int64")]
    got = {"confidence": np.array([0.5, 0.25]), "codes": np.array([1, 2]), "extra": np.array([9])}
    expected = {"confidence": np.array([0.5, 0.25 + 1e-6]), "codes": np.array([1, 2])}
    figures = check_outputs(got, expected, specs, "ONNX")
    assert figures == {
        "confidence": {"max_abs_error": pytest.approx(1e-6), "mismatches": 0, "passed": True},
        "codes": {"max_abs_error": 0.0, "mismatches": 0, "passed": True},
    }


def test_check_outputs_lists_every_missing_loose_or_off_output() -> None:
    specs = [
        OutputSpec("missing", "float32"),
        OutputSpec("loose", "float32", atol=0.5),
        OutputSpec("off", "int64"),
        OutputSpec("fine", "float32"),
    ]
    got = {"loose": np.array([1.0]), "off": np.array([1, 2]), "fine": np.array([1.0])}
    expected = {
        "missing": np.array([1.0]),
        "loose": np.array([1.0]),
        "off": np.array([1, 3]),
        "fine": np.array([1.0]),
    }
    with pytest.raises(ParityError) as info:
        check_outputs(got, expected, specs, "Core ML")
    assert str(info.value) == (
        "Core ML does not match torch: missing: not produced (has ['fine', 'loose', 'off']); "
        "loose: config.yaml asks for a looser tolerance than the verifier allows (atol 0.5 > cap 0.0001; "
        "built-in policy (float32)): a bundle may only ask for tighter tolerances; "
        "off: 1/2 values differ (max abs error 1)"
    )


def test_logits_are_judged_as_classes() -> None:
    """``kind: logits`` (an image classifier's raw scores): the figures carry top-1 agreement and the best
    constant class, as for probabilities; the values themselves are still held to the tolerance."""
    logits = np.array([[2.0, 0.1, -1.0], [0.0, 3.0, 1.0], [0.5, 0.2, 4.0], [1.0, 0.0, 0.0]])
    shifted = logits + 5.0  # the same classes, other values
    s = compare("logits", shifted, logits, integer=False, atol=1e-4, rtol=0.0, kind="logits")
    assert not s.passed and s.agreement_kind == "top1" and s.agreement == 1.0
    assert s.constant_agreement == 0.5 and s.constant_answer == 0  # classes 0, 1, 2, 0
    assert s.no_better_than_constant() is None
    dead = compare("logits", np.zeros_like(logits), logits, integer=False, kind="logits")
    assert dead.agreement == 0.5  # argmax of a zero row is class 0: as good as answering class 0
    assert dead.no_better_than_constant() == (
        "logits: top-1 agreement 50.0% is no better than answering the constant class 0 (50.0% of the golden "
        "windows)"
    )
    # a failure says both: the figures, then (without repeating the output's name) the constant it does not beat
    assert dead.failure() == dead.describe() + (
        "; top-1 agreement 50.0% is no better than answering the constant class 0 (50.0% of the golden windows)"
    )
    assert s.failure() == s.describe()  # an agreement that beats every constant adds nothing
