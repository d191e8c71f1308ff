"""Validation evidence: a target's report attached to a bundle in a registry as an OCI referrer.

One referrer per report: an image manifest with ``artifactType`` :data:`EVIDENCE_TYPE`, the empty config,
``subject`` = the bundle manifest, and one layer: a DSSE envelope (:data:`DSSE_MEDIA_TYPE`) around an
in-toto Statement v1 whose predicate is the report as ``<target>_validation.json`` holds it. The statement
names two subjects, so that a signature covers both: the bundle's OCI manifest digest (named
``<registry>/<repository>``) and its **content digest** (named :data:`CONTENT_SUBJECT`: sha256 of the
canonical MANIFEST.json, :attr:`conv2d_bundle.bundle.manifest.BundleManifest.content_digest`), the bytes the
verdict is about. Unsigned envelopes have an empty ``signatures`` list; ``--key`` signs the DSSE
pre-authentication encoding with the Ed25519 key ``conv2d pack sign`` uses.

:func:`attach` reads the bundle's identity from the registry itself (:func:`bundle_identity`: the
MANIFEST.json layer of the manifest it attaches to, checked against its digest) and refuses a report that is
not about those bytes (:func:`conv2d_bundle.verify.verdict.binding_problem`: another content digest, none, another
exp_hash or target, an older report schema): a pass verified on other content is never signed onto a bundle.

The referrer is found through the referrers API where the registry has one (it answers the manifest PUT
with ``OCI-Subject``), else through the referrers tag schema: an image index tagged ``sha256-<hex>`` that
the client keeps up to date (distribution 2.8, Debian's registry, has no referrers API). Two attaches racing
on that index could lose one entry; each attach re-reads the index after writing it and retries until its
own entry is there.

Listing trusts nothing: each referrer manifest is fetched by digest and hashed, its subject must be the
bundle and its statement must name the bundle's OCI digest (else it is ignored: evidence cannot be replayed
from another manifest). A report that is not bound to the bundle's current content digest, exp_hash and the
current report schema, or whose statement does not name the content digest, is listed as **not verified**
with the reason (:attr:`Evidence.problem`), never as evidence. Signatures are checked against
``--trusted-key`` when one is given: a signature counts only if its keyid is the trusted key's *and* it
verifies over the envelope's payload.

``--require-evidence`` asks :func:`check_required` with an :class:`EvidenceGate`: a report counts for a
target only when it is bound to the bundle, passed, complete, skipped nothing, was made under a tolerance
policy at least as strict as the gate's (the built-in one unless ``--tolerance-policy`` names another), in
strict mode where ``--require-strict`` asks for it, and is signed by ``--trusted-key`` (or, without a key,
``--allow-unsigned`` accepts unsigned evidence).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conv2d_bundle.bundle.digest import canonical_json
from conv2d_bundle.errors import BundleIntegrityError, ConfigError, RegistryError
from conv2d_bundle.oci.client import OCI_INDEX, OCI_MANIFEST, RegistryClient
from conv2d_bundle.oci.reference import OciRef
from conv2d_bundle.parity.tolerance import TolerancePolicy, policy_digest
from conv2d_bundle.verify.verdict import (
    REPORT_SCHEMA_VERSION,
    UNVERIFIED,
    Verdict,
    binding_problem,
    verdict_of,
)

EVIDENCE_TYPE = "application/vnd.conv2d-bundle.evidence.v1"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:conv2d-bundle:validation-report:v1"
#: the statement subject that names the bundle's content digest (sha256 of its canonical MANIFEST.json)
CONTENT_SUBJECT = "org.conv2d-bundle.content"
TARGET = "org.conv2d-bundle.target"
VERDICT = "org.conv2d-bundle.verdict"
HOST = "org.conv2d-bundle.host"
CREATED = "org.opencontainers.image.created"
_INDEX_RETRIES = 8

log = logging.getLogger("conv2d_bundle.oci")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _short(digest: str) -> str:
    return digest[: len("sha256:") + 12]


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise RegistryError(f"{what} is not JSON") from exc
    if not isinstance(data, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return data


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for ``sha256:<hex>``: ``sha256-<hex>``."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm[:32]}-{encoded[:64]}"


# ------------------------------------------------------------------------------------------ identity


@dataclass(frozen=True)
class BundleIdentity:
    """What a bundle in the registry is: its OCI manifest digest, its content digest, its experiment name."""

    oci_digest: str
    content_digest: str
    exp_hash: str | None


def bundle_identity(client: RegistryClient, oci_digest: str) -> BundleIdentity:
    """The identity of the bundle manifest ``oci_digest``, read from the registry: its MANIFEST.json layer
    (checked against the layer digest) gives the content digest, its annotation the exp_hash."""
    from conv2d_bundle.bundle.manifest import MANIFEST_NAME, BundleManifest
    from conv2d_bundle.oci.artifact import EXP_HASH, TITLE

    got = client.get_manifest(oci_digest)
    if got is None or _sha256(got[0]) != oci_digest:
        raise RegistryError(f"{oci_digest}: the bundle manifest is missing or does not match its digest")
    manifest = _json_object(got[0], f"{oci_digest}: the bundle manifest")
    layers = manifest.get("layers")
    found = [
        layer
        for layer in (layers if isinstance(layers, list) else [])
        if isinstance(layer, dict)
        and isinstance(layer.get("annotations"), dict)
        and layer["annotations"].get(TITLE) == MANIFEST_NAME
        and isinstance(layer.get("digest"), str)
    ]
    if len(found) != 1:
        raise RegistryError(f"{oci_digest}: the bundle manifest has no single {MANIFEST_NAME} layer")
    raw = client.fetch_blob(found[0]["digest"])
    if _sha256(raw) != found[0]["digest"]:
        raise RegistryError(f"{oci_digest}: its {MANIFEST_NAME} blob does not match its digest")
    try:
        content_digest = BundleManifest.parse(raw).content_digest
    except BundleIntegrityError as exc:
        raise RegistryError(f"{oci_digest}: {exc}") from exc
    annotations = manifest.get("annotations")
    exp_hash = annotations.get(EXP_HASH) if isinstance(annotations, dict) else None
    return BundleIdentity(oci_digest, content_digest, exp_hash if isinstance(exp_hash, str) else None)


def report_binding_problem(report: Any, target: Any, identity: BundleIdentity) -> str | None:
    """Why ``report`` is not a report about this bundle's bytes for ``target`` (None when it is):
    :func:`~conv2d_bundle.verify.verdict.binding_problem`, and a current-schema report must name its exp_hash."""
    if not isinstance(target, str) or not target:
        return "the report names no target"
    if (
        isinstance(report, Mapping)
        and report.get("schema_version") == REPORT_SCHEMA_VERSION
        and not (isinstance(report.get("exp_hash"), str) and report["exp_hash"])
    ):
        return "the report records no exp_hash"
    return binding_problem(
        report, target=target, content_digest=identity.content_digest, exp_hash=identity.exp_hash
    )


# ---------------------------------------------------------------------------------------------- write


def statement(
    ref: OciRef, subject_digest: str, content_digest: str, report: dict[str, Any]
) -> dict[str, Any]:
    """The in-toto statement: about the OCI manifest ``subject_digest`` and the content ``content_digest``."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": f"{ref.registry}/{ref.repository}",
                "digest": {"sha256": subject_digest.removeprefix("sha256:")},
            },
            {"name": CONTENT_SUBJECT, "digest": {"sha256": content_digest.removeprefix("sha256:")}},
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": report,
    }


def envelope(payload: bytes, key: Path | None) -> dict[str, Any]:
    signatures = []
    if key is not None:
        from conv2d_bundle.bundle.signing import sign_bytes

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
    """Attach ``report`` to the bundle manifest ``subject`` (a descriptor); return the referrer's digest.

    BundleIntegrityError, and nothing written, when the report is not about the bytes of that bundle (its
    content digest as the registry holds it, its exp_hash, the current report schema)."""
    identity = bundle_identity(client, subject["digest"])
    problem = report_binding_problem(report, report.get("target"), identity)
    if problem is not None:
        raise BundleIntegrityError(
            f"refusing to attach the {report.get('target')} report to {subject['digest']} "
            f"(content {_short(identity.content_digest)}): {problem}"
        )
    payload = canonical_json(statement(ref, subject["digest"], identity.content_digest, report)).encode()
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


@dataclass(frozen=True)
class EvidenceGate:
    """What ``--require-evidence`` asks of a report before it counts for a target."""

    policy: TolerancePolicy = field(default_factory=TolerancePolicy)  # the gate's: no looser report counts
    require_strict: bool = False  # --require-strict: only reports made with --strict-targets
    require_trusted: bool = False  # --trusted-key given: only evidence that key signed
    allow_unsigned: bool = False  # without a key: accept evidence no key vouches for


@dataclass
class Evidence:
    digest: str  # the referrer manifest's
    target: str
    report: dict[str, Any]
    keyids: list[str] = field(default_factory=list)
    trusted: bool | None = None  # None: no --trusted-key given
    problem: str | None = None  # why the report is not about this bundle's bytes: not verified

    @property
    def verdict(self) -> Verdict:
        if self.problem is not None:
            return Verdict(UNVERIFIED, False, (self.problem,))
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

    @property
    def policy(self) -> Any:
        """The tolerance policy the report says it was made under (as recorded: untrusted)."""
        return self.report.get("tolerance_policy")

    def policy_problem(self, gate: TolerancePolicy) -> str | None:
        """Why the recorded tolerance policy does not satisfy ``gate`` (None: its figures are at least as
        strict and its recorded digest is theirs)."""
        try:
            recorded = TolerancePolicy.from_dict(self.policy)
        except ConfigError as exc:
            return f"no usable tolerance policy recorded ({exc})"
        if self.report.get("tolerance_policy_digest") != recorded_policy_digest(self.policy):
            return "its tolerance_policy_digest does not match the recorded policy"
        return _looser(recorded, gate, "the gate's")

    def looser_than_builtin(self) -> str | None:
        """For ``show``: how the recorded figures admit more than the built-in policy (None: they do not, or
        none are recorded)."""
        try:
            return _looser(TolerancePolicy.from_dict(self.policy), TolerancePolicy(), "the")
        except ConfigError:
            return None

    def _trust_shortfall(self, gate: EvidenceGate) -> str | None:
        if gate.require_trusted:
            return None if self.trusted else "not signed by the trusted key"
        if gate.allow_unsigned:
            return None
        if self.keyids:
            signers = ", ".join(_short(k) for k in self.keyids)
            return f"signed by {signers} but not checked (give --trusted-key, or --allow-unsigned)"
        return "unsigned (give --trusted-key, or --allow-unsigned to accept unsigned evidence)"

    def shortfalls(self, gate: EvidenceGate) -> list[str]:
        """Why this report does not count as evidence for its target under ``gate`` (empty: it counts)."""
        if self.problem is not None:
            return [self.verdict.describe()]
        out = [r for r in [self._trust_shortfall(gate)] if r]
        v = self.verdict
        if not v.passed:
            out.append(v.describe())
        elif self.unverified:
            out.append(
                f"{len(self.unverified)} checks skipped on {self.environment.get('host')} (not verified there)"
            )
        policy = self.policy_problem(gate.policy)
        if policy:
            out.append(policy)
        if gate.require_strict and self.report.get("strict_targets") is not True:
            out.append("made without --strict-targets (the gate asks --require-strict)")
        return out

    def as_json(self) -> dict[str, Any]:
        env = self.environment
        v = self.verdict
        policy = self.policy
        claimed = self.report.get("tolerance_policy_digest")
        return {
            "digest": self.digest,
            "target": self.target,
            "verdict": v.status,
            "complete": v.complete,
            "reasons": list(v.reasons),
            "not_verified": self.problem,
            "errors": len(v.errors),
            "skipped": self.unverified,
            "host": env.get("host"),
            "system": env.get("system"),
            "machine": env.get("machine"),
            "finished_at": self.report.get("finished_at"),
            "signed_by": self.keyids,
            "trusted": self.trusted,
            "schema_version": self.report.get("schema_version"),
            "exp_hash": self.report.get("exp_hash"),
            "content_digest": self.report.get("content_digest"),
            "check_profile": self.report.get("check_profile"),
            "strict_targets": self.report.get("strict_targets"),
            "tolerance_policy": {
                "digest": claimed,
                "digest_matches": claimed is not None and recorded_policy_digest(policy) == claimed,
                "against_builtin": self.looser_than_builtin(),
                "caps": policy.get("caps") if isinstance(policy, dict) else None,
                "outputs": policy.get("outputs") if isinstance(policy, dict) else None,
                "int8": policy.get("int8") if isinstance(policy, dict) else None,
                "source": policy.get("source") if isinstance(policy, dict) else None,
            },
        }


def _looser(recorded: TolerancePolicy, policy: TolerancePolicy, whose: str) -> str | None:
    looser = recorded.looser_than(policy)
    if not looser:
        return None
    shown = ", ".join(looser[:4]) + (f", ... ({len(looser)} in all)" if len(looser) > 4 else "")
    return f"made under a looser tolerance policy than {whose} {policy.source} ({shown})"


def recorded_policy_digest(recorded: Any) -> str | None:
    """The digest of a recorded policy's figures (:func:`~conv2d_bundle.parity.tolerance.policy_digest`), None when
    it is no mapping or holds what canonical JSON refuses (NaN, infinity)."""
    if not isinstance(recorded, Mapping):
        return None
    try:
        return policy_digest(recorded)
    except (ValueError, TypeError):
        return None


def policy_summary(recorded: Any) -> str:
    """One line for a recorded tolerance policy: its caps, per-output caps and int8 floors."""
    if not isinstance(recorded, Mapping) or not isinstance(recorded.get("caps"), Mapping):
        return "none recorded"
    parts = []
    for scope, caps in (("", recorded["caps"]), ("outputs.", recorded.get("outputs") or {})):
        for name, cap in sorted(caps.items()) if isinstance(caps, Mapping) else []:
            if isinstance(cap, Mapping):
                parts.append(f"{scope}{name} atol {cap.get('atol')} rtol {cap.get('rtol')}")
    int8 = recorded.get("int8")
    if isinstance(int8, Mapping):
        own = int8.get("outputs")
        per_output = ", ".join(
            f"{name} >= {floor.get('min_psnr_db') if isinstance(floor, Mapping) else floor} dB"
            for name, floor in (sorted(own.items()) if isinstance(own, Mapping) else [])
        )
        parts.append(
            f"int8 codes >= {int8.get('min_code_agreement')}, argmax >= {int8.get('min_argmax_agreement')}, "
            f"PSNR >= {int8.get('min_psnr_db')} dB" + (f" ({per_output})" if per_output else "")
        )
    return "; ".join(parts)


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
    client: RegistryClient,
    subject_digest: str,
    exp_hash: str | None = None,
    trusted_key: Path | None = None,
    identity: BundleIdentity | None = None,
) -> list[Evidence]:
    """Every evidence referrer of the bundle manifest ``subject_digest`` that is about it, oldest first;
    those not bound to its content (``identity``, read from the registry when not given) carry the reason
    in :attr:`Evidence.problem`. ``exp_hash``, when given, is the bundle's verified name."""
    if identity is None:
        identity = bundle_identity(client, subject_digest)
    if exp_hash is not None:
        identity = dataclasses.replace(identity, exp_hash=exp_hash)
    out = []
    trusted_id = None
    if trusted_key is not None:
        from conv2d_bundle.bundle.signing import public_key_id

        trusted_id = public_key_id(trusted_key)
    for descriptor in _referrer_descriptors(client, subject_digest):
        try:
            out.append(_read_one(client, descriptor["digest"], identity, trusted_key, trusted_id))
        except RegistryError as exc:
            log.warning("ignoring referrer %s: %s", descriptor["digest"], exc)
    return sorted(out, key=lambda e: (e.target, str(e.report.get("finished_at")), e.digest))


def _read_one(
    client: RegistryClient,
    digest: str,
    identity: BundleIdentity,
    trusted_key: Path | None,
    trusted_id: str | None,
) -> Evidence:
    got = client.get_manifest(digest)
    if got is None or _sha256(got[0]) != digest:
        raise RegistryError("manifest missing or not matching its digest")
    manifest = _json_object(got[0], "the referrer manifest")
    subject = manifest.get("subject")
    if not isinstance(subject, dict) or subject.get("digest") != identity.oci_digest:
        raise RegistryError("its subject is another manifest")
    layers = [
        layer
        for layer in manifest.get("layers") or []
        if isinstance(layer, dict) and layer.get("mediaType") == DSSE_MEDIA_TYPE
    ]
    if len(layers) != 1 or not isinstance(layers[0].get("digest"), str):
        raise RegistryError("no DSSE envelope layer")
    blob = client.fetch_blob(layers[0]["digest"])
    if _sha256(blob) != layers[0]["digest"]:
        raise RegistryError("the envelope blob does not match its digest")
    env = _json_object(blob, "the envelope")
    if env.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
        raise RegistryError(f"the envelope's payloadType is {env.get('payloadType')!r}, not in-toto")
    try:
        payload = base64.b64decode(str(env.get("payload", "")), validate=True)
    except ValueError as exc:
        raise RegistryError("the envelope's payload is not base64") from exc
    stmt = _json_object(payload, "the statement")
    if stmt.get("_type") != STATEMENT_TYPE or stmt.get("predicateType") != PREDICATE_TYPE:
        raise RegistryError("not a conv2d validation-report statement")
    subjects = stmt.get("subject")
    named = [
        (s.get("name"), s["digest"].get("sha256"))
        for s in (subjects if isinstance(subjects, list) else [])
        if isinstance(s, dict) and isinstance(s.get("digest"), dict)
    ]
    if not any(
        d == identity.oci_digest.removeprefix("sha256:") for name, d in named if name != CONTENT_SUBJECT
    ):
        raise RegistryError("the statement is about another bundle")
    report = stmt.get("predicate")
    if not isinstance(report, dict):
        raise RegistryError("the statement holds no report")
    annotations = manifest.get("annotations")
    target = annotations.get(TARGET) if isinstance(annotations, dict) else None
    target = target if isinstance(target, str) else report.get("target")
    problem = report_binding_problem(report, target, identity)
    if problem is None and (CONTENT_SUBJECT, identity.content_digest.removeprefix("sha256:")) not in named:
        problem = "the signed statement does not name the bundle's content digest"
    signatures = [sig for sig in env.get("signatures") or [] if isinstance(sig, dict)]
    keyids = [str(sig.get("keyid")) for sig in signatures]
    trusted = None
    if trusted_key is not None:
        signed = pae(IN_TOTO_PAYLOAD_TYPE, payload)
        trusted = any(
            sig.get("keyid") == trusted_id and _verifies(trusted_key, sig, signed) for sig in signatures
        )
    return Evidence(digest, str(target), report, keyids, trusted, problem)


def _verifies(public_key: Path, sig: dict[str, Any], signed: bytes) -> bool:
    """Whether the DSSE signature ``sig`` verifies over ``signed`` with ``public_key``."""
    from conv2d_bundle.bundle.signing import verify_bytes

    try:
        raw = base64.b64decode(str(sig.get("sig", "")), validate=True)
    except ValueError:
        return False
    return verify_bytes(public_key, raw, signed)


def check_required(evidence: list[Evidence], targets: list[str], gate: EvidenceGate) -> dict[str, str]:
    """target -> why it lacks evidence, for each required target that has no report that counts under
    ``gate``: one phrase per report (``<host>: <reason>; <reason>``), reports separated by `` | ``."""
    missing = {}
    for target in targets:
        mine = [e for e in evidence if e.target == target]
        if not mine:
            missing[target] = "no evidence attached"
            continue
        reasons = [e.shortfalls(gate) for e in mine]
        if any(not r for r in reasons):
            continue
        missing[target] = " | ".join(
            f"{e.environment.get('host')}: {'; '.join(r)}" for e, r in zip(mine, reasons, strict=True)
        )
    return missing


def accepted(evidence: list[Evidence], target: str, gate: EvidenceGate) -> list[Evidence]:
    """The reports that count as evidence for ``target`` under ``gate``."""
    return [e for e in evidence if e.target == target and not e.shortfalls(gate)]
