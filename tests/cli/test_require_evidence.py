"""``verify oci://... --require-evidence`` and ``show oci://...`` through click, against an in-memory registry:
the gate's options, its one line per target, and what ``show`` prints about each piece of evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conv2d_bundle.bundle.signing import keygen
from conv2d_bundle.cli import main
from conv2d_bundle.cli.registry import RegistryAccess
from conv2d_bundle.oci.reference import parse_ref
from conv2d_bundle.parity.tolerance import TolerancePolicy
from conv2d_bundle.verify.evidence import attach
from tests.fake_registry import FakeRegistry
from tests.unit.test_evidence_gate import plant, report

REF = "oci://127.0.0.1:5000/evidence/dogs:v1"
LOOSE = TolerancePolicy(caps={"float32": (1e9, 1e9), "float16": (1e9, 1e9)})


@pytest.fixture
def reg(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    fake = FakeRegistry()
    monkeypatch.setattr(RegistryAccess, "client", lambda self, ref: fake)
    return fake


@pytest.fixture
def bundle(reg: FakeRegistry) -> tuple[dict[str, Any], str]:
    return reg.push_bundle({"models/model.onnx": b"onnx", "config.yaml": b"a: 1\n"})


def pack(*args: str) -> Result:
    return CliRunner().invoke(main, ["pack", *args])


def by_digest(subject: dict[str, Any]) -> str:
    return f"{REF}@{subject['digest']}"  # the tag resolved once: the rest is about exactly this manifest


def put(reg: FakeRegistry, subject: dict[str, Any], rep: dict[str, Any], key: Path | None = None) -> str:
    return attach(reg, parse_ref(REF), subject, rep, key)  # type: ignore[arg-type]


def test_unsigned_evidence_is_refused_without_allow_unsigned(reg: FakeRegistry, bundle: tuple) -> None:
    subject, content = bundle
    put(reg, subject, report(content))
    refused = pack("verify", REF, "--require-evidence", "onnx")
    assert refused.exit_code == 1, refused.output
    assert refused.stdout.splitlines() == [
        f"{by_digest(subject)} --require-evidence onnx: MISSING (builder: unsigned (give --trusted-key, or "
        "--allow-unsigned to accept unsigned evidence))"
    ]
    assert (
        f"error: {subject['digest']} (content {content}): no evidence that counts for onnx" in refused.stderr
    )
    allowed = pack("verify", REF, "--require-evidence", "onnx", "--allow-unsigned")
    assert allowed.exit_code == 0, allowed.output
    (evidence,) = [line for line in allowed.stdout.splitlines()]
    assert evidence.startswith(
        f"{by_digest(subject)} --require-evidence onnx: ok, on evidence no key vouches for (--allow-unsigned): sha256:"
    )
    assert evidence.endswith(" from builder (unsigned)")


def test_one_line_per_target_with_its_reason(reg: FakeRegistry, bundle: tuple) -> None:
    subject, content = bundle
    put(reg, subject, report(content))
    put(reg, subject, report(content, target="ios", policy=LOOSE))
    plant(
        reg, subject, report(content, target="hailo", schema_version=2)
    )  # attach refuses it; an older client did not
    run = pack("verify", REF, "--require-evidence", "onnx,ios,hailo,executorch", "--allow-unsigned")
    assert run.exit_code == 1
    lines = [line.split(" --require-evidence ", 1)[1] for line in run.stdout.splitlines()]
    assert lines[0].startswith("onnx: ok")
    assert lines[1].startswith(
        "ios: MISSING (builder: made under a looser tolerance policy than the gate's built-in"
    )
    assert lines[2] == (
        "hailo: MISSING (builder: not verified: report schema 2 is not the current 3: verify again)"
    )
    assert lines[3] == "executorch: MISSING (no evidence attached)"
    assert "no evidence that counts for executorch, hailo, ios" in run.stderr


def test_the_gate_policy_comes_from_tolerance_policy(
    reg: FakeRegistry, bundle: tuple, tmp_path: Path
) -> None:
    subject, content = bundle
    put(reg, subject, report(content))  # made under the built-in policy
    (tmp_path / "tight.yaml").write_text("float32: {atol: 1.0e-6, rtol: 1.0e-6}\n")
    (tmp_path / "wide.yaml").write_text("float32: {atol: 1.0e-3, rtol: 1.0e-3}\n")
    tight = pack("verify", REF, "--require-evidence", "onnx", "--allow-unsigned", "--tolerance-policy", str(tmp_path / "tight.yaml"))  # fmt: skip
    assert tight.exit_code == 1
    assert (
        f"than the gate's --tolerance-policy {tmp_path / 'tight.yaml'} (float32 atol 0.0001 > 1e-06"
        in tight.stdout
    )
    wide = pack("verify", REF, "--require-evidence", "onnx", "--allow-unsigned", "--tolerance-policy", str(tmp_path / "wide.yaml"))  # fmt: skip
    assert wide.exit_code == 0, wide.output
    bad = pack("verify", REF, "--require-evidence", "onnx", "--allow-unsigned", "--tolerance-policy", str(tmp_path / "none.yaml"))  # fmt: skip
    assert bad.exit_code == 2  # a policy that cannot be read is bad input, not a refusal


def test_require_strict(reg: FakeRegistry, bundle: tuple) -> None:
    subject, content = bundle
    put(reg, subject, report(content))
    run = pack("verify", REF, "--require-evidence", "onnx", "--allow-unsigned", "--require-strict")
    assert run.exit_code == 1
    assert (
        "onnx: MISSING (builder: made without --strict-targets (the gate asks --require-strict))"
        in run.stdout
    )
    put(reg, subject, report(content, strict_targets=True, environment={"host": "release"}))
    again = pack("verify", REF, "--require-evidence", "onnx", "--allow-unsigned", "--require-strict")
    assert again.exit_code == 0 and " from release (unsigned)" in again.stdout


def test_a_trusted_key_counts_only_what_it_signed(reg: FakeRegistry, bundle: tuple, tmp_path: Path) -> None:
    subject, content = bundle
    keygen(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    put(reg, subject, report(content))
    put(reg, subject, report(content, target="ios"), key=tmp_path / "k.pem")
    run = pack("verify", REF, "--require-evidence", "onnx,ios", "--trusted-key", str(tmp_path / "k.pub.pem"))
    assert run.exit_code == 1
    assert run.stdout.splitlines()[0].endswith(
        "--require-evidence onnx: MISSING (builder: not signed by the trusted key)"
    )
    assert run.stdout.splitlines()[1].endswith("--require-evidence ios: ok")
    assert "signed by the trusted key for onnx" in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--require-strict"], "--require-strict and --allow-unsigned go with --require-evidence"),
        (["--allow-unsigned"], "--require-strict and --allow-unsigned go with --require-evidence"),
        (["--require-evidence", "onnx", "--allow-unsigned", "--trusted-key", "k.pub.pem"],
         "--allow-unsigned contradicts --trusted-key: a trusted key asks for signed evidence"),
    ],
    ids=["strict-alone", "unsigned-alone", "unsigned-and-key"],
)  # fmt: skip
def test_gate_options_that_do_not_go_together_are_usage_errors(
    reg: FakeRegistry, bundle: tuple, args: list[str], message: str
) -> None:
    run = pack("verify", REF, *args)
    assert run.exit_code == 2 and message in run.stderr


def test_show_prints_policy_strict_profile_and_content(reg: FakeRegistry, bundle: tuple) -> None:
    subject, content = bundle
    put(reg, subject, report(content, strict_targets=True, check_profile="thorough"))
    put(reg, subject, report(content, target="ios", policy=LOOSE))
    plant(reg, subject, report("sha256:" + "ab" * 32, target="hailo"))  # another content's pass, past attach
    builtin = TolerancePolicy().digest
    put(reg, subject, report(content, target="executorch", policy=LOOSE, tolerance_policy_digest=builtin))
    shown = pack("show", REF, "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["content_digest"] == content and data["digest"] == subject["digest"]
    onnx, ios, hailo, executorch = (data["evidence"][t][0] for t in ("onnx", "ios", "hailo", "executorch"))
    assert (onnx["strict_targets"], onnx["check_profile"], onnx["content_digest"]) == (
        True,
        "thorough",
        content,
    )
    assert (
        onnx["tolerance_policy"]["digest"] == builtin and onnx["tolerance_policy"]["digest_matches"] is True
    )
    assert ios["tolerance_policy"]["caps"]["float32"] == {"atol": 1e9, "rtol": 1e9}
    assert ios["tolerance_policy"]["against_builtin"].startswith(
        "made under a looser tolerance policy than the "
    )
    assert onnx["tolerance_policy"]["against_builtin"] is None
    assert hailo["verdict"] == "unverified" and hailo["not_verified"].startswith("stale report")
    assert (
        executorch["tolerance_policy"]["digest_matches"] is False
    )  # caps of 1e9 under the built-in's digest
    table = pack("show", REF)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == f"{by_digest(subject)}  {subject['digest']}  (bundle 7bda82d7df9d, content {content})"
    header = next(line for line in lines if line.startswith("target"))
    assert header.split() == [
        "target",
        "result",
        "host",
        "finished",
        "signed",
        "strict",
        "profile",
        "policy",
        "content",
    ]
    row = {line.split()[0]: line for line in lines[lines.index(header) + 1 :] if not line.startswith("  ")}
    assert "not verified: stale report" in row["hailo"] and "sha256:abababababab" in row["hailo"]
    assert " yes " in row["onnx"] and " thorough " in row["onnx"] and row["onnx"].endswith(" this bundle")
    assert f"{LOOSE.digest[:19]} (recorded digest {builtin[:19]} does not match)" in row["executorch"]
    assert (
        f"  policy {builtin}: float16 atol 0.001 rtol 0.001; float32 atol 0.0001 rtol 1e-05; " in table.stdout
    )
    assert f"  policy {LOOSE.digest}: float16 atol 1000000000.0 rtol 1000000000.0" in table.stdout
    assert (
        "PSNR >= 30.0 dB -- made under a looser tolerance policy than the built-in policy (" in table.stdout
    )
