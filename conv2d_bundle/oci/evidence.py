"""Validation evidence: a target's report attached to a bundle's manifest as an OCI referrer.

One referrer per report: an image manifest with ``artifactType`` :data:`EVIDENCE_TYPE`, the empty config,
``subject`` = the bundle manifest, and one layer: a DSSE envelope (:data:`DSSE_MEDIA_TYPE`) around an
in-toto Statement v1 whose subject is the bundle manifest's digest and whose predicate is the report as
``<target>_validation.json`` holds it. Unsigned envelopes have an empty ``signatures`` list; ``--key``
signs the DSSE pre-authentication encoding with the Ed25519 key ``conv2d pack sign`` uses.

The referrer is found through the referrers API where the registry has one (it answers the manifest PUT
with ``OCI-Subject``), else through the referrers tag schema: an image index tagged ``sha256-<hex>`` that
the client keeps up to date (distribution 2.8, Debian's registry, has no referrers API). Two attaches racing
on that index could lose one entry; each attach re-reads the index after writing it and retries until its
own entry is there.

Listing trusts nothing: each referrer manifest is fetched by digest and hashed, its subject must be the
bundle, its envelope's statement must name the bundle's digest (evidence cannot be replayed from another
bundle), and signatures are checked against ``--trusted-key`` when one is given.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conv2d_bundle.digest import canonical_json
from conv2d_bundle.errors import RegistryError
from conv2d_bundle.oci.client import OCI_INDEX, OCI_MANIFEST, RegistryClient
from conv2d_bundle.oci.reference import OciRef
from conv2d_bundle.verdict import Verdict, verdict_of

EVIDENCE_TYPE = "application/vnd.conv2d-bundle.evidence.v1"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:conv2d-bundle:validation-report:v1"
TARGET = "org.conv2d-bundle.target"
VERDICT = "org.conv2d-bundle.verdict"
HOST = "org.conv2d-bundle.host"
CREATED = "org.opencontainers.image.created"
_INDEX_RETRIES = 8

log = logging.getLogger("conv2d_bundle.oci")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for ``sha256:<hex>``: ``sha256-<hex>``."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm[:32]}-{encoded[:64]}"


def statement(ref: OciRef, subject_digest: str, report: dict[str, Any]) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": f"{ref.registry}/{ref.repository}",
                "digest": {"sha256": subject_digest.removeprefix("sha256:")},
            }
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": report,
    }


def envelope(payload: bytes, key: Path | None) -> dict[str, Any]:
    signatures = []
    if key is not None:
        from conv2d_bundle.signing import sign_bytes

        sig, keyid = sign_bytes(key, pae(IN_TOTO_PAYLOAD_TYPE, payload))
        signatures.append({"keyid": keyid, "sig": base64.b64encode(sig).decode("ascii")})
    return {
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": signatures,
    }


def attach(
    client: RegistryClient,
    ref: OciRef,
    subject: dict[str, Any],
    report: dict[str, Any],
    key: Path | None = None,
) -> str:
    """Attach ``report`` to the bundle manifest ``subject`` (a descriptor); return the referrer's digest."""
    payload = canonical_json(statement(ref, subject["digest"], report)).encode()
    env = canonical_json(envelope(payload, key)).encode()
    client.push_blob(_sha256(EMPTY), len(EMPTY), EMPTY)
    client.push_blob(_sha256(env), len(env), env)
    environment = report.get("environment")
    if not isinstance(environment, dict):
        environment = {}
    annotations = {
        TARGET: str(report.get("target")),
        VERDICT: str(report.get("verdict")),
        HOST: str(environment.get("host")),
        CREATED: str(report.get("finished_at")),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": EVIDENCE_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": _sha256(EMPTY), "size": len(EMPTY)},
        "layers": [{"mediaType": DSSE_MEDIA_TYPE, "digest": _sha256(env), "size": len(env)}],
        "subject": subject,
        "annotations": annotations,
    }
    body = canonical_json(manifest).encode()
    digest = _sha256(body)
    resp = client.put_manifest(digest, body)
    if "OCI-Subject" not in resp.headers:  # no referrers API: the client maintains the tag schema's index
        descriptor = {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(body),
            "artifactType": EVIDENCE_TYPE,
            "annotations": annotations,
        }
        _add_to_referrers_index(client, subject["digest"], descriptor)
    return digest


def _read_index(client: RegistryClient, tag: str) -> dict[str, Any]:
    got = client.get_manifest(tag, accept=OCI_INDEX)
    empty: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    if got is None:
        return empty
    try:
        index = json.loads(got[0])
    except ValueError:
        return empty  # the spec: a tag that is not a valid index means no referrers yet
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        return empty
    return index


def _add_to_referrers_index(client: RegistryClient, subject_digest: str, descriptor: dict[str, Any]) -> None:
    tag = referrers_tag(subject_digest)
    for _ in range(_INDEX_RETRIES):
        index = _read_index(client, tag)
        if any(isinstance(d, dict) and d.get("digest") == descriptor["digest"] for d in index["manifests"]):
            return
        index["manifests"].append(descriptor)
        client.put_manifest(tag, canonical_json(index).encode(), OCI_INDEX)
    raise RegistryError(
        f"the referrers index {tag} kept changing under concurrent writers: evidence not listed"
    )


# ---------------------------------------------------------------------------------------------- read


@dataclass
class Evidence:
    digest: str  # the referrer manifest's
    target: str
    report: dict[str, Any]
    keyids: list[str] = field(default_factory=list)
    trusted: bool | None = None  # None: no --trusted-key given

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.report)

    @property
    def environment(self) -> dict[str, Any]:
        env = self.report.get("environment")
        return env if isinstance(env, dict) else {}

    @property
    def unverified(self) -> list[str]:
        """Checks this host skipped (parity it could not execute, a missing runtime): not verified there."""
        skipped = self.report.get("skipped")
        return [str(s.get("id")) for s in skipped if isinstance(s, dict)] if isinstance(skipped, list) else []

    def shortfall(self, require_trusted: bool) -> str | None:
        """Why this report does not count as evidence for its target, or None when it does."""
        v = self.verdict
        if not v.passed:
            return v.describe()
        if self.unverified:
            return f"{len(self.unverified)} checks skipped on {self.environment.get('host')} (not verified there)"
        if require_trusted and not self.trusted:
            return "not signed by the trusted key"
        return None

    def as_json(self) -> dict[str, Any]:
        env = self.environment
        return {
            "digest": self.digest,
            "target": self.target,
            "verdict": self.verdict.status,
            "complete": self.verdict.complete,
            "errors": len(self.verdict.errors),
            "skipped": self.unverified,
            "host": env.get("host"),
            "system": env.get("system"),
            "machine": env.get("machine"),
            "finished_at": self.report.get("finished_at"),
            "signed_by": self.keyids,
            "trusted": self.trusted,
        }


def _referrer_descriptors(client: RegistryClient, subject_digest: str) -> list[dict[str, Any]]:
    index = client.referrers(subject_digest, EVIDENCE_TYPE)
    if index is None:
        index = _read_index(client, referrers_tag(subject_digest))
    manifests = index.get("manifests")
    return [
        d
        for d in (manifests if isinstance(manifests, list) else [])
        if isinstance(d, dict) and d.get("artifactType") == EVIDENCE_TYPE and isinstance(d.get("digest"), str)
    ]


def list_evidence(
    client: RegistryClient, subject_digest: str, exp_hash: str | None, trusted_key: Path | None = None
) -> list[Evidence]:
    """Every evidence referrer of the bundle manifest ``subject_digest`` that checks out, oldest first."""
    out = []
    trusted_id = None
    if trusted_key is not None:
        from conv2d_bundle.signing import public_key_id

        trusted_id = public_key_id(trusted_key)
    for descriptor in _referrer_descriptors(client, subject_digest):
        try:
            out.append(
                _read_one(client, descriptor["digest"], subject_digest, exp_hash, trusted_key, trusted_id)
            )
        except RegistryError as exc:
            log.warning("ignoring referrer %s: %s", descriptor["digest"], exc)
    return sorted(out, key=lambda e: (e.target, str(e.report.get("finished_at")), e.digest))


def _read_one(
    client: RegistryClient,
    digest: str,
    subject_digest: str,
    exp_hash: str | None,
    trusted_key: Path | None,
    trusted_id: str | None,
) -> Evidence:
    got = client.get_manifest(digest)
    if got is None or _sha256(got[0]) != digest:
        raise RegistryError("manifest missing or not matching its digest")
    manifest = json.loads(got[0])
    if (manifest.get("subject") or {}).get("digest") != subject_digest:
        raise RegistryError("its subject is another manifest")
    layers = [layer for layer in manifest.get("layers") or [] if layer.get("mediaType") == DSSE_MEDIA_TYPE]
    if len(layers) != 1:
        raise RegistryError("no DSSE envelope layer")
    blob = client.fetch_blob(layers[0]["digest"])
    if _sha256(blob) != layers[0]["digest"]:
        raise RegistryError("the envelope blob does not match its digest")
    env = json.loads(blob)
    payload = base64.b64decode(env.get("payload", ""))
    stmt = json.loads(payload)
    subjects = stmt.get("subject") or []
    if stmt.get("_type") != STATEMENT_TYPE or stmt.get("predicateType") != PREDICATE_TYPE:
        raise RegistryError("not a conv2d validation-report statement")
    wanted = subject_digest.removeprefix("sha256:")
    if not any(isinstance(s, dict) and (s.get("digest") or {}).get("sha256") == wanted for s in subjects):
        raise RegistryError("the statement is about another bundle")
    report = stmt.get("predicate")
    if not isinstance(report, dict):
        raise RegistryError("the statement holds no report")
    if exp_hash is not None and report.get("exp_hash") not in (None, exp_hash):
        raise RegistryError(f"the report is for bundle {report.get('exp_hash')}, not {exp_hash}")
    keyids, trusted = [], None
    signed = pae(str(env.get("payloadType")), payload)
    for sig in env.get("signatures") or []:
        keyids.append(str(sig.get("keyid")))
    if trusted_key is not None:
        from conv2d_bundle.signing import verify_bytes

        trusted = any(
            sig.get("keyid") == trusted_id
            and verify_bytes(trusted_key, base64.b64decode(sig.get("sig", "")), signed)
            for sig in env.get("signatures") or []
        )
    return Evidence(digest, str(report.get("target")), report, keyids, trusted)


def check_required(evidence: list[Evidence], targets: list[str], require_trusted: bool) -> dict[str, str]:
    """target -> why it lacks evidence, for each required target that has no report that counts."""
    missing = {}
    for target in targets:
        mine = [e for e in evidence if e.target == target]
        if not mine:
            missing[target] = "no evidence attached"
            continue
        reasons = [e.shortfall(require_trusted) for e in mine]
        if any(r is None for r in reasons):
            continue
        missing[target] = "; ".join(
            f"{e.environment.get('host')}: {r}" for e, r in zip(mine, reasons, strict=True)
        )
    return missing
