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


# -- per-output PSNR floors: int8.outputs.<name>.min_psnr_db --------------------------------------------


def _int8_policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_an_outputs_own_psnr_floor_wins_and_names_its_source(tmp_path: Path) -> None:
    path = _int8_policy_file(
        tmp_path,
        "int8:\n  min_psnr_db: 35\n  outputs:\n    logits: {min_psnr_db: 25}\n    confidence: {min_psnr_db: 40}\n",
    )
    int8 = TolerancePolicy.load(path).int8
    assert int8.psnr_floor("logits") == (25.0, f"--tolerance-policy {path} (int8.outputs.logits)")
    assert int8.psnr_floor("confidence") == (40.0, f"--tolerance-policy {path} (int8.outputs.confidence)")
    general = f"--tolerance-policy {path} (int8: min_psnr_db; the rest built in)"
    assert int8.psnr_floor("other") == (35.0, general) and int8.source == general
    assert int8.as_dict()["outputs"] == {"confidence": {"min_psnr_db": 40.0}, "logits": {"min_psnr_db": 25.0}}


def test_a_file_with_only_per_output_floors_keeps_the_built_in_general_ones(tmp_path: Path) -> None:
    path = _int8_policy_file(tmp_path, "int8: {outputs: {logits: {min_psnr_db: 20}}}\n")
    int8 = TolerancePolicy.load(path).int8
    assert (int8.min_code_agreement, int8.min_argmax_agreement, int8.min_psnr_db, int8.source) == (
        0.9,
        0.95,
        30.0,
        "built-in policy",
    )
    assert int8.psnr_floor("logits") == (20.0, f"--tolerance-policy {path} (int8.outputs.logits)")
    assert TolerancePolicy.load(_int8_policy_file(tmp_path, "int8: {outputs: {}}\n")).int8 == Int8Policy()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("int8: {outputs: 25}\n", "int8.outputs: expected a mapping of name: {min_psnr_db: number}, got 25"),
        ("int8: {outputs: [logits]}\n", "int8.outputs: expected a mapping of name"),
        ("int8: {outputs: {logits: 25}}\n", "int8.outputs.logits: expected {min_psnr_db: number}, got 25"),
        ("int8: {outputs: {logits: {}}}\n", "int8.outputs.logits: expected {min_psnr_db: number}, got {}"),
        (
            "int8: {outputs: {logits: {min_psnr_db: 25, atol: 1}}}\n",
            "int8.outputs.logits: unknown keys ['atol'] (known: min_psnr_db)",
        ),
        (
            "int8: {outputs: {logits: {min_psnr: 25}}}\n",
            "int8.outputs.logits: unknown keys ['min_psnr'] (known: min_psnr_db)",
        ),
        (
            "int8: {outputs: {logits: {min_psnr_db: high}}}\n",
            "int8.outputs.logits.min_psnr_db: expected a number, got 'high'",
        ),
        (
            "int8: {outputs: {logits: {min_psnr_db: .inf}}}\n",
            "int8.outputs.logits.min_psnr_db: expected a number, got inf",
        ),
        (
            "int8: {outputs: {logits: {min_psnr_db: .nan}}}\n",
            "int8.outputs.logits.min_psnr_db: expected a number, got nan",
        ),
        (
            "int8: {outputs: {logits: {min_psnr_db: true}}}\n",
            "int8.outputs.logits.min_psnr_db: expected a number, got True",
        ),
        (
            "int8: {outputs: {logits: {min_psnr_db: 2e1}}}\n",
            "int8.outputs.logits.min_psnr_db: expected a number, got '2e1' (YAML reads 1e-5 as text: write 1.0e-5)",
        ),
        ("int8: {output: {logits: {min_psnr_db: 25}}}\n", "int8: expected a mapping with some of"),
    ],
)
def test_a_bad_per_output_floor_is_refused_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = _int8_policy_file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        TolerancePolicy.load(path)
    assert str(info.value).startswith(f"tolerance policy {path}: ")
    assert message in str(info.value)


def test_without_per_output_floors_the_record_and_its_digest_are_as_before(tmp_path: Path) -> None:
    """A policy without ``int8.outputs`` records what it always recorded: digests in existing reports and
    evidence still match."""
    from conv2d_bundle.parity.tolerance import policy_digest

    recorded_before = {
        "source": "built-in policy",
        "caps": {"float16": {"atol": 1e-3, "rtol": 1e-3}, "float32": {"atol": 1e-4, "rtol": 1e-5}},
        "outputs": {},
        "integers": "exact",
        "int8": {
            "min_code_agreement": 0.9,
            "min_argmax_agreement": 0.95,
            "min_psnr_db": 30.0,
            "source": "built-in policy",
        },
    }
    assert TolerancePolicy().as_dict() == recorded_before
    assert TolerancePolicy().digest == policy_digest(recorded_before)
    every = _int8_policy_file(
        tmp_path, "int8: {min_code_agreement: 0.9, min_argmax_agreement: 0.95, min_psnr_db: 30}\n"
    )
    assert "outputs" not in TolerancePolicy.load(every).as_dict()["int8"]
    assert TolerancePolicy.load(every).digest == policy_digest(recorded_before)
    # a per-output floor is a figure: it changes the digest, wherever the file lives
    own = "int8: {outputs: {logits: {min_psnr_db: 30}}}\n"
    (tmp_path / "elsewhere").mkdir()
    with_floor = TolerancePolicy.load(_int8_policy_file(tmp_path, own))
    assert with_floor.digest != policy_digest(recorded_before)
    assert with_floor.digest == TolerancePolicy.load(_int8_policy_file(tmp_path / "elsewhere", own)).digest


def test_per_output_floors_read_back_from_a_record() -> None:
    policy = TolerancePolicy(
        int8=Int8Policy(min_psnr_db=35.0, outputs={"logits": (25.0, "p.yaml (int8.outputs.logits)")})
    )
    recorded = policy.as_dict()
    assert recorded["int8"]["outputs"] == {"logits": {"min_psnr_db": 25.0}}
    again = TolerancePolicy.from_dict(recorded)
    assert again.int8.psnr_floor("logits") == (25.0, "recorded (int8.outputs.logits)")
    assert again.int8.psnr_floor("confidence") == (35.0, "recorded")
    assert again.digest == policy.digest and again.as_dict()["int8"] == {
        **recorded["int8"],
        "source": "recorded",
    }
    with pytest.raises(ConfigError) as info:
        TolerancePolicy.from_dict(
            {**recorded, "int8": {**recorded["int8"], "outputs": {"logits": {"min_psnr_db": "x"}}}}
        )
    assert (
        str(info.value)
        == "tolerance policy recorded: int8.outputs.logits.min_psnr_db: expected a number, got 'x'"
    )


def test_looser_than_names_a_lower_per_output_floor() -> None:
    def int8(general: float = 30.0, **own: float) -> TolerancePolicy:
        return TolerancePolicy(
            int8=Int8Policy(
                min_psnr_db=general, outputs={k: (v, f"f (int8.outputs.{k})") for k, v in own.items()}
            )
        )

    gate = TolerancePolicy()
    assert int8(logits=25.0).looser_than(gate) == ["int8.outputs.logits.min_psnr_db 25 < 30"]
    assert int8(logits=35.0).looser_than(gate) == []  # a higher floor for one output is stricter
    assert int8(logits=30.0).looser_than(gate) == []
    # the gate's own floor for an output: this policy's general floor is what that output gets here
    assert gate.looser_than(int8(confidence=40.0)) == ["int8.outputs.confidence.min_psnr_db 30 < 40"]
    assert int8(confidence=40.0).looser_than(int8(confidence=40.0)) == []
    assert int8(35.0, confidence=32.0).looser_than(int8(confidence=33.0)) == [
        "int8.outputs.confidence.min_psnr_db 32 < 33"
    ]
    # a lower general floor is still named by itself; each output the gate holds higher, too
    assert int8(20.0).looser_than(int8(confidence=40.0)) == [
        "int8.min_psnr_db 20 < 30",
        "int8.outputs.confidence.min_psnr_db 20 < 40",
    ]


def test_the_judge_holds_each_float_output_to_its_own_psnr_floor() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(200, 10)).astype(np.float32) * 3
    noisy = logits + rng.normal(size=logits.shape).astype(np.float32) * 0.1  # ~30 dB: argmax mostly kept
    spec = _spec("logits", "float32", "logits")
    general = Int8Policy(min_argmax_agreement=0.0)
    figures, failures = judge_output(spec, noisy, logits, general, "dev")
    assert failures == [] and 0 < figures["psnr_db"] < 100
    assert figures["psnr_floor"] == {"min_psnr_db": 30.0, "source": "built-in policy"}

    own = Int8Policy(min_argmax_agreement=0.0, outputs={"logits": (100.0, "p.yaml (int8.outputs.logits)")})
    figures, failures = judge_output(spec, noisy, logits, own, "dev")
    assert failures == [
        f"dev: logits psnr db {figures['psnr_db']:.1f} dB < min_psnr_db 100 dB (p.yaml (int8.outputs.logits))"
    ]
    assert figures["psnr_floor"] == {"min_psnr_db": 100.0, "source": "p.yaml (int8.outputs.logits)"}
    # another output of the same policy keeps the general floor
    _, failures = judge_output(_spec("other", "float32", "logits"), noisy, logits, own, "dev")
    assert failures == []

    # a lower floor of its own lets an output through that the general floor stops
    zeros = np.zeros_like(logits)
    _, failures = judge_output(spec, zeros, logits, general, "dev")
    assert any("< int8.min_psnr_db 30 dB (built-in policy)" in f for f in failures), failures
    lenient = Int8Policy(
        min_argmax_agreement=0.0, outputs={"logits": (-100.0, "p.yaml (int8.outputs.logits)")}
    )
    figures, failures = judge_output(spec, zeros, logits, lenient, "dev")
    assert not any("psnr" in f for f in failures), failures
    assert figures["psnr_floor"]["min_psnr_db"] == -100.0
    # integer outputs have no PSNR floor
    codes = np.arange(100)
    figures, _ = judge_output(_spec("logits", "int64", "codes"), codes, codes, own, "dev")
    assert "psnr_floor" not in figures


def test_show_lists_the_per_output_floors() -> None:
    from conv2d_bundle.verify.evidence import policy_summary

    policy = TolerancePolicy(int8=Int8Policy(outputs={"logits": (25.0, "f"), "confidence": (40.0, "f")}))
    assert policy_summary(policy.as_dict()).endswith(
        "int8 codes >= 0.9, argmax >= 0.95, PSNR >= 30.0 dB (confidence >= 40.0 dB, logits >= 25.0 dB)"
    )
    assert policy_summary(TolerancePolicy().as_dict()).endswith("PSNR >= 30.0 dB")
