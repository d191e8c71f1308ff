"""The verifier's tolerance policy: its caps, a policy file, and what one output is compared with."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.config import OutputSpec
from conv2d_bundle.errors import ConfigError
from conv2d_bundle.parity.tolerance import BUILTIN, BUILTIN_CAPS, Tolerance, TolerancePolicy

BUILTIN_CAP = "built-in policy (float32)"


def _policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_builtin_caps_are_the_fields_loosest_float32_defaults() -> None:
    policy = TolerancePolicy()
    assert BUILTIN == "built-in policy"
    assert BUILTIN_CAPS == {"float32": (1e-4, 1e-5), "float16": (1e-3, 1e-3)}
    assert (dict(policy.caps), dict(policy.outputs), policy.source) == (BUILTIN_CAPS, {}, BUILTIN)
    assert policy.as_dict() == {
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
    policy.caps["float64"] = (1.0, 1.0)  # type: ignore[index]  # each policy has its own copy
    assert TolerancePolicy().caps == BUILTIN_CAPS


def test_cap_by_output_name_then_dtype_then_float32() -> None:
    policy = TolerancePolicy(outputs={"confidence": (1e-6, 0.0)}, source="mine")
    assert policy.cap("confidence", "float16") == (1e-6, 0.0, "mine (outputs.confidence)")
    assert policy.cap("logits", "float16") == (1e-3, 1e-3, "mine (float16)")
    assert policy.cap("logits", "float32") == (1e-4, 1e-5, "mine (float32)")
    assert policy.cap("logits", "float64") == (1e-4, 1e-5, "mine (float64)")  # unknown dtypes: float32's


def test_an_integer_output_is_compared_exactly() -> None:
    t = TolerancePolicy().resolve(OutputSpec("codes", "int64", atol=0.5, rtol=0.5))
    assert t == Tolerance(
        "codes", True, 0.0, 0.0, "integers are compared exactly", 0, 0, "built-in policy (int64)"
    )
    assert t.violation is None
    assert t.as_dict() == {"exact": True, "source": "integers are compared exactly"}


def test_a_bundle_asking_for_tighter_tolerances_gets_them() -> None:
    t = TolerancePolicy().resolve(OutputSpec("confidence", "float32", atol=1e-6, rtol=2e-6))
    assert (t.output, t.exact, t.atol, t.rtol, t.violation) == ("confidence", False, 1e-6, 2e-6, None)
    assert t.source == "config.yaml model.outputs.confidence (within the cap)"
    assert t.as_dict() == {
        "atol": 1e-6,
        "rtol": 2e-6,
        "source": "config.yaml model.outputs.confidence (within the cap)",
        "cap": {"atol": 1e-4, "rtol": 1e-5, "source": BUILTIN_CAP},
    }


def test_a_bundle_asking_for_exactly_the_cap_is_within_it() -> None:
    t = TolerancePolicy().resolve(OutputSpec("confidence", "float32", atol=1e-4, rtol=1e-5))
    assert t.violation is None and (t.atol, t.rtol) == (1e-4, 1e-5)
    assert t.source.startswith("config.yaml")


@pytest.mark.parametrize(
    ("atol", "rtol", "looser"),
    [
        (1e-3, 1e-5, "atol 0.001 > cap 0.0001"),
        (1e-5, 1e-4, "rtol 0.0001 > cap 1e-05"),
        (1e-3, 1e-4, "atol 0.001 > cap 0.0001, rtol 0.0001 > cap 1e-05"),
    ],
)
def test_a_bundle_asking_for_looser_tolerances_is_a_violation_compared_at_the_cap(
    atol: float, rtol: float, looser: str
) -> None:
    t = TolerancePolicy().resolve(OutputSpec("confidence", "float32", atol=atol, rtol=rtol))
    assert t.violation == (
        f"confidence: config.yaml asks for a looser tolerance than the verifier allows ({looser}; "
        f"{BUILTIN_CAP}): a bundle may only ask for tighter tolerances"
    )
    assert t == Tolerance("confidence", False, 1e-4, 1e-5, BUILTIN_CAP, 1e-4, 1e-5, BUILTIN_CAP, t.violation)
    assert t.as_dict()["violation"] == t.violation
    assert t.as_dict()["source"] == BUILTIN_CAP and (t.as_dict()["atol"], t.as_dict()["rtol"]) == (1e-4, 1e-5)


def test_load_a_policy_file(tmp_path: Path) -> None:
    path = _policy_file(
        tmp_path,
        "schema_version: 1\nfloat32: {atol: 1.0e-5, rtol: 0}\noutputs:\n  confidence: {atol: 2.0e-6}\n",
    )
    policy = TolerancePolicy.load(path)
    assert dict(policy.caps) == {"float32": (1e-5, 0.0), "float16": (1e-3, 1e-3)}  # float16 stays built in
    assert dict(policy.outputs) == {"confidence": (2e-6, 0.0)}  # a missing rtol is 0
    assert policy.source == f"--tolerance-policy {path}"
    assert all(type(v) is float for pair in [*policy.caps.values(), *policy.outputs.values()] for v in pair)
    assert TolerancePolicy.load(str(path)) == policy
    json_policy = TolerancePolicy.load(_policy_file(tmp_path, '{"float16": {"atol": 0.01, "rtol": 0.02}}'))
    assert dict(json_policy.caps) == {"float32": (1e-4, 1e-5), "float16": (0.01, 0.02)}
    assert dict(json_policy.outputs) == {}


def test_load_an_empty_outputs_section(tmp_path: Path) -> None:
    policy = TolerancePolicy.load(_policy_file(tmp_path, "outputs:\nfloat32: {rtol: 1.0e-6}\n"))
    assert dict(policy.outputs) == {} and policy.caps["float32"] == (0.0, 1e-6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- 1\n- 2\n", "tolerance policy {path}: expected a mapping of dtype: {{atol, rtol}}"),
        (
            "float64: {atol: 1}\nbfloat16: {atol: 1}\n",
            "tolerance policy {path}: unknown keys ['bfloat16', 'float64'] (known: ['float16', 'float32'], outputs, int8)",
        ),
        (
            "outputs: [confidence]\n",
            "tolerance policy {path}: outputs: expected a mapping of name: {{atol, rtol}}",
        ),
        (
            "float32: 1.0e-4\n",
            "tolerance policy {path}: float32: expected {{atol: number, rtol: number}}, got 0.0001",
        ),
        (
            "float16: {atol: 1, tol: 2}\n",
            "tolerance policy {path}: float16: expected {{atol: number, rtol: number}}, got {{'atol': 1, 'tol': 2}}",
        ),
        (
            "float32: {}\n",
            "tolerance policy {path}: float32: expected {{atol: number, rtol: number}}, got {{}}",
        ),
        (
            "float32: {atol: true}\n",
            "tolerance policy {path}: float32.atol: expected a number >= 0, got True",
        ),
        (
            "float32: {rtol: tight}\n",
            "tolerance policy {path}: float32.rtol: expected a number >= 0, got 'tight'",
        ),
        ("float32: {atol: .inf}\n", "tolerance policy {path}: float32.atol: expected a number >= 0, got inf"),
        ("float32: {atol: .nan}\n", "tolerance policy {path}: float32.atol: expected a number >= 0, got nan"),
        ("float32: {rtol: -1}\n", "tolerance policy {path}: float32.rtol: expected a number >= 0, got -1"),
        (
            "outputs:\n  confidence: {atol: -0.5}\n",
            "tolerance policy {path}: outputs.confidence.atol: expected a number >= 0, got -0.5",
        ),
    ],
)
def test_load_refuses_a_malformed_policy_naming_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _policy_file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        TolerancePolicy.load(path)
    assert str(info.value) == message.format(path=path)


def test_load_zero_is_a_valid_tolerance(tmp_path: Path) -> None:
    policy = TolerancePolicy.load(_policy_file(tmp_path, "float32: {atol: 0, rtol: 0}\n"))
    assert policy.caps["float32"] == (0.0, 0.0)


def test_load_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tolerance policy file not found: .*nope\.yaml"):
        TolerancePolicy.load(tmp_path / "nope.yaml")


def test_a_loaded_policy_resolves_against_its_own_caps(tmp_path: Path) -> None:
    path = _policy_file(tmp_path, "outputs:\n  confidence: {atol: 1.0e-6, rtol: 0}\n")
    t = TolerancePolicy.load(path).resolve(OutputSpec("confidence", "float32", atol=1e-5, rtol=0.0))
    source = f"--tolerance-policy {path} (outputs.confidence)"
    assert t.violation is not None and f"atol 1e-05 > cap 1e-06; {source}" in t.violation
    assert (t.atol, t.rtol, t.source, t.cap_source) == (1e-6, 0.0, source, source)


def test_the_documented_policy_file_loads(tmp_path: Path) -> None:
    """The example in the module's docstring is a policy a user can copy."""
    import conv2d_bundle.parity.tolerance as module

    assert module.__doc__ is not None
    example = module.__doc__.split("::\n", 1)[1].split("\n\n", 1)[0]
    policy = TolerancePolicy.load(_policy_file(tmp_path, textwrap.dedent(example)))
    assert dict(policy.caps) == BUILTIN_CAPS
    assert dict(policy.outputs) == {"confidence": (1e-5, 0.0)}


def test_a_number_yaml_reads_as_text_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = _policy_file(tmp_path, "float32: {atol: 1e-5}\n")
    with pytest.raises(ConfigError) as info:
        TolerancePolicy.load(path)
    assert str(info.value) == (
        f"tolerance policy {path}: float32.atol: expected a number >= 0, got '1e-5'"
        " (YAML reads 1e-5 as text: write 1.0e-5)"
    )


def test_a_recorded_policy_reads_back_to_the_same_digest() -> None:
    policy = TolerancePolicy({**BUILTIN_CAPS, "float32": (1e-6, 0.0)}, {"confidence": (1e-5, 0.0)}, "mine")
    again = TolerancePolicy.from_dict(policy.as_dict())
    assert (again.caps, again.outputs, again.int8.min_psnr_db) == (policy.caps, policy.outputs, 30.0)
    assert again.digest == policy.digest and again.digest.startswith("sha256:")
    # the figures decide, not where they came from
    assert TolerancePolicy(source="elsewhere").digest == TolerancePolicy().digest != policy.digest


@pytest.mark.parametrize(
    "recorded",
    [
        None,
        {},
        {"caps": []},
        {"caps": {"float32": {"atol": 1e-4, "rtol": 0}}},
        {"caps": {**{k: {"atol": "x"} for k in BUILTIN_CAPS}}},
    ],
)
def test_a_malformed_recorded_policy_is_refused(recorded: Any) -> None:
    with pytest.raises(ConfigError):
        TolerancePolicy.from_dict(recorded)


def test_looser_than_names_every_figure_that_admits_more_than_the_gate() -> None:
    gate = TolerancePolicy()
    assert (
        gate.looser_than(gate) == []
        and TolerancePolicy({"float32": (1e-6, 0.0), "float16": (1e-4, 0.0)}).looser_than(gate) == []
    )
    loose = TolerancePolicy({"float32": (1e9, 1e9), "float16": (1e-3, 1e-3)})
    assert loose.looser_than(gate) == ["float32 atol 1e+09 > 0.0001", "float32 rtol 1e+09 > 1e-05"]
    per_output = TolerancePolicy(outputs={"confidence": (1e-3, 0.0)})
    assert per_output.looser_than(gate) == [
        "outputs.confidence (float32) atol 0.001 > 0.0001",
    ]
    tight_gate = TolerancePolicy(outputs={"confidence": (1e-6, 0.0)})
    assert "outputs.confidence (float32) atol 0.0001 > 1e-06" in gate.looser_than(tight_gate)
    from conv2d_bundle.parity.tolerance import Int8Policy

    lax_int8 = TolerancePolicy(int8=Int8Policy(min_code_agreement=0.5, min_psnr_db=10.0))
    assert lax_int8.looser_than(gate) == ["int8.min_code_agreement 0.5 < 0.9", "int8.min_psnr_db 10 < 30"]
