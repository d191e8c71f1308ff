"""The golden set drawn from real windows (stratified over predicted classes) and what it covers."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from conv2d_bundle.bundle.reference import coverage, describe_degenerate, stratified_rows
from conv2d_bundle.config import load_config
from tests.conftest import EXAMPLE_CONFIG

SPEC = load_config(EXAMPLE_CONFIG).model  # behavioral_codes (codes, 800) + confidence (probabilities, 4)
LABELS = ("rest", "walk", "trot", "play")
RANDOM = {"kind": "random", "description": "random normal, seed 0"}


def _counts(rows: np.ndarray, labels_by_row: dict[int, int]) -> dict[int, int]:
    return dict(Counter(labels_by_row[int(r)] for r in rows))


def test_round_robin_over_classes_as_evenly_as_the_data_allows() -> None:
    # 1000 candidates: class 0 has 900, class 1 has 80, class 2 has 15, class 3 has 5
    labels = np.repeat([0, 1, 2, 3], [900, 80, 15, 5])
    candidates = np.arange(1000) * 3  # row numbers in the file: not 0..N-1
    rows = stratified_rows(candidates, labels, 64, seed=0)
    by_row = {int(c): int(lab) for c, lab in zip(candidates, labels, strict=True)}
    assert len(rows) == len(set(rows.tolist())) == 64 and set(rows.tolist()) <= set(candidates.tolist())
    # class 3 gives its 5, class 2 its 15, the other two share the remaining 44 evenly
    assert _counts(rows, by_row) == {0: 22, 1: 22, 2: 15, 3: 5}
    # the first rows come one per class: a batch of 4 already sees every class
    assert sorted(by_row[int(r)] for r in rows[:4]) == [0, 1, 2, 3]
    # seeded: the same rows for the same seed, others for another
    np.testing.assert_array_equal(rows, stratified_rows(candidates, labels, 64, seed=0))
    assert set(stratified_rows(candidates, labels, 64, seed=1).tolist()) != set(rows.tolist())


def test_even_split_and_uniform_without_classes() -> None:
    labels = np.repeat([0, 1, 2], [100, 100, 100])
    rows = stratified_rows(np.arange(300), labels, 64, seed=3)
    counts = sorted(_counts(rows, dict(enumerate(labels.tolist()))).values())
    assert counts == [21, 21, 22]  # 64 = 21 + 21 + 22: which class gets the extra one is seeded
    uniform = stratified_rows(np.arange(300), None, 64, seed=3)
    assert len(set(uniform.tolist())) == 64 and uniform.max() < 300
    np.testing.assert_array_equal(uniform, stratified_rows(np.arange(300), None, 64, seed=3))


def _outputs(classes: list[int], codes: list[int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    logits = rng.standard_normal((len(classes), 4)).astype(np.float32)
    logits[np.arange(len(classes)), classes] += 10
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return {"behavioral_codes": np.asarray(codes, np.int64), "confidence": probs.astype(np.float32)}


def test_coverage_of_the_random_golden_set_is_degenerate_by_its_codes() -> None:
    """The example's seeded random windows: classes trot x57 and play x7 (89%: under the 90% line), codes
    500 x61 and 501 x3 (95%: a device answering code 500 always would agree on 95% of them)."""
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((64, 9, 2, 100)).astype(np.float32)
    outputs = _outputs([2] * 57 + [3] * 7, [500] * 61 + [501] * 3, rng)
    cov = coverage(inputs, outputs, SPEC, RANDOM, LABELS)
    assert cov["source"] == RANDOM and cov["windows"] == 64
    assert cov["classes"] == {
        "confidence": {"distinct": 2, "of": 4, "largest_share": 0.8906, "counts": {"trot": 57, "play": 7}}
    }
    assert cov["codes"] == {
        "behavioral_codes": {"distinct": 2, "of": 800, "largest_share": 0.9531, "most_common": 500}
    }
    assert cov["degenerate"] == [
        "behavioral_codes: code 500 is 61 of 64 windows (95%): a constant answer would agree as often"
    ]
    x = inputs.astype(np.float64)
    assert cov["input"] == pytest.approx(
        {"mean": x.mean(), "std": x.std(), "min": x.min(), "max": x.max()}, rel=1e-5, abs=1e-6
    )
    assert describe_degenerate(cov) == (
        "golden set coverage is degenerate (64 windows, random normal, seed 0): behavioral_codes: code 500 is 61 "
        "of 64 windows (95%): a constant answer would agree as often; agreement on it proves little (give real "
        "windows: export.reference.inputs)"
    )


def test_one_class_over_90_percent_and_constant_outputs_are_degenerate() -> None:
    rng = np.random.default_rng(1)
    inputs = rng.standard_normal((20, 9, 2, 100)).astype(np.float32)
    outputs = _outputs([0] * 18 + [1] * 2, list(range(20)), rng)
    cov = coverage(inputs, outputs, SPEC, RANDOM, LABELS)
    assert cov["degenerate"] == ["confidence: class rest is 18 of 20 windows (90%)"]

    dead: dict[str, np.ndarray] = {
        "behavioral_codes": np.full(20, 7, np.int64),
        "confidence": np.full((20, 4), 0.25, np.float32),
    }
    file_source = {"kind": "file", "file": "w.npy", "sha256": "0" * 64, "windows": 20, "rows": []}
    cov = coverage(inputs, dead, SPEC, file_source, LABELS)
    assert cov["degenerate"] == [
        "behavioral_codes is the same on all 20 windows",
        "confidence is the same on all 20 windows",
    ]
    assert describe_degenerate(cov) is not None and "(20 windows from w.npy)" in str(describe_degenerate(cov))

    healthy = _outputs([0, 1, 2, 3] * 5, list(range(20)), rng)
    cov = coverage(inputs, healthy, SPEC, RANDOM, LABELS)
    assert cov["degenerate"] == [] and describe_degenerate(cov) is None
    assert cov["classes"]["confidence"]["largest_share"] == 0.25
