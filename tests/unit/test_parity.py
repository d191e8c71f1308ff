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
