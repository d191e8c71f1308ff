"""The int8 section of the verifier's tolerance policy: built-in floors, a file's own, bad values refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conv2d_bundle.config import OutputSpec
from conv2d_bundle.errors import ConfigError
from conv2d_bundle.parity.tolerance import Int8Policy, TolerancePolicy
from conv2d_bundle.targets.hailo.int8 import judge_output


def test_builtin_floors() -> None:
    policy = TolerancePolicy()
    assert policy.int8 == Int8Policy(0.9, 0.95, 30.0, "built-in policy")
    assert policy.as_dict()["int8"]["min_psnr_db"] == 30.0


def test_file_sets_some_floors_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("int8: {min_psnr_db: 20, min_code_agreement: 0.5}\n")
    policy = TolerancePolicy.load(path)
    assert (policy.int8.min_code_agreement, policy.int8.min_argmax_agreement, policy.int8.min_psnr_db) == (
        0.5,
        0.95,
        20.0,
    )
    assert (
        policy.int8.source
        == f"--tolerance-policy {path} (int8: min_code_agreement, min_psnr_db; the rest built in)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "int8: {min_code_agreement: 1.5}\n",
            "int8.min_code_agreement: expected a fraction in [0, 1], got 1.5",
        ),
        ("int8: {min_psnr_db: .nan}\n", "int8.min_psnr_db: expected a number, got nan"),
        ("int8: {min_psnr: 30}\n", "int8: expected a mapping with some of"),
        ("int8: 30\n", "int8: expected a mapping with some of"),
        ("int8: {min_argmax_agreement: true}\n", "int8.min_argmax_agreement: expected a number, got True"),
    ],
)
def test_bad_int8_section_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        TolerancePolicy.load(path)
    assert message in str(info.value)


def _spec(name: str, dtype: str, kind: str) -> OutputSpec:
    return OutputSpec(name=name, dtype=dtype, kind=kind)


def test_judge_codes_and_probabilities_against_the_floors() -> None:
    policy = Int8Policy()
    codes = np.arange(100)
    figures, failures = judge_output(_spec("codes", "int64", "codes"), codes, codes, policy, "dev")
    assert failures == [] and figures["code_agreement"] == 1.0
    off = codes.copy()
    off[:11] += 1  # 89% agree: below the 90% floor
    figures, failures = judge_output(_spec("codes", "int64", "codes"), off, codes, policy, "dev")
    assert failures == ["dev: codes code agreement 89.0% < int8.min_code_agreement 90.0% (built-in policy)"]

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=200).astype(np.float32)
    close = probs + np.float32(1e-3)
    figures, failures = judge_output(_spec("p", "float32", "probabilities"), close, probs, policy, "dev")
    assert failures == [] and figures["argmax_agreement"] == 1.0 and figures["psnr_db"] > 50
    flipped = probs[::-1]
    figures, failures = judge_output(_spec("p", "float32", "probabilities"), flipped, probs, policy, "dev")
    assert [f.split(" ", 3)[2] for f in failures] == ["argmax", "psnr", "top-1"], failures
    assert failures[2].startswith(
        "dev: p: top-1 agreement 26.0% is no better than answering the constant class"
    )


def test_an_agreement_no_better_than_a_constant_fails_naming_both_figures() -> None:
    """The example's golden set: one code covers 61 of 64 windows. A device that answers that code for every
    window clears the 90% floor (95.3%) and must still fail; a device that gets them all right passes."""
    policy = Int8Policy()
    spec = _spec("codes", "int64", "codes")
    golden = np.array([500] * 61 + [501] * 3)
    figures, failures = judge_output(spec, np.full(64, 500), golden, policy, "dev")
    assert figures["code_agreement"] == 0.9531 and figures["constant_agreement"] == 61 / 64
    assert figures["constant_answer"] == 500
    assert failures == [
        "dev: codes: code agreement 95.3% is no better than answering the constant code 500 (95.3% of the "
        "golden values): on this golden set it cannot be told from a device that answers a constant"
    ]
    figures, failures = judge_output(spec, golden, golden, policy, "dev")
    assert failures == [] and figures["code_agreement"] == 1.0
    one_off = golden.copy()
    one_off[-1] = 500  # 63 of 64 right: still better than the constant's 61
    assert judge_output(spec, one_off, golden, policy, "dev")[1] == []

    probs = np.tile(np.array([[0.1, 0.7, 0.1, 0.1]], dtype=np.float32), (10, 1))
    _, failures = judge_output(_spec("p", "float32", "probabilities"), probs, probs, policy, "dev")
    assert failures == [
        "dev: p: top-1 agreement 100.0% is no better than answering the constant class 1 (100.0% of the golden "
        "windows): on this golden set it cannot be told from a device that answers a constant"
    ]


def test_judge_refuses_empty_or_misshapen_evidence() -> None:
    policy = Int8Policy()
    _, failures = judge_output(
        _spec("p", "float32", "probabilities"), np.zeros((0, 4)), np.zeros((0, 4)), policy, "dev"
    )
    assert failures == ["dev: p: nothing compared (0 values, shape [0, 4])"]
    _, failures = judge_output(
        _spec("p", "float32", "probabilities"), np.zeros((3, 4)), np.zeros((4, 4)), policy, "dev"
    )
    assert failures == ["dev: p: shape [3, 4] != expected [4, 4]"]
    nan = np.full((4, 4), np.nan, dtype=np.float32)
    _, failures = judge_output(
        _spec("p", "float32", "probabilities"), nan, np.eye(4, dtype=np.float32), policy, "dev"
    )
    assert any("psnr db nan dB" in f for f in failures), failures


def test_agreement_floors_of_exactly_0_and_1_are_fractions(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("int8: {min_code_agreement: 0, min_argmax_agreement: 1, min_psnr_db: 25}\n")
    policy = TolerancePolicy.load(path)
    assert (policy.int8.min_code_agreement, policy.int8.min_argmax_agreement) == (0.0, 1.0)
    assert policy.int8.source == f"--tolerance-policy {path}"  # every floor from the file: nothing built in


def test_a_bad_int8_floor_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("int8: {min_argmax_agreement: 1.5}\n")
    with pytest.raises(
        ConfigError, match=f"tolerance policy {path}: int8.min_argmax_agreement: expected a fraction"
    ):
        TolerancePolicy.load(path)


def test_per_output_caps_are_reported_with_their_names(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("outputs: {confidence: {atol: 1.0e-6, rtol: 0}}\n")
    assert TolerancePolicy.load(path).as_dict()["outputs"] == {"confidence": {"atol": 1e-6, "rtol": 0.0}}


def test_logits_are_judged_by_argmax_and_psnr() -> None:
    policy = Int8Policy()
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(200, 10)).astype(np.float32) * 3
    figures, failures = judge_output(
        _spec("logits", "float32", "logits"), logits + 1e-3, logits, policy, "dev"
    )
    assert failures == [] and figures["argmax_agreement"] == 1.0 and figures["psnr_db"] > 50
    assert figures["constant_agreement"] < 0.2
    _, failures = judge_output(
        _spec("logits", "float32", "logits"), np.zeros_like(logits), logits, policy, "dev"
    )
    assert [f.split(" ", 3)[2] for f in failures] == ["argmax", "psnr", "top-1"], failures
