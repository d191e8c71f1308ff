"""What evidence writes (the referrer manifest, the referrers index, the DSSE encoding) and how it reads back:
the referrers API, malformed referrers, the order of listing, every field of ``as_json``, and the gate's
messages for several targets, signers and looser figures.

Written for survivors of the 2026-12-05 mutation run (tests/README.md); the attacks themselves are in
tests/unit/test_evidence_gate.py, whose helpers these tests use.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from conv2d_bundle.bundle.digest import canonical_json
from conv2d_bundle.bundle.manifest import BundleManifest
from conv2d_bundle.bundle.signing import keygen, public_key_id, sign_bytes
from conv2d_bundle.errors import BundleIntegrityError, RegistryError
from conv2d_bundle.oci.client import OCI_INDEX, OCI_MANIFEST
from conv2d_bundle.parity.tolerance import Int8Policy, TolerancePolicy
from conv2d_bundle.verify.evidence import (
    DSSE_MEDIA_TYPE,
    EVIDENCE_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    BundleIdentity,
    Evidence,
    EvidenceGate,
    _add_to_referrers_index,
    attach,
    check_required,
    list_evidence,
    pae,
    policy_summary,
    referrers_tag,
    report_binding_problem,
    statement,
)
from tests.fake_registry import FakeRegistry, sha256
from tests.unit.test_evidence_gate import EXP, LENIENT, REF, plant, report

BUNDLE = {"models/model.onnx": b"good onnx", "config.yaml": b"a: 1\n"}


@dataclass
class Recording(FakeRegistry):
    """The fake registry, remembering the media type of every manifest put and the Accept of every get."""

    puts: list[tuple[str, str]] = field(default_factory=list)
    gets: list[tuple[str, str]] = field(default_factory=list)

    def put_manifest(self, reference: str, body: bytes, media_type: str = OCI_MANIFEST) -> Any:
        self.puts.append((reference, media_type))
        return super().put_manifest(reference, body, media_type)

    def get_manifest(self, reference: str, accept: str = OCI_MANIFEST) -> tuple[bytes, str] | None:
        self.gets.append((reference, accept))
        return super().get_manifest(reference, accept)


@dataclass
class WithReferrersApi(FakeRegistry):
    """A registry with the referrers API (distribution 3, zot, ...): it answers a manifest PUT that has a
    subject with ``OCI-Subject`` (in httpx's headers, as the real client sees them) and lists referrers."""

    asked: list[tuple[str, str | None]] = field(default_factory=list)
    also_listed: list[Any] = field(default_factory=list)  # entries a registry might add to the answer

    def put_manifest(self, reference: str, body: bytes, media_type: str = OCI_MANIFEST) -> Any:
        super().put_manifest(reference, body, media_type)
        subject = json.loads(body).get("subject")
        return SimpleNamespace(headers=httpx.Headers({"OCI-Subject": subject["digest"]} if subject else {}))

    def referrers(self, digest: str, artifact_type: str | None = None) -> dict[str, Any] | None:
        self.asked.append((digest, artifact_type))
        found = []
        for ref, body in self.manifests.items():
            m = json.loads(body)
            if ref == sha256(body) and m.get("subject", {}).get("digest") == digest:
                if artifact_type in (None, m.get("artifactType")):
                    found.append({"digest": ref, "artifactType": m.get("artifactType")})
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*found, *self.also_listed]}


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    keygen(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    return tmp_path / "k.pem", tmp_path / "k.pub.pem"


# ----------------------------------------------------------------------------------------------- write


def test_pae_is_dsses_pre_authentication_encoding() -> None:
    assert pae("text/plain", b"hi") == b"DSSEv1 10 text/plain 2 hi"


def test_attach_writes_one_referrer_manifest_and_its_index_entry() -> None:
    reg = Recording()
    subject, content = reg.push_bundle(BUNDLE)
    rep = report(content, finished_at="2026-02-03T04:05:06Z")
    digest = attach(reg, REF, subject, rep)  # type: ignore[arg-type]
    manifest = json.loads(reg.manifests[digest])
    env_digest = manifest["layers"][0]["digest"]
    annotations = {
        "org.conv2d-bundle.target": "onnx",
        "org.conv2d-bundle.verdict": "passed",
        "org.conv2d-bundle.host": "builder",
        "org.opencontainers.image.created": "2026-02-03T04:05:06Z",
    }
    assert manifest == {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": EVIDENCE_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": DSSE_MEDIA_TYPE, "digest": env_digest, "size": len(reg.blobs[env_digest])}],
        "subject": subject,
        "annotations": annotations,
    }
    tag = referrers_tag(subject["digest"])
    assert json.loads(reg.manifests[tag]) == {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(reg.manifests[digest]),
                "artifactType": EVIDENCE_TYPE,
                "annotations": annotations,
            }
        ],
    }
    # the referrer is put by its digest, the index under its tag as an index; the index is read as one
    assert reg.puts[1:] == [(digest, OCI_MANIFEST), (tag, OCI_INDEX)]  # after the bundle's own
    assert (tag, OCI_INDEX) in reg.gets


def test_attach_names_no_host_for_a_report_without_an_environment() -> None:
    reg = FakeRegistry()
    subject, content = reg.push_bundle(BUNDLE)
    digest = attach(reg, REF, subject, report(content, environment="x"))  # type: ignore[arg-type]
    assert json.loads(reg.manifests[digest])["annotations"]["org.conv2d-bundle.host"] == "None"


@pytest.mark.parametrize("old_index", [b"[]", b'{"manifests": "x"}'], ids=["not-an-object", "no-list"])
def test_a_referrers_tag_that_is_no_index_is_started_afresh(old_index: bytes) -> None:
    reg = FakeRegistry()
    subject, content = reg.push_bundle(BUNDLE)
    reg.manifests[referrers_tag(subject["digest"])] = old_index
    digest = attach(reg, REF, subject, report(content))  # type: ignore[arg-type]
    index = json.loads(reg.manifests[referrers_tag(subject["digest"])])
    assert [d["digest"] for d in index["manifests"]] == [digest]


def test_an_index_that_never_keeps_the_entry_is_an_error_naming_the_tag() -> None:
    @dataclass
    class Forgetful(FakeRegistry):
        def put_manifest(self, reference: str, body: bytes, media_type: str = OCI_MANIFEST) -> Any:
            if reference.startswith("sha256-"):  # another writer's index always wins
                return SimpleNamespace(headers={})
            return super().put_manifest(reference, body, media_type)

    reg = Forgetful()
    subject, _ = reg.push_bundle(BUNDLE)
    tag = referrers_tag(subject["digest"])
    with pytest.raises(RegistryError) as info:
        _add_to_referrers_index(reg, subject["digest"], {"digest": "sha256:" + "0" * 64})  # type: ignore[arg-type]
    assert str(info.value) == (
        f"the referrers index {tag} kept changing under concurrent writers: evidence not listed"
    )


def test_a_registry_with_the_referrers_api_keeps_no_index_and_is_asked_for_evidence() -> None:
    reg = WithReferrersApi(also_listed=["junk", {"digest": 1, "artifactType": EVIDENCE_TYPE}])
    subject, content = reg.push_bundle(BUNDLE)
    digest = attach(reg, REF, subject, report(content))  # type: ignore[arg-type]
    assert referrers_tag(subject["digest"]) not in reg.manifests
    (e,) = list_evidence(reg, subject["digest"])  # type: ignore[arg-type]
    assert (e.digest, e.problem) == (digest, None)
    assert reg.asked == [(subject["digest"], EVIDENCE_TYPE)]


def test_a_referrers_answer_without_a_list_lists_nothing() -> None:
    @dataclass
    class Odd(FakeRegistry):
        def referrers(self, digest: str, artifact_type: str | None = None) -> dict[str, Any] | None:
            return {"manifests": None}

    reg = Odd()
    subject, _ = reg.push_bundle(BUNDLE)
    assert list_evidence(reg, subject["digest"]) == []  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ read


def test_a_referrer_that_cannot_be_read_is_ignored_with_a_warning_saying_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = FakeRegistry()
    subject, _ = reg.push_bundle(BUNDLE)
    missing = "sha256:" + "0" * 64
    not_json = sha256(b"not json")
    reg.manifests[not_json] = b"not json"
    no_subject_body = json.dumps({"schemaVersion": 2, "artifactType": EVIDENCE_TYPE}).encode()
    no_subject = sha256(no_subject_body)
    reg.manifests[no_subject] = no_subject_body
    for digest in (missing, not_json, no_subject):
        _add_to_referrers_index(reg, subject["digest"], {"digest": digest, "artifactType": EVIDENCE_TYPE})  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="conv2d_bundle.oci"):
        assert list_evidence(reg, subject["digest"]) == []  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == [
        f"ignoring referrer {missing}: manifest missing or not matching its digest",
        f"ignoring referrer {not_json}: the referrer manifest is not JSON",
        f"ignoring referrer {no_subject}: its subject is another manifest",
    ]


def test_evidence_is_listed_by_target_then_by_when_it_was_made() -> None:
    reg = FakeRegistry()
    subject, content = reg.push_bundle(BUNDLE)
    made = [f"2026-01-0{day}T00:00:00Z" for day in (3, 1, 2, 5, 4)]
    for when in made:
        attach(reg, REF, subject, report(content, finished_at=when))  # type: ignore[arg-type]
    attach(reg, REF, subject, report(content, target="hailo", finished_at="2026-01-09T00:00:00Z"))  # type: ignore[arg-type]
    listed = list_evidence(reg, subject["digest"])  # type: ignore[arg-type]
    assert [(e.target, e.report["finished_at"]) for e in listed] == [
        ("hailo", "2026-01-09T00:00:00Z"),
        *[("onnx", when) for when in sorted(made)],
    ]


def test_a_signature_with_characters_outside_base64_is_not_trusted(keys: tuple[Path, Path]) -> None:
    """A signature is read strictly: base64 with anything else in it is not a signature, even when the
    characters left after dropping the rest would verify."""
    reg = FakeRegistry()
    subject, content = reg.push_bundle(BUNDLE)
    keyid = public_key_id(keys[1])
    for target, mangle in (("onnx", lambda s: s), ("ios", lambda s: s[:8] + "!" + s[8:])):
        rep = report(content, target=target)
        payload = canonical_json(statement(REF, subject["digest"], content, rep)).encode()
        sig, _ = sign_bytes(keys[0], pae(IN_TOTO_PAYLOAD_TYPE, payload))
        sig_text = mangle(base64.b64encode(sig).decode())
        plant(reg, subject, rep, payload=payload, signatures=[{"keyid": keyid, "sig": sig_text}])
    listed = list_evidence(reg, subject["digest"], None, keys[1])  # type: ignore[arg-type]
    assert [(e.target, e.trusted) for e in listed] == [("ios", False), ("onnx", True)]


def test_an_empty_target_is_no_target() -> None:
    identity = BundleIdentity("sha256:" + "1" * 64, "sha256:" + "2" * 64, EXP)
    rep = report(identity.content_digest, target="")
    assert report_binding_problem(rep, "", identity) == "the report names no target"


def test_as_json_gives_every_field_of_the_evidence() -> None:
    policy = TolerancePolicy(outputs={"confidence": (1e-5, 0.0)}, source="p.yaml")
    rep = report("sha256:" + "2" * 64, policy=policy, skipped=[{"id": "t1"}], check_profile="full")
    e = Evidence("sha256:" + "1" * 64, "onnx", rep, ["sha256:k"], True)
    assert e.as_json() == {
        "digest": "sha256:" + "1" * 64,
        "target": "onnx",
        "verdict": "passed",
        "complete": True,
        "reasons": [],
        "not_verified": None,
        "errors": 0,
        "skipped": ["t1"],
        "host": "builder",
        "system": "Linux",
        "machine": "x86_64",
        "finished_at": "2026-01-01T00:00:00Z",
        "signed_by": ["sha256:k"],
        "trusted": True,
        "schema_version": 3,
        "exp_hash": EXP,
        "content_digest": "sha256:" + "2" * 64,
        "check_profile": "full",
        "strict_targets": False,
        "tolerance_policy": {
            "digest": policy.digest,
            "digest_matches": True,
            "against_builtin": None,
            "caps": {"float16": {"atol": 1e-3, "rtol": 1e-3}, "float32": {"atol": 1e-4, "rtol": 1e-5}},
            "outputs": {"confidence": {"atol": 1e-5, "rtol": 0.0}},
            "int8": Int8Policy().as_dict(),
            "source": "p.yaml",
        },
    }
    failed = Evidence(
        "d", "onnx", report("c", verdict="failed", passed=False, errors=["a", "b"], reasons=["r"])
    )
    assert {k: failed.as_json()[k] for k in ("verdict", "complete", "reasons", "errors")} == {
        "verdict": "failed",
        "complete": True,
        "reasons": ["r"],
        "errors": 2,
    }
    bare = Evidence("d", "onnx", {"tolerance_policy": "none", "tolerance_policy_digest": "x"}).as_json()
    assert bare["tolerance_policy"] == {
        "digest": "x",
        "digest_matches": False,
        "against_builtin": None,
        "caps": None,
        "outputs": None,
        "int8": None,
        "source": None,
    }


def test_policy_summary_of_outputs_that_are_no_mapping_names_the_caps() -> None:
    recorded = {**TolerancePolicy().as_dict(), "outputs": ["confidence"], "int8": None}
    assert policy_summary(recorded) == "float16 atol 0.001 rtol 0.001; float32 atol 0.0001 rtol 1e-05"


# ------------------------------------------------------------------------------------------------ gate


def test_every_required_target_is_judged_whatever_came_before() -> None:
    passed = Evidence("d1", "onnx", report("c"))
    failed = Evidence("d2", "ios", report("c", target="ios", verdict="failed", passed=False))
    assert check_required([passed, failed], ["hailo", "onnx", "ios"], LENIENT) == {
        "hailo": "no evidence attached",
        "ios": "builder: failed",
    }


def test_evidence_signed_by_several_keys_names_each() -> None:
    e = Evidence("d", "onnx", report("c"), keyids=["sha256:" + "a" * 64, "sha256:" + "b" * 64])
    assert e.shortfalls(EvidenceGate())[0] == (
        "signed by sha256:aaaaaaaaaaaa, sha256:bbbbbbbbbbbb but not checked (give --trusted-key, or "
        "--allow-unsigned)"
    )


def test_five_looser_figures_are_cut_to_four() -> None:
    loose = TolerancePolicy(
        caps={"float32": (1.0, 1.0), "float16": (1.0, 1.0)}, int8=Int8Policy(min_code_agreement=0.0)
    )
    e = Evidence("d", "onnx", report("c", policy=loose))
    assert e.policy_problem(TolerancePolicy()) == (
        "made under a looser tolerance policy than the gate's built-in policy (float16 atol 1 > 0.001, "
        "float16 rtol 1 > 0.001, float32 atol 1 > 0.0001, float32 rtol 1 > 1e-05, ... (5 in all))"
    )


# ------------------------------------------------------------------------------- malformed referrers


def _payload(bundle: dict[str, Any], content: str, /, **changes: Any) -> bytes:
    """The statement ``attach`` signs for the bundle descriptor ``bundle``, with ``changes``."""
    return canonical_json({**statement(REF, bundle["digest"], content, report(content)), **changes}).encode()


def _envelope(payload: bytes | str, **changes: Any) -> bytes:
    text = payload if isinstance(payload, str) else base64.b64encode(payload).decode()
    return canonical_json(
        {"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": text, "signatures": [], **changes}
    ).encode()


def _referrer(
    reg: FakeRegistry,
    subject: dict[str, Any],
    env: bytes,
    *,
    layers: Any = None,
    annotations: Any = None,
    corrupt_blob: bool = False,
) -> str:
    """A referrer manifest around the envelope ``env``, listed in the referrers index; its digest."""
    reg.blobs[sha256(env)] = b"other bytes" if corrupt_blob else env
    layer = {"mediaType": DSSE_MEDIA_TYPE, "digest": sha256(env), "size": len(env)}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": EVIDENCE_TYPE,
        "layers": [layer] if layers is None else layers(layer),
        "subject": subject,
        "annotations": {"org.conv2d-bundle.target": "onnx"} if annotations is None else annotations,
    }
    body = canonical_json(manifest).encode()
    reg.manifests[sha256(body)] = body
    _add_to_referrers_index(reg, subject["digest"], {"digest": sha256(body), "artifactType": EVIDENCE_TYPE})  # type: ignore[arg-type]
    return sha256(body)


def _other_layer(layer: dict[str, Any]) -> dict[str, Any]:
    return {**layer, "mediaType": "text/plain"}


CASES: dict[str, tuple[Any, dict[str, Any], str | None]] = {
    # name: (envelope from (subject, content), referrer options, the warning; None: listed, no problem)
    "no-dsse-layer": (lambda s, c: _envelope(_payload(s, c)), {"layers": lambda d: [_other_layer(d)]},
                      "no DSSE envelope layer"),
    "two-dsse-layers": (lambda s, c: _envelope(_payload(s, c)), {"layers": lambda d: [d, d]},
                        "no DSSE envelope layer"),
    "no-layers": (lambda s, c: _envelope(_payload(s, c)), {"layers": lambda d: []}, "no DSSE envelope layer"),
    "another-layer-beside": (lambda s, c: _envelope(_payload(s, c)),
                             {"layers": lambda d: ["junk", _other_layer(d), d]}, None),
    "blob-not-its-digest": (lambda s, c: _envelope(_payload(s, c)), {"corrupt_blob": True},
                            "the envelope blob does not match its digest"),
    "envelope-not-json": (lambda s, c: b"nope", {}, "the envelope is not JSON"),
    "envelope-not-object": (lambda s, c: b"[1]", {}, "the envelope is not a JSON object"),
    "other-payload-type": (lambda s, c: _envelope(b"", payloadType="text/plain"), {},
                           "the envelope's payloadType is 'text/plain', not in-toto"),
    "payload-not-base64": (lambda s, c: _envelope("%%%"), {}, "the envelope's payload is not base64"),
    "payload-base64-with-junk": (lambda s, c: _envelope("!" + base64.b64encode(_payload(s, c)).decode()), {},
                                 "the envelope's payload is not base64"),
    "statement-not-json": (lambda s, c: _envelope(b"nope"), {}, "the statement is not JSON"),
    "statement-not-object": (lambda s, c: _envelope(b"[]"), {}, "the statement is not a JSON object"),
    "other-statement-type": (lambda s, c: _envelope(_payload(s, c, _type="https://in-toto.io/Statement/v0.1")),
                             {}, "not a conv2d validation-report statement"),
    "other-predicate-type": (lambda s, c: _envelope(_payload(s, c, predicateType="urn:other")), {},
                             "not a conv2d validation-report statement"),
    "no-subject-list": (lambda s, c: _envelope(_payload(s, c, subject=None)), {},
                        "the statement is about another bundle"),
    "junk-beside-the-subjects": (
        lambda s, c: _envelope(_payload(s, c, subject=["junk", {"name": "x", "digest": "y"},
                                                       *statement(REF, s["digest"], c, {})["subject"]])),
        {}, None),
    "no-report": (lambda s, c: _envelope(_payload(s, c, predicate=[])), {}, "the statement holds no report"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_referrer_is_ignored_saying_why(case: str, caplog: pytest.LogCaptureFixture) -> None:
    make_envelope, options, why = CASES[case]
    reg = FakeRegistry()
    subject, content = reg.push_bundle(BUNDLE)
    digest = _referrer(reg, subject, make_envelope(subject, content), **options)
    with caplog.at_level(logging.WARNING, logger="conv2d_bundle.oci"):
        listed = list_evidence(reg, subject["digest"])  # type: ignore[arg-type]
    if why is None:
        assert [(e.digest, e.target, e.problem) for e in listed] == [(digest, "onnx", None)]
        assert caplog.records == []
    else:
        assert listed == []
        assert [r.getMessage() for r in caplog.records] == [f"ignoring referrer {digest}: {why}"]


@pytest.mark.parametrize(
    ("annotations", "target", "problem"),
    [
        ({"org.conv2d-bundle.target": "ios"}, "ios", "the report is for target 'onnx', not 'ios'"),
        ({}, "onnx", None),  # no annotation: the report's own target
        ({"org.conv2d-bundle.target": 5}, "onnx", None),
        ("junk", "onnx", None),
    ],
    ids=["annotation-wins", "no-annotation", "annotation-not-text", "annotations-not-object"],
)
def test_the_target_is_the_referrers_annotation_else_the_reports(
    annotations: Any, target: str, problem: str | None
) -> None:
    reg = FakeRegistry()
    subject, content = reg.push_bundle(BUNDLE)
    _referrer(reg, subject, _envelope(_payload(subject, content)), annotations=annotations)
    (e,) = list_evidence(reg, subject["digest"])  # type: ignore[arg-type]
    assert (e.target, e.problem) == (target, problem)


# ------------------------------------------------------------------------------------------ identity


def test_referrers_tag_is_the_algorithm_and_the_encoded_digest_cut_to_the_schemas_lengths() -> None:
    assert referrers_tag("sha256:abc") == "sha256-abc"
    assert referrers_tag("sha512:" + "e" * 128) == "sha512-" + "e" * 64
    assert referrers_tag("a" * 40 + ":ff") == "a" * 32 + "-ff"
    assert referrers_tag("x:y:z") == "x-y:z"


def _bundle_manifest(reg: FakeRegistry, body: bytes) -> str:
    reg.manifests[sha256(body)] = body
    return sha256(body)


def test_a_bundle_manifest_that_is_missing_or_malformed_has_no_identity() -> None:
    from conv2d_bundle.verify.evidence import bundle_identity

    reg = FakeRegistry()
    subject, _ = reg.push_bundle(BUNDLE)
    good = json.loads(reg.manifests[subject["digest"]])
    manifest_layer = next(
        x for x in good["layers"] if x["annotations"]["org.opencontainers.image.title"] == "MANIFEST.json"
    )

    def refused(digest: str) -> str:
        with pytest.raises(RegistryError) as info:
            bundle_identity(reg, digest)  # type: ignore[arg-type]
        return str(info.value)

    missing = "sha256:" + "0" * 64
    assert refused(missing) == f"{missing}: the bundle manifest is missing or does not match its digest"
    d = _bundle_manifest(reg, b"nope")
    assert refused(d) == f"{d}: the bundle manifest is not JSON"
    d = _bundle_manifest(reg, b"{}")
    assert refused(d) == f"{d}: the bundle manifest has no single MANIFEST.json layer"
    d = _bundle_manifest(reg, json.dumps({"layers": None}).encode())
    assert refused(d) == f"{d}: the bundle manifest has no single MANIFEST.json layer"
    wrong_blob = {**manifest_layer, "digest": sha256(b"x")}
    reg.blobs[sha256(b"x")] = b"y"
    d = _bundle_manifest(reg, json.dumps({**good, "layers": [wrong_blob]}).encode())
    assert refused(d) == f"{d}: its MANIFEST.json blob does not match its digest"
    reg.blobs[sha256(b"[]")] = b"[]"
    d = _bundle_manifest(
        reg, json.dumps({**good, "layers": [{**manifest_layer, "digest": sha256(b"[]")}]}).encode()
    )
    with pytest.raises(BundleIntegrityError) as why:
        BundleManifest.parse(b"[]")
    assert refused(d) == f"{d}: {why.value}"  # a MANIFEST.json that is no manifest


@pytest.mark.parametrize(
    "annotations", [None, {"org.conv2d-bundle.exp_hash": 5}, {}], ids=["none", "not-text", "absent"]
)
def test_a_bundle_manifest_without_a_textual_exp_hash_has_none(annotations: Any) -> None:
    from conv2d_bundle.oci.artifact import EXP_HASH
    from conv2d_bundle.verify.evidence import bundle_identity

    reg = FakeRegistry()
    subject, content = reg.push_bundle(BUNDLE)
    good = json.loads(reg.manifests[subject["digest"]])
    if annotations is None:
        del good["annotations"]
    else:
        good["annotations"] = {EXP_HASH: annotations[next(iter(annotations))]} if annotations else {}
    d = _bundle_manifest(reg, json.dumps(good).encode())
    assert bundle_identity(reg, d) == BundleIdentity(d, content, None)  # type: ignore[arg-type]
