"""Evidence referrers against a real registry (distribution 2.8: no referrers API, so the tag schema).

Reports here are made up (fast); tests/oci/test_round_trip.py attaches real ones from ``verify --attest``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from conv2d_bundle.oci.artifact import push_bundle
from conv2d_bundle.oci.client import OCI_MANIFEST, RegistryClient
from conv2d_bundle.oci.evidence import (
    attach,
    check_required,
    list_evidence,
    pae,
    referrers_tag,
)
from conv2d_bundle.oci.reference import OciRef, parse_ref
from conv2d_bundle.signing import keygen
from tests.oci.conftest import Registry


def report(
    target: str, *, verdict: str = "passed", skipped: int = 0, host: str = "builder", at: str = "00:00:00"
) -> dict[str, Any]:
    return {
        "schema_version": 2,
        "target": target,
        "exp_hash": "7bda82d7df9d",
        "verdict": verdict,
        "passed": verdict == "passed",
        "complete": verdict != "incomplete",
        "reasons": [] if verdict != "incomplete" else ["interrupted"],
        "errors": ["test_x: boom"] if verdict == "failed" else [],
        "warnings": [],
        "checks_run": ["test_x"],
        "skipped": [{"id": f"test_parity[{i}]", "reason": "needs macOS"} for i in range(skipped)],
        "counts": {},
        "finished_at": f"2026-01-01T{at}Z",
        "environment": {"host": host, "system": "Linux", "machine": "x86_64"},
    }


@pytest.fixture
def pushed(example_bundle: Path, registry: Registry, request: pytest.FixtureRequest) -> tuple[OciRef, dict]:
    """The example bundle in a repository of this test's own; (ref with digest, subject descriptor)."""
    name = hashlib.sha256(request.node.name.encode()).hexdigest()[:12]
    ref = parse_ref(registry.ref(f"evidence/t{name}:v1"))
    with RegistryClient(ref) as client:
        result = push_bundle(client, example_bundle, ref)
        size = len(client.get_manifest(result.digest)[0])  # type: ignore[index]
    return result.ref, {"mediaType": OCI_MANIFEST, "digest": result.digest, "size": size}


def test_required_evidence_counts_only_passed_complete_reports_that_skipped_nothing(
    pushed: tuple[OciRef, dict], registry: Registry
) -> None:
    ref, subject = pushed
    with RegistryClient(ref) as client:
        assert check_required(list_evidence(client, subject["digest"], "7bda82d7df9d"), ["onnx"], False) == {
            "onnx": "no evidence attached"
        }
        attach(client, ref, subject, report("onnx"))
        attach(client, ref, subject, report("ios", skipped=6, host="linux-ci"))  # parity skipped off macOS
        attach(client, ref, subject, report("hailo", verdict="failed"))
        attach(client, ref, subject, report("executorch", verdict="incomplete"))
        evidence = list_evidence(client, subject["digest"], "7bda82d7df9d")
    assert sorted(e.target for e in evidence) == ["executorch", "hailo", "ios", "onnx"]
    missing = check_required(evidence, ["onnx", "ios", "hailo", "executorch"], False)
    assert "onnx" not in missing
    assert missing["ios"] == "linux-ci: 6 checks skipped on linux-ci (not verified there)"
    assert "failed" in missing["hailo"] and "incomplete" in missing["executorch"]
    # distribution 2.8 has no referrers API: the index lives under the referrers tag schema's tag
    assert referrers_tag(subject["digest"]) in registry.tags(ref.repository)


def test_a_later_report_from_a_capable_host_makes_a_target_count(pushed: tuple[OciRef, dict]) -> None:
    ref, subject = pushed
    with RegistryClient(ref) as client:
        attach(client, ref, subject, report("ios", host="mac-mini", at="10:00:00"))
        attach(client, ref, subject, report("ios", skipped=6, host="linux-ci", at="09:00:00"))
        evidence = list_evidence(client, subject["digest"], None)
    assert [e.environment["host"] for e in evidence] == ["linux-ci", "mac-mini"]  # every host's, oldest first
    assert check_required(evidence, ["ios"], False) == {}


def test_signed_evidence_is_trusted_only_with_the_signing_key(
    pushed: tuple[OciRef, dict], tmp_path: Path
) -> None:
    ref, subject = pushed
    keygen(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    (tmp_path / "other").mkdir()
    keygen(tmp_path / "other" / "k.pem", tmp_path / "other" / "k.pub.pem")
    with RegistryClient(ref) as client:
        attach(client, ref, subject, report("onnx"), key=tmp_path / "k.pem")
        attach(client, ref, subject, report("general"))  # unsigned
        right = list_evidence(client, subject["digest"], None, trusted_key=tmp_path / "k.pub.pem")
        wrong = list_evidence(client, subject["digest"], None, trusted_key=tmp_path / "other" / "k.pub.pem")
    assert {e.target: e.trusted for e in right} == {"onnx": True, "general": False}
    assert check_required(right, ["onnx"], True) == {}
    assert check_required(right, ["general"], True) == {"general": "builder: not signed by the trusted key"}
    assert check_required(wrong, ["onnx"], True) == {"onnx": "builder: not signed by the trusted key"}


def test_the_envelope_is_dsse_around_an_in_toto_statement_about_the_bundle(
    pushed: tuple[OciRef, dict], tmp_path: Path
) -> None:
    ref, subject = pushed
    keygen(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    with RegistryClient(ref) as client:
        digest = attach(client, ref, subject, report("onnx"), key=tmp_path / "k.pem")
        manifest = json.loads(client.get_manifest(digest)[0])  # type: ignore[index]
        env = json.loads(client.fetch_blob(manifest["layers"][0]["digest"]))
    assert (
        manifest["subject"] == subject
        and manifest["artifactType"] == "application/vnd.conv2d-bundle.evidence.v1"
    )
    assert manifest["layers"][0]["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert env["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(env["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"][0]["digest"] == {"sha256": subject["digest"].removeprefix("sha256:")}
    assert statement["predicate"]["target"] == "onnx"
    from conv2d_bundle.signing import verify_bytes

    signed = pae(env["payloadType"], base64.b64decode(env["payload"]))
    assert verify_bytes(tmp_path / "k.pub.pem", base64.b64decode(env["signatures"][0]["sig"]), signed)


def test_evidence_about_another_bundle_is_ignored(pushed: tuple[OciRef, dict]) -> None:
    """A referrer whose statement names another manifest (evidence replayed from elsewhere) does not count."""
    ref, subject = pushed
    elsewhere = {**subject, "digest": "sha256:" + "1" * 64}
    with RegistryClient(ref) as client:
        digest = attach(client, ref, elsewhere, report("onnx"))  # its statement is about `elsewhere`
        body = json.loads(client.get_manifest(digest)[0])  # type: ignore[index]
        body["subject"] = subject  # ...re-pointed at our bundle
        from conv2d_bundle.digest import canonical_json
        from conv2d_bundle.oci.evidence import _add_to_referrers_index

        raw = canonical_json(body).encode()
        new = "sha256:" + hashlib.sha256(raw).hexdigest()
        client.put_manifest(new, raw)
        _add_to_referrers_index(
            client,
            subject["digest"],
            {
                "mediaType": OCI_MANIFEST,
                "digest": new,
                "size": len(raw),
                "artifactType": body["artifactType"],
            },
        )
        assert list_evidence(client, subject["digest"], None) == []


def test_the_pae_is_dsse_v1() -> None:
    assert pae("t", b"hello") == b"DSSEv1 1 t 5 hello"
