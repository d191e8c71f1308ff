"""Parity figures: what passes, what does not, and that every figure can be written as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conv2d_bundle.parity import compare


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
