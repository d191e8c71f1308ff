"""A tolerance policy as a report recorded it (:meth:`TolerancePolicy.from_dict`), and how it is compared with a
gate's (:meth:`TolerancePolicy.looser_than`) where the two list different dtypes or outputs.

Written for survivors of the 2026-12-05 mutation run (tests/README.md): a recorded policy is untrusted text
from a report or a registry, so its errors must say which figure is wrong and a dtype only one side lists must
still be compared.
"""

from __future__ import annotations

from typing import Any

import pytest

from conv2d_bundle.errors import ConfigError
from conv2d_bundle.parity.tolerance import BUILTIN_CAPS, Int8Policy, TolerancePolicy

CAPS = {k: {"atol": a, "rtol": r} for k, (a, r) in BUILTIN_CAPS.items()}


def _refused(recorded: Any) -> str:
    with pytest.raises(ConfigError) as info:
        TolerancePolicy.from_dict(recorded)
    return str(info.value)


def test_a_malformed_recorded_figure_is_named() -> None:
    assert _refused({"caps": {**CAPS, "float32": {"atol": "x"}}}) == (
        "tolerance policy recorded caps.float32.atol: expected a number >= 0, got 'x'"
    )
    assert _refused({"caps": CAPS, "outputs": {"confidence": {"rtol": -1}}}) == (
        "tolerance policy recorded outputs.confidence.rtol: expected a number >= 0, got -1"
    )
    assert _refused({"caps": CAPS, "outputs": ["confidence"]}) == (
        "recorded tolerance policy: outputs is not a mapping"
    )
    assert _refused({"caps": CAPS, "int8": {"min_psnr_db": "high"}}) == (
        "tolerance policy recorded: int8.min_psnr_db: expected a number, got 'high'"
    )


def test_a_recorded_policy_keeps_its_source_and_labels_its_int8_floors() -> None:
    again = TolerancePolicy.from_dict({"caps": CAPS, "source": "--tolerance-policy p.yaml"})
    assert again.source == "--tolerance-policy p.yaml"
    assert again.int8 == Int8Policy()  # no int8 section recorded: the built-in floors
    unnamed = TolerancePolicy.from_dict({"caps": CAPS, "int8": {"min_psnr_db": 20.0, "source": "x"}})
    assert unnamed.source == "recorded"
    assert unnamed.int8 == Int8Policy(0.9, 0.95, 20.0, "recorded (int8: min_psnr_db; the rest built in)")
    every = {"min_code_agreement": 0.9, "min_argmax_agreement": 0.95, "min_psnr_db": 30.0}
    assert TolerancePolicy.from_dict({"caps": CAPS, "int8": every}).int8.source == "recorded"


def test_a_dtype_only_one_policy_lists_is_compared_with_the_others_float32_cap() -> None:
    builtin = TolerancePolicy()
    extra_loose = TolerancePolicy({**BUILTIN_CAPS, "float64": (1.0, 0.0)})  # admits float64 outputs off by 1
    assert extra_loose.looser_than(builtin) == ["float64 atol 1 > 0.0001"]
    extra_tight = TolerancePolicy({**BUILTIN_CAPS, "float64": (1e-9, 0.0)})  # the gate is strict on float64
    assert builtin.looser_than(extra_tight) == ["float64 atol 0.0001 > 1e-09", "float64 rtol 1e-05 > 0"]


def test_an_output_only_the_gate_caps_is_compared_with_each_dtypes_cap() -> None:
    gate = TolerancePolicy(outputs={"confidence": (1e-6, 0.0)})
    assert TolerancePolicy().looser_than(gate) == [
        "outputs.confidence (float32) atol 0.0001 > 1e-06",
        "outputs.confidence (float32) rtol 1e-05 > 0",
        "outputs.confidence (float16) atol 0.001 > 1e-06",
        "outputs.confidence (float16) rtol 0.001 > 0",
    ]
