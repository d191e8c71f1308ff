"""Evidence bound to a bundle's bytes, and the ``--require-evidence`` gate, against an in-memory registry.

Each test plays an attack of issue 23 first: a pass verified on other content signed onto a bundle, evidence
made under caps of 1e9, without strict mode, without exp_hash or content digest, in an older report schema,
unsigned, or carrying the trusted key's keyid over a signature that does not verify. tests/oci/test_evidence.py
runs the same code against a real registry.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.bundle.digest import canonical_json
from conv2d_bundle.bundle.signing import keygen, public_key_id, sign_bytes, verify_bytes
from conv2d_bundle.errors import BundleIntegrityError
from conv2d_bundle.oci.client import OCI_MANIFEST
from conv2d_bundle.oci.reference import parse_ref
from conv2d_bundle.parity.tolerance import TolerancePolicy
from conv2d_bundle.verify.evidence import (
    CONTENT_SUBJECT,
    DSSE_MEDIA_TYPE,
    EMPTY,
    EVIDENCE_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    Evidence,
    EvidenceGate,
    _add_to_referrers_index,
    accepted,
    attach,
    bundle_identity,
    check_required,
    list_evidence,
    pae,
    policy_summary,
    referrers_tag,
    statement,
)
from tests.fake_registry import FakeRegistry, sha256

EXP = "7bda82d7df9d"
REF = parse_ref("oci://127.0.0.1:5000/evidence/dogs:v1")
LENIENT = EvidenceGate(allow_unsigned=True)  # every requirement but a signature: for the tests of the others
DROP = object()


def report(content_digest: str, /, target: Any = "onnx", **changes: Any) -> dict[str, Any]:
    """A schema-3 report as the plugin writes it (passed, complete, built-in policy); ``DROP`` removes a key."""
    policy = changes.pop("policy", TolerancePolicy())
    out: dict[str, Any] = {
        "schema_version": 3,
        "target": target,
        "exp_hash": EXP,
        "content_digest": content_digest,
        "verdict": "passed",
        "passed": True,
        "complete": True,
        "reasons": [],
        "errors": [],
        "warnings": [],
        "checks_run": [f"test_{target}.py::test_parity[confidence]"],
        "skipped": [],
        "counts": {},
        "strict_targets": False,
        "check_profile": "default",
        "tolerance_policy": policy.as_dict(),
        "tolerance_policy_digest": policy.digest,
        "finished_at": "2026-01-01T00:00:00Z",
        "environment": {"host": "builder", "system": "Linux", "machine": "x86_64"},
    }
    out.update(changes)
    return {k: v for k, v in out.items() if v is not DROP}


@pytest.fixture
def reg() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def good(reg: FakeRegistry) -> tuple[dict[str, Any], str]:
    """(subject descriptor, content digest) of a bundle in the registry."""
    return reg.push_bundle({"models/model.onnx": b"good onnx", "config.yaml": b"a: 1\n"})


@pytest.fixture
def bad(reg: FakeRegistry) -> tuple[dict[str, Any], str]:
    """The same experiment (exp_hash) with other bytes: one model file changed, MANIFEST.json re-sealed."""
    return reg.push_bundle({"models/model.onnx": b"bad onnx", "config.yaml": b"a: 1\n"}, tag="bad")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    keygen(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    return tmp_path / "k.pem", tmp_path / "k.pub.pem"


def plant(
    reg: FakeRegistry,
    subject: dict[str, Any],
    rep: dict[str, Any],
    *,
    subjects: list[dict[str, Any]] | None = None,
    signatures: list[dict[str, Any]] | None = None,
    payload: bytes | None = None,
    envelope_bytes: bytes | None = None,
) -> str:
    """Evidence written past :func:`attach`'s checks, as an older client or anyone with push access can."""
    if subjects is None:
        subjects = statement(REF, subject["digest"], str(rep.get("content_digest")), rep)["subject"]
    stmt = {**statement(REF, subject["digest"], "sha256:" + "0" * 64, rep), "subject": subjects}
    body = payload if payload is not None else canonical_json(stmt).encode()
    env = (
        envelope_bytes
        or canonical_json(
            {
                "payloadType": IN_TOTO_PAYLOAD_TYPE,
                "payload": base64.b64encode(body).decode(),
                "signatures": signatures or [],
            }
        ).encode()
    )
    reg.push_blob(sha256(env), len(env), env)
    reg.push_blob(sha256(EMPTY), len(EMPTY), EMPTY)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": EVIDENCE_TYPE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(EMPTY), "size": 2},
            "layers": [{"mediaType": DSSE_MEDIA_TYPE, "digest": sha256(env), "size": len(env)}],
            "subject": subject,
            "annotations": {"org.conv2d-bundle.target": str(rep.get("target"))},
        }
    ).encode()
    digest = sha256(manifest)
    reg.put_manifest(digest, manifest)
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": len(manifest),
        "artifactType": EVIDENCE_TYPE,
    }
    _add_to_referrers_index(reg, subject["digest"], descriptor)  # type: ignore[arg-type]
    return digest


def listed(reg: FakeRegistry, subject: dict[str, Any], trusted_key: Path | None = None) -> list[Evidence]:
    return list_evidence(reg, subject["digest"], None, trusted_key)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- identity, attach


def test_the_identity_is_read_from_the_bundle_manifest_layer(reg: FakeRegistry, good: tuple) -> None:
    subject, content = good
    identity = bundle_identity(reg, subject["digest"])  # type: ignore[arg-type]
    assert (identity.oci_digest, identity.content_digest, identity.exp_hash) == (
        subject["digest"],
        content,
        EXP,
    )


def test_attach_refuses_a_pass_verified_on_other_content(reg: FakeRegistry, good: tuple, bad: tuple) -> None:
    """Issue 23 item 2: the cached good bundle was verified, the report would be attached to bad's manifest."""
    before = dict(reg.blobs)
    with pytest.raises(BundleIntegrityError) as exc:
        attach(reg, REF, bad[0], report(good[1]))  # type: ignore[arg-type]
    assert str(exc.value) == (
        f"refusing to attach the onnx report to {bad[0]['digest']} (content {bad[1][:19]}): stale report: it is "
        f"about content {good[1][:19]}, the bundle is now {bad[1][:19]}"
    )
    assert reg.blobs == before and referrers_tag(bad[0]["digest"]) not in reg.manifests  # nothing written


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"schema_version": 2}, "report schema 2 is not the current 3: verify again"),
        ({"content_digest": DROP}, "the report records no content digest"),
        ({"exp_hash": DROP}, "the report records no exp_hash"),
        ({"exp_hash": "0123456789ab"}, "foreign report: it is for bundle '0123456789ab', not 7bda82d7df9d"),
        ({"target": DROP}, "the report names no target"),
    ],
    ids=["old-schema", "no-content-digest", "no-exp-hash", "foreign", "no-target"],
)
def test_attach_refuses_a_report_not_bound_to_the_bundle(
    reg: FakeRegistry, good: tuple, changes: dict[str, Any], why: str
) -> None:
    with pytest.raises(BundleIntegrityError, match="refusing to attach") as exc:
        attach(reg, REF, good[0], report(good[1], **changes))  # type: ignore[arg-type]
    assert str(exc.value).endswith(why)


def test_the_signed_statement_names_the_oci_digest_and_the_content_digest(
    reg: FakeRegistry, good: tuple, keys: tuple[Path, Path]
) -> None:
    subject, content = good
    digest = attach(reg, REF, subject, report(content), key=keys[0])  # type: ignore[arg-type]
    layer = json.loads(reg.manifests[digest])["layers"][0]
    env = json.loads(reg.blobs[layer["digest"]])
    payload = base64.b64decode(env["payload"])
    assert json.loads(payload)["subject"] == [
        {
            "name": "127.0.0.1:5000/evidence/dogs",
            "digest": {"sha256": subject["digest"].removeprefix("sha256:")},
        },
        {"name": CONTENT_SUBJECT, "digest": {"sha256": content.removeprefix("sha256:")}},
    ]
    assert verify_bytes(
        keys[1], base64.b64decode(env["signatures"][0]["sig"]), pae(env["payloadType"], payload)
    )
    (e,) = listed(reg, subject, keys[1])
    assert e.trusted is True and e.problem is None and e.verdict.status == "passed"
    assert check_required([e], ["onnx"], EvidenceGate(require_trusted=True)) == {}


# ------------------------------------------------------------------------------------------ reading


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"content_digest": "other"}, "stale report: it is about content other, the bundle is now "),
        ({"schema_version": 2}, "report schema 2 is not the current 3: verify again"),
        ({"content_digest": DROP}, "the report records no content digest"),
        ({"exp_hash": DROP}, "the report records no exp_hash"),
        ({"exp_hash": "0123456789ab"}, "foreign report: it is for bundle '0123456789ab', not 7bda82d7df9d"),
    ],
    ids=["other-content", "old-schema", "no-content-digest", "no-exp-hash", "foreign"],
)
def test_evidence_not_bound_to_the_bundle_is_listed_as_not_verified(
    reg: FakeRegistry, good: tuple, bad: tuple, changes: dict[str, Any], why: str
) -> None:
    """Planted past attach's checks (an older client, anyone with push access): shown, never counted."""
    if changes.get("content_digest") == "other":
        changes = {"content_digest": good[1]}  # the good bundle's pass, on bad's manifest
        why = why.replace("other", good[1][:19]) + bad[1][:19]
    plant(reg, bad[0], report(bad[1], **changes))
    (e,) = listed(reg, bad[0])
    assert e.problem == why or e.problem.startswith(why)  # type: ignore[union-attr]
    assert e.verdict.status == "unverified" and e.as_json()["verdict"] == "unverified"
    assert e.as_json()["not_verified"] == e.problem
    assert check_required([e], ["onnx"], LENIENT) == {"onnx": f"builder: not verified: {e.problem}"}
    assert check_required([e], ["onnx"], EvidenceGate()) == {"onnx": f"builder: not verified: {e.problem}"}


def test_the_verified_exp_hash_wins_over_the_manifest_annotation(reg: FakeRegistry, good: tuple) -> None:
    """``verify`` passes the exp_hash the pull verified against the bundle's metadata, not the annotation."""
    attach(reg, REF, good[0], report(good[1]))  # type: ignore[arg-type]
    (e,) = list_evidence(reg, good[0]["digest"], "0123456789ab")  # type: ignore[arg-type]
    assert e.problem == "foreign report: it is for bundle '7bda82d7df9d', not 0123456789ab"


def test_a_statement_that_does_not_name_the_content_digest_is_not_verified(
    reg: FakeRegistry, good: tuple
) -> None:
    """The report names the content, the signed statement only the OCI manifest (the format before issue 23)."""
    subject, content = good
    oci_only = [{"name": "r/evidence", "digest": {"sha256": subject["digest"].removeprefix("sha256:")}}]
    plant(reg, subject, report(content), subjects=oci_only)
    (e,) = listed(reg, subject)
    assert e.problem == "the signed statement does not name the bundle's content digest"
    assert check_required([e], ["onnx"], LENIENT) != {}


def test_a_statement_about_another_oci_manifest_is_ignored(
    reg: FakeRegistry, good: tuple, bad: tuple
) -> None:
    subjects = statement(REF, bad[0]["digest"], good[1], {})["subject"]  # about bad, replayed on good
    plant(reg, good[0], report(good[1]), subjects=subjects)
    assert listed(reg, good[0]) == []


@pytest.mark.parametrize(
    "envelope_bytes",
    [b"not json", b"[]", json.dumps({"payloadType": "text/plain", "payload": ""}).encode(),
     json.dumps({"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": "%%%"}).encode()],
    ids=["not-json", "not-object", "other-payload-type", "payload-not-base64"],
)  # fmt: skip
def test_a_malformed_envelope_is_ignored_not_a_crash(
    reg: FakeRegistry, good: tuple, envelope_bytes: bytes
) -> None:
    plant(reg, good[0], report(good[1]), envelope_bytes=envelope_bytes)
    assert listed(reg, good[0]) == []


# --------------------------------------------------------------------------------------------- gate


def test_evidence_made_under_caps_of_1e9_is_refused(reg: FakeRegistry, good: tuple) -> None:
    loose = TolerancePolicy(caps={"float32": (1e9, 1e9), "float16": (1e9, 1e9)}, source="loose.yaml")
    attach(reg, REF, good[0], report(good[1], policy=loose))  # type: ignore[arg-type]
    (e,) = listed(reg, good[0])
    assert e.verdict.passed  # the report itself says passed...
    assert check_required([e], ["onnx"], LENIENT) == {  # ...under a policy the gate does not accept
        "onnx": "builder: made under a looser tolerance policy than the gate's built-in policy (float16 atol "
        "1e+09 > 0.001, float16 rtol 1e+09 > 0.001, float32 atol 1e+09 > 0.0001, float32 rtol 1e+09 > 1e-05)"
    }
    assert e.as_json()["tolerance_policy"]["digest"] == loose.digest
    assert e.as_json()["tolerance_policy"]["caps"]["float32"] == {"atol": 1e9, "rtol": 1e9}
    # a gate that names a policy at least as loose accepts it
    assert check_required([e], ["onnx"], EvidenceGate(policy=loose, allow_unsigned=True)) == {}


@pytest.mark.parametrize(
    ("policy", "why"),
    [
        (TolerancePolicy(outputs={"confidence": (1.0, 0.0)}), "outputs.confidence (float32) atol 1 > 0.0001"),
        (TolerancePolicy(caps={"float32": (1e-4, 1e-5), "float16": (1e-3, 1e-3)},
                         int8=TolerancePolicy().int8.__class__(min_code_agreement=0.0)),
         "int8.min_code_agreement 0 < 0.9"),
    ],
    ids=["per-output-cap", "int8-floor"],
)  # fmt: skip
def test_a_looser_per_output_cap_or_int8_floor_is_refused(
    reg: FakeRegistry, good: tuple, policy: TolerancePolicy, why: str
) -> None:
    attach(reg, REF, good[0], report(good[1], policy=policy))  # type: ignore[arg-type]
    assert why in check_required(listed(reg, good[0]), ["onnx"], LENIENT)["onnx"]


def test_a_long_list_of_looser_figures_is_cut_after_four(reg: FakeRegistry, good: tuple) -> None:
    loose = TolerancePolicy(
        caps={"float32": (1.0, 1.0), "float16": (1.0, 1.0)}, outputs={"confidence": (1.0, 1.0)}
    )
    attach(reg, REF, good[0], report(good[1], policy=loose))  # type: ignore[arg-type]
    (e,) = listed(reg, good[0])
    assert check_required([e], ["onnx"], LENIENT)["onnx"].endswith("float32 rtol 1 > 1e-05, ... (8 in all))")
    assert e.as_json()["tolerance_policy"]["against_builtin"] == e.policy_problem(TolerancePolicy()).replace(
        "the gate's", "the"
    )


def test_a_gate_stricter_than_the_builtin_policy_refuses_builtin_evidence(
    reg: FakeRegistry, good: tuple
) -> None:
    attach(reg, REF, good[0], report(good[1]))  # type: ignore[arg-type]
    strict = TolerancePolicy(
        caps={"float32": (1e-6, 1e-6), "float16": (1e-3, 1e-3)}, source="--tolerance-policy p"
    )
    missing = check_required(listed(reg, good[0]), ["onnx"], EvidenceGate(policy=strict, allow_unsigned=True))
    assert (
        "looser tolerance policy than the gate's --tolerance-policy p (float32 atol 0.0001 > 1e-06"
        in missing["onnx"]
    )


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"tolerance_policy": DROP, "tolerance_policy_digest": DROP},
         "no usable tolerance policy recorded (recorded tolerance policy: expected a mapping with caps)"),
        ({"tolerance_policy": {"caps": {"float32": {"atol": 1e9}}}},
         "no usable tolerance policy recorded (recorded tolerance policy: caps lack ['float16'])"),
        ({"tolerance_policy_digest": TolerancePolicy(caps={"float32": (1.0, 1.0), "float16": (1.0, 1.0)}).digest},
         "its tolerance_policy_digest does not match the recorded policy"),
    ],
    ids=["none", "malformed", "digest-mismatch"],
)  # fmt: skip
def test_evidence_without_a_usable_recorded_policy_is_refused(
    reg: FakeRegistry, good: tuple, changes: dict[str, Any], why: str
) -> None:
    attach(reg, REF, good[0], report(good[1], **changes))  # type: ignore[arg-type]
    assert check_required(listed(reg, good[0]), ["onnx"], LENIENT) == {"onnx": f"builder: {why}"}


def test_a_recorded_policy_that_cannot_be_digested_is_refused_not_a_crash() -> None:
    """JSON can carry NaN where canonical JSON cannot: such a report is refused, the gate does not raise."""
    rep = report("sha256:" + "0" * 64)
    rep["tolerance_policy"] = {**rep["tolerance_policy"], "integers": float("nan")}
    e = Evidence("sha256:" + "1" * 64, "onnx", rep)
    assert e.shortfalls(LENIENT) == ["its tolerance_policy_digest does not match the recorded policy"]
    assert e.as_json()["tolerance_policy"]["digest_matches"] is False


def test_require_strict_refuses_evidence_made_without_strict_targets(reg: FakeRegistry, good: tuple) -> None:
    attach(reg, REF, good[0], report(good[1]))  # type: ignore[arg-type]
    attach(reg, REF, good[0], report(good[1], target="ios", strict_targets=True))  # type: ignore[arg-type]
    evidence = listed(reg, good[0])
    gate = EvidenceGate(require_strict=True, allow_unsigned=True)
    assert check_required(evidence, ["onnx", "ios"], gate) == {
        "onnx": "builder: made without --strict-targets (the gate asks --require-strict)"
    }
    assert check_required(evidence, ["onnx"], LENIENT) == {}  # only when asked
    assert [e.as_json()["strict_targets"] for e in evidence] == [True, False]


def test_unsigned_evidence_is_refused_unless_allow_unsigned(reg: FakeRegistry, good: tuple) -> None:
    attach(reg, REF, good[0], report(good[1]))  # type: ignore[arg-type]
    evidence = listed(reg, good[0])
    assert check_required(evidence, ["onnx"], EvidenceGate()) == {
        "onnx": "builder: unsigned (give --trusted-key, or --allow-unsigned to accept unsigned evidence)"
    }
    assert check_required(evidence, ["onnx"], LENIENT) == {}
    assert (
        accepted(evidence, "onnx", LENIENT) == evidence and accepted(evidence, "onnx", EvidenceGate()) == []
    )


def test_signed_evidence_without_a_trusted_key_is_not_checked(
    reg: FakeRegistry, good: tuple, keys: tuple[Path, Path]
) -> None:
    attach(reg, REF, good[0], report(good[1]), key=keys[0])  # type: ignore[arg-type]
    (e,) = listed(reg, good[0])
    assert e.trusted is None and e.keyids == [public_key_id(keys[1])]
    assert check_required([e], ["onnx"], EvidenceGate()) == {
        "onnx": f"builder: signed by {public_key_id(keys[1])[:19]} but not checked (give --trusted-key, or "
        "--allow-unsigned)"
    }


def test_every_reason_of_a_report_and_every_host_is_named(reg: FakeRegistry, good: tuple) -> None:
    attach(reg, REF, good[0], report(good[1], verdict="failed", passed=False, errors=["t: boom"]))  # type: ignore[arg-type]
    env = {"host": "mac", "system": "Darwin", "machine": "arm64"}
    attach(reg, REF, good[0], report(good[1], environment=env, skipped=[{"id": "t", "reason": "r"}]))  # type: ignore[arg-type]
    assert check_required(listed(reg, good[0]), ["onnx", "hailo"], EvidenceGate()) == {
        "onnx": "builder: unsigned (give --trusted-key, or --allow-unsigned to accept unsigned evidence); "
        "failed (1 error) | mac: unsigned (give --trusted-key, or --allow-unsigned to accept unsigned "
        "evidence); 1 checks skipped on mac (not verified there)",
        "hailo": "no evidence attached",
    }


# ------------------------------------------------------------------------- the keyid is not a signature


def test_the_trusted_keyid_over_a_signature_that_does_not_verify_is_not_trusted(
    reg: FakeRegistry, good: tuple, keys: tuple[Path, Path]
) -> None:
    """The planted bug of issue 23: a signature was trusted when its keyid matched, without verifying it."""
    keyid = public_key_id(keys[1])
    other_bytes, _ = sign_bytes(keys[0], b"some other statement")  # the right key, over other bytes
    plant(
        reg,
        good[0],
        report(good[1]),
        signatures=[{"keyid": keyid, "sig": base64.b64encode(other_bytes).decode()}],
    )
    plant(reg, good[0], report(good[1], target="ios"), signatures=[{"keyid": keyid, "sig": "bm90IGEgc2ln"}])
    evidence = listed(reg, good[0], keys[1])
    assert [(e.target, e.keyids, e.trusted) for e in evidence] == [
        ("ios", [keyid], False),
        ("onnx", [keyid], False),
    ]
    assert check_required(evidence, ["onnx", "ios"], EvidenceGate(require_trusted=True)) == {
        "onnx": "builder: not signed by the trusted key",
        "ios": "builder: not signed by the trusted key",
    }


def test_a_signed_payload_changed_afterwards_is_not_trusted(
    reg: FakeRegistry, good: tuple, keys: tuple[Path, Path]
) -> None:
    """A signature lifted from honest evidence onto a statement that claims a looser policy."""
    subject, content = good
    honest = canonical_json(statement(REF, subject["digest"], content, report(content))).encode()
    sig, keyid = sign_bytes(keys[0], pae(IN_TOTO_PAYLOAD_TYPE, honest))
    loose = TolerancePolicy(caps={"float32": (1e9, 1e9), "float16": (1e9, 1e9)})
    forged = canonical_json(
        statement(REF, subject["digest"], content, report(content, policy=loose))
    ).encode()
    plant(reg, subject, report(content), payload=forged,
          signatures=[{"keyid": keyid, "sig": base64.b64encode(sig).decode()}])  # fmt: skip
    (e,) = listed(reg, subject, keys[1])
    assert e.trusted is False
    assert check_required([e], ["onnx"], EvidenceGate(require_trusted=True))["onnx"].startswith(
        "builder: not signed by the trusted key"
    )


def test_a_signature_that_is_not_base64_is_not_trusted(
    reg: FakeRegistry, good: tuple, keys: tuple[Path, Path]
) -> None:
    plant(reg, good[0], report(good[1]), signatures=[{"keyid": public_key_id(keys[1]), "sig": "%%%"}, "junk"])  # type: ignore[list-item]
    (e,) = listed(reg, good[0], keys[1])
    assert e.trusted is False


# ------------------------------------------------------------------------------------------- show


def test_policy_summary_names_caps_outputs_and_int8_floors() -> None:
    recorded = TolerancePolicy(outputs={"confidence": (1e-5, 0.0)}).as_dict()
    assert policy_summary(recorded) == (
        "float16 atol 0.001 rtol 0.001; float32 atol 0.0001 rtol 1e-05; outputs.confidence atol 1e-05 rtol 0.0; "
        "int8 codes >= 0.9, argmax >= 0.95, PSNR >= 30.0 dB"
    )
    assert policy_summary(None) == "none recorded"
