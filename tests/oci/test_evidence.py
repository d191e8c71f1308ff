"""Evidence referrers against a real registry (distribution 2.8: no referrers API, so the tag schema).

Reports here are made up (fast) but bound to the example bundle's content digest, as the plugin writes them;
tests/oci/test_round_trip.py attaches real ones from ``verify --attest``. tests/unit/test_evidence_gate.py
plays every gate rule against an in-memory registry; this file checks the same code on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.bundle.signing import keygen
from conv2d_bundle.bundle.store import Bundle
from conv2d_bundle.errors import BundleIntegrityError
from conv2d_bundle.oci.artifact import push_bundle
from conv2d_bundle.oci.client import OCI_MANIFEST, RegistryClient
from conv2d_bundle.oci.reference import OciRef, parse_ref
from conv2d_bundle.parity.tolerance import TolerancePolicy
from conv2d_bundle.verify.evidence import (
    CONTENT_SUBJECT,
    EvidenceGate,
    attach,
    check_required,
    list_evidence,
    pae,
    referrers_tag,
    statement,
)
from tests.conftest import conv2d, reseal
from tests.oci.conftest import Registry
from tests.unit.test_evidence_gate import plant
from tests.unit.test_evidence_gate import report as bound_report

LENIENT = EvidenceGate(allow_unsigned=True)  # every requirement but a signature


@dataclass(frozen=True)
class Pushed:
    ref: OciRef  # with the manifest digest
    subject: dict[str, Any]  # the bundle manifest's descriptor
    content_digest: str
    exp_hash: str

    def report(
        self, target: str, *, verdict: str = "passed", skipped: int = 0, host: str = "builder", at: str = "00:00:00",
        **changes: Any,
    ) -> dict[str, Any]:  # fmt: skip
        return bound_report(
            self.content_digest,
            target,
            exp_hash=self.exp_hash,
            verdict=verdict,
            passed=verdict == "passed",
            complete=verdict != "incomplete",
            reasons=[] if verdict != "incomplete" else ["interrupted"],
            errors=["test_x: boom"] if verdict == "failed" else [],
            skipped=[{"id": f"test_parity[{i}]", "reason": "needs macOS"} for i in range(skipped)],
            finished_at=f"2026-01-01T{at}Z",
            environment={"host": host, "system": "Linux", "machine": "x86_64"},
            **changes,
        )


def push(bundle_dir: Path, registry: Registry, name: str, tag: str = "v1") -> Pushed:
    ref = parse_ref(registry.ref(f"evidence/t{hashlib.sha256(name.encode()).hexdigest()[:12]}:{tag}"))
    with RegistryClient(ref) as client:
        result = push_bundle(client, bundle_dir, ref)
        size = len(client.get_manifest(result.digest)[0])  # type: ignore[index]
    bundle = Bundle(bundle_dir)
    subject = {"mediaType": OCI_MANIFEST, "digest": result.digest, "size": size}
    return Pushed(result.ref, subject, bundle.content_digest, bundle.exp_hash)


@pytest.fixture
def pushed(example_bundle: Path, registry: Registry, request: pytest.FixtureRequest) -> Pushed:
    """The example bundle in a repository of this test's own."""
    return push(example_bundle, registry, request.node.name)


def test_required_evidence_counts_only_passed_complete_reports_that_skipped_nothing(
    pushed: Pushed, registry: Registry
) -> None:
    ref, subject = pushed.ref, pushed.subject
    with RegistryClient(ref) as client:
        assert check_required(list_evidence(client, subject["digest"]), ["onnx"], LENIENT) == {
            "onnx": "no evidence attached"
        }
        attach(client, ref, subject, pushed.report("onnx"))
        attach(
            client, ref, subject, pushed.report("ios", skipped=6, host="linux-ci")
        )  # parity skipped off macOS
        attach(client, ref, subject, pushed.report("hailo", verdict="failed"))
        attach(client, ref, subject, pushed.report("executorch", verdict="incomplete"))
        evidence = list_evidence(client, subject["digest"], pushed.exp_hash)
    assert sorted(e.target for e in evidence) == ["executorch", "hailo", "ios", "onnx"]
    missing = check_required(evidence, ["onnx", "ios", "hailo", "executorch"], LENIENT)
    assert "onnx" not in missing
    assert missing["ios"] == "linux-ci: 6 checks skipped on linux-ci (not verified there)"
    assert "failed" in missing["hailo"] and "incomplete" in missing["executorch"]
    # distribution 2.8 has no referrers API: the index lives under the referrers tag schema's tag
    assert referrers_tag(subject["digest"]) in registry.tags(ref.repository)


def test_a_later_report_from_a_capable_host_makes_a_target_count(pushed: Pushed) -> None:
    ref, subject = pushed.ref, pushed.subject
    with RegistryClient(ref) as client:
        attach(client, ref, subject, pushed.report("ios", host="mac-mini", at="10:00:00"))
        attach(client, ref, subject, pushed.report("ios", skipped=6, host="linux-ci", at="09:00:00"))
        evidence = list_evidence(client, subject["digest"])
    assert [e.environment["host"] for e in evidence] == ["linux-ci", "mac-mini"]  # every host's, oldest first
    assert check_required(evidence, ["ios"], LENIENT) == {}


def test_signed_evidence_is_trusted_only_with_the_signing_key(pushed: Pushed, tmp_path: Path) -> None:
    ref, subject = pushed.ref, pushed.subject
    keygen(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    (tmp_path / "other").mkdir()
    keygen(tmp_path / "other" / "k.pem", tmp_path / "other" / "k.pub.pem")
    trusted = EvidenceGate(require_trusted=True)
    with RegistryClient(ref) as client:
        attach(client, ref, subject, pushed.report("onnx"), key=tmp_path / "k.pem")
        attach(client, ref, subject, pushed.report("general"))  # unsigned
        right = list_evidence(client, subject["digest"], None, trusted_key=tmp_path / "k.pub.pem")
        wrong = list_evidence(client, subject["digest"], None, trusted_key=tmp_path / "other" / "k.pub.pem")
        unkeyed = list_evidence(client, subject["digest"])
    assert {e.target: e.trusted for e in right} == {"onnx": True, "general": False}
    assert check_required(right, ["onnx"], trusted) == {}
    assert check_required(right, ["general"], trusted) == {
        "general": "builder: not signed by the trusted key"
    }
    assert check_required(wrong, ["onnx"], trusted) == {"onnx": "builder: not signed by the trusted key"}
    assert check_required(unkeyed, ["general"], EvidenceGate()) == {  # no key, no --allow-unsigned
        "general": "builder: unsigned (give --trusted-key, or --allow-unsigned to accept unsigned evidence)"
    }


def test_the_envelope_is_dsse_around_an_in_toto_statement_about_the_bundle_and_its_content(
    pushed: Pushed, tmp_path: Path
) -> None:
    ref, subject = pushed.ref, pushed.subject
    keygen(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    with RegistryClient(ref) as client:
        digest = attach(client, ref, subject, pushed.report("onnx"), key=tmp_path / "k.pem")
        manifest = json.loads(client.get_manifest(digest)[0])  # type: ignore[index]
        env = json.loads(client.fetch_blob(manifest["layers"][0]["digest"]))
    assert (
        manifest["subject"] == subject
        and manifest["artifactType"] == "application/vnd.conv2d-bundle.evidence.v1"
    )
    assert manifest["layers"][0]["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert env["payloadType"] == "application/vnd.in-toto+json"
    stmt = json.loads(base64.b64decode(env["payload"]))
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert [s["digest"] for s in stmt["subject"]] == [
        {"sha256": subject["digest"].removeprefix("sha256:")},
        {"sha256": pushed.content_digest.removeprefix("sha256:")},
    ]
    assert stmt["subject"][1]["name"] == CONTENT_SUBJECT
    assert stmt["predicate"]["target"] == "onnx"
    assert stmt["predicate"]["content_digest"] == pushed.content_digest
    from conv2d_bundle.bundle.signing import verify_bytes

    signed = pae(env["payloadType"], base64.b64decode(env["payload"]))
    assert verify_bytes(tmp_path / "k.pub.pem", base64.b64decode(env["signatures"][0]["sig"]), signed)


def test_evidence_about_another_bundle_is_ignored(pushed: Pushed) -> None:
    """A referrer whose statement names another manifest (evidence replayed from elsewhere) does not count."""
    ref, subject = pushed.ref, pushed.subject
    elsewhere = "sha256:" + "1" * 64
    with RegistryClient(ref) as client:
        rep = pushed.report("onnx")
        plant(client, subject, rep, subjects=statement(ref, elsewhere, pushed.content_digest, rep)["subject"])  # type: ignore[arg-type]
        assert list_evidence(client, subject["digest"]) == []


def test_a_pass_verified_on_other_content_is_never_attached_nor_counted(
    pushed: Pushed, bundle_copy: Path, registry: Registry, request: pytest.FixtureRequest
) -> None:
    """Issue 23 item 2 on the wire: "bad" has good's EXP_HASH and other bytes; good's pass must not become bad's."""
    with (bundle_copy / "docs" / "README.md").open("a") as f:
        f.write("\nchanged after the good bundle was verified\n")
    reseal(bundle_copy)
    bad = push(bundle_copy, registry, request.node.name + "-bad", tag="bad")
    assert bad.exp_hash == pushed.exp_hash and bad.content_digest != pushed.content_digest
    good_pass = pushed.report("onnx")
    with RegistryClient(bad.ref) as client:
        with pytest.raises(BundleIntegrityError, match=r"refusing to attach the onnx report .* stale report"):
            attach(client, bad.ref, bad.subject, good_pass)
        assert list_evidence(client, bad.subject["digest"]) == []  # nothing was written
        plant(client, bad.subject, good_pass)  # type: ignore[arg-type]  # written past attach's check
        (e,) = list_evidence(client, bad.subject["digest"])
    assert e.verdict.status == "unverified" and e.problem is not None and e.problem.startswith("stale report")
    assert check_required([e], ["onnx"], LENIENT) == {"onnx": f"builder: not verified: {e.problem}"}


def test_require_evidence_and_show_as_a_user_types_them(pushed: Pushed, cli_env: dict[str, str]) -> None:
    """Evidence made under caps of 1e9 is refused by the gate, and ``show`` says which policy it was."""
    loose = TolerancePolicy(caps={"float32": (1e9, 1e9), "float16": (1e9, 1e9)})
    with RegistryClient(pushed.ref) as client:
        attach(client, pushed.ref, pushed.subject, pushed.report("onnx", tolerance_policy=loose.as_dict(),
                                                                 tolerance_policy_digest=loose.digest))  # fmt: skip
    ref = f"oci://{pushed.ref.registry}/{pushed.ref.repository}@{pushed.subject['digest']}"
    gate = conv2d("pack", "verify", ref, "--require-evidence", "onnx", "--allow-unsigned", env=cli_env)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert gate.stdout.strip().endswith(
        "--require-evidence onnx: MISSING (builder: made under a looser tolerance policy than the gate's built-in "
        "policy (float16 atol 1e+09 > 0.001, float16 rtol 1e+09 > 0.001, float32 atol 1e+09 > 0.0001, float32 rtol "
        "1e+09 > 1e-05))"
    )
    shown = conv2d("pack", "show", ref, env=cli_env)
    assert shown.returncode == 0, shown.stderr
    assert f"content {pushed.content_digest}" in shown.stdout.splitlines()[0]
    assert f"policy {loose.digest}: float16 atol 1000000000.0 rtol 1000000000.0" in shown.stdout


def test_the_pae_is_dsse_v1() -> None:
    assert pae("t", b"hello") == b"DSSEv1 1 t 5 hello"
