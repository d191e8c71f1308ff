"""``conv2d pack push|pull`` and the ``oci://`` side of ``verify`` and ``show``: bundles in an OCI registry.

Registry options (shared): ``--username`` with ``--password-stdin`` (else ``~/.docker/config.json``),
``--ca-file`` for a private CA, ``--insecure`` for plain HTTP to a non-loopback registry. Errors are
:class:`RegistryError` (one line, exit 2); a missing piece of required evidence is ``ValidationFailed`` (1).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from conv2d_bundle.cli.options import artifacts_option
from conv2d_bundle.errors import RegistryError

F = TypeVar("F", bound=Callable[..., Any])


def registry_options(f: F) -> F:
    for decorate in reversed(
        (
            click.option(
                "--username", help="registry user (with --password-stdin); default: ~/.docker/config.json"
            ),
            click.option("--password-stdin", is_flag=True, help="read the registry password from stdin"),
            click.option(
                "--ca-file",
                type=click.Path(path_type=Path),
                help="CA certificate (PEM) of a private registry",
            ),
            click.option(
                "--insecure", is_flag=True, help="allow plain HTTP to a registry that is not on loopback"
            ),
        )
    ):
        f = decorate(f)
    return f


@dataclass(frozen=True)
class RegistryAccess:
    username: str | None = None
    password_stdin: bool = False
    ca_file: Path | None = None
    insecure: bool = False

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> RegistryAccess:
        return cls(
            kwargs.pop("username", None),
            kwargs.pop("password_stdin", False),
            kwargs.pop("ca_file", None),
            kwargs.pop("insecure", False),
        )

    def client(self, ref: Any) -> Any:
        from conv2d_bundle.oci import credentials
        from conv2d_bundle.oci.client import RegistryClient

        password = None
        if self.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        creds = credentials.resolve(ref.registry, self.username, password)
        return RegistryClient(ref, creds, ca_file=self.ca_file, insecure=self.insecure)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@click.command()
@click.argument("bundle_ref")
@click.argument("destination", metavar="oci://HOST[:PORT]/REPO[:TAG]")
@artifacts_option
@registry_options
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def push(bundle_ref: str, destination: str, output_dir: Path, as_json: bool, **kwargs: Any) -> None:
    """Push BUNDLE to a registry as one OCI artifact; print its manifest digest. Only blobs the registry
    lacks are sent: re-pushing an unchanged model sends no weight bytes."""
    from conv2d_bundle.bundle.store import get_bundle
    from conv2d_bundle.lifecycle.retention import human_bytes
    from conv2d_bundle.oci.artifact import push_bundle
    from conv2d_bundle.oci.reference import parse_ref

    access = RegistryAccess.from_kwargs(kwargs)
    ref = parse_ref(destination)
    bundle = get_bundle(output_dir, bundle_ref)
    with access.client(ref) as client:
        result = push_bundle(client, bundle.bundle_dir, ref)
    s = result.stats
    if as_json:
        _echo_json(
            {
                "digest": result.digest,
                "reference": str(result.ref),
                "exp_hash": result.exp_hash,
                "blobs_sent": s.blobs_sent,
                "blobs_skipped": s.blobs_skipped,
                "bytes_sent": s.bytes_sent,
                "bytes_skipped": s.bytes_skipped,
            }
        )
        return
    click.echo(result.digest)
    click.echo(
        f"pushed {result.exp_hash} to {result.ref}: sent {s.blobs_sent} blobs ({human_bytes(s.bytes_sent)}), "
        f"{s.blobs_skipped} already there ({human_bytes(s.bytes_skipped)} not sent)",
        err=True,
    )


@click.command()
@click.argument("source", metavar="oci://HOST[:PORT]/REPO[:TAG|@DIGEST]")
@artifacts_option
@registry_options
@click.option(
    "--force", is_flag=True, help="replace a bundle of the same EXP_HASH whose content differs (else refused)"
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def pull(source: str, output_dir: Path, force: bool, as_json: bool, **kwargs: Any) -> None:
    """Pull a bundle into the artifacts directory; every blob, MANIFEST.json and the bundle's identity are
    verified before it is moved into place (a bad pull leaves nothing). A bundle of the same EXP_HASH with other
    content is not touched (exit 2, naming both content digests and the files that differ) unless --force,
    which replaces it, its validation reports included."""
    from conv2d_bundle.oci.artifact import pull_bundle
    from conv2d_bundle.oci.reference import parse_ref

    access = RegistryAccess.from_kwargs(kwargs)
    ref = parse_ref(source)
    with access.client(ref) as client:
        result = pull_bundle(client, ref, output_dir, force=force)
    if as_json:
        _echo_json(
            {
                "exp_hash": result.exp_hash,
                "bundle_dir": str(result.bundle_dir.absolute()),
                "digest": result.digest,
                "already_existed": result.already_existed,
                "content_digest": result.content_digest,
                "replaced_content_digest": result.replaced.old if result.replaced else None,
            }
        )
        return
    if result.already_existed:
        state = "already present (pull verified, nothing changed)"
    else:
        state = "replaced" if result.replaced else "pulled"
    click.echo(f"Bundle {state}: {result.exp_hash}")
    click.echo(f"  From: {result.ref}")
    click.echo(f"  Path: {result.bundle_dir}")
    click.echo(f"  Content: {result.content_digest}")
    if result.replaced:
        click.echo(f"  {result.replaced.describe()}")


# ------------------------------------------------------------------------------- verify / show oci://


class RemoteBundle:
    """A bundle in a registry, for ``verify`` and ``show``: its manifest digest, cache copy and evidence."""

    def __init__(self, text: str, access: RegistryAccess) -> None:
        from conv2d_bundle.oci.reference import parse_ref

        self.ref = parse_ref(text)
        self.client = access.client(self.ref)
        self._subject: dict[str, Any] | None = None
        self.exp_hash: str | None = None

    def __enter__(self) -> RemoteBundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)

    def subject(self) -> dict[str, Any]:
        """The bundle manifest's descriptor (fetched and checked once)."""
        if self._subject is None:
            from conv2d_bundle.oci.artifact import EXP_HASH, fetch_manifest
            from conv2d_bundle.oci.client import OCI_MANIFEST

            digest, manifest = fetch_manifest(self.client, self.ref)
            self.ref = self.ref.with_digest(digest)  # from here on, exactly this manifest
            got = self.client.get_manifest(digest)
            if got is None:
                raise RegistryError(f"{self.ref}: the manifest vanished from the registry")
            self._subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(got[0])}
            self.exp_hash = (manifest.get("annotations") or {}).get(EXP_HASH)
        return self._subject

    def pull_to_cache(self) -> Path:
        from conv2d_bundle.oci.cache import pull_cached

        cached = pull_cached(self.client, self.ref)
        self.exp_hash = cached.exp_hash
        self.ref = self.ref.with_digest(cached.digest)  # attest what was verified, even if the tag moves
        how = "cached copy" if cached.reused else "pulled into the cache"
        click.echo(
            f"{self.ref}: {cached.digest}, content {cached.content_digest} ({how}: {cached.bundle_dir})",
            err=True,
        )
        return cached.bundle_dir

    def require(
        self,
        targets: list[str],
        trusted_key: Path | None,
        *,
        tolerance_policy: Path | None = None,
        require_strict: bool = False,
        allow_unsigned: bool = False,
    ) -> None:
        """``--require-evidence``: one line per target, ``ok`` or ``MISSING (<why>)``; ValidationFailed unless
        each target has a report that counts under the gate (:class:`~conv2d_bundle.verify.evidence.EvidenceGate`:
        bound to this bundle's content, passed, no looser policy than ``tolerance_policy`` or the built-in
        one, strict where asked, signed by ``trusted_key`` or accepted by ``allow_unsigned``)."""
        from conv2d_bundle.errors import ValidationFailed
        from conv2d_bundle.parity.tolerance import TolerancePolicy
        from conv2d_bundle.verify.evidence import (
            EvidenceGate,
            accepted,
            bundle_identity,
            check_required,
            list_evidence,
        )

        policy = TolerancePolicy.load(tolerance_policy) if tolerance_policy else TolerancePolicy()
        gate = EvidenceGate(policy, require_strict, trusted_key is not None, allow_unsigned)
        digest = self.subject()["digest"]
        identity = bundle_identity(self.client, digest)
        evidence = list_evidence(self.client, digest, self.exp_hash, trusted_key, identity)
        missing = check_required(evidence, targets, gate)
        for target in targets:
            if target in missing:
                click.echo(f"{self.ref} --require-evidence {target}: MISSING ({missing[target]})")
                continue
            unchecked = [] if gate.require_trusted else accepted(evidence, target, gate)
            note = "; ".join(
                f"{e.digest} from {e.environment.get('host')} "
                + ("(unsigned)" if not e.keyids else "(signature not checked: no --trusted-key)")
                for e in unchecked
            )
            suffix = f", on evidence no key vouches for (--allow-unsigned): {note}" if note else ""
            click.echo(f"{self.ref} --require-evidence {target}: ok{suffix}")
        if missing:
            raise ValidationFailed(
                f"{digest} (content {identity.content_digest}): no evidence that counts"
                + (" signed by the trusted key" if trusted_key else "")
                + f" for {', '.join(sorted(missing))}"
            )

    def attest(self, reports: dict[str, dict[str, Any]], key: Path | None) -> None:
        from conv2d_bundle.verify.evidence import attach

        subject = self.subject()
        for name, report in reports.items():
            digest = attach(self.client, self.ref, subject, report, key)
            signed = " (signed)" if key else ""
            click.echo(
                f"  evidence{signed}: --target {name} report attached to {subject['digest']} as {digest}"
            )


def show_remote(text: str, access: RegistryAccess, as_json: bool, trusted_key: Path | None = None) -> None:
    """The evidence attached to a bundle in a registry, per target: the verdict (or why it is not verified
    for this bundle's content), host, signature, strict mode, check profile, tolerance policy, content."""
    from conv2d_bundle.cli.progress import print_table
    from conv2d_bundle.verify.evidence import (
        bundle_identity,
        list_evidence,
        policy_summary,
        recorded_policy_digest,
    )

    with RemoteBundle(text, access) as remote:
        subject = remote.subject()
        identity = bundle_identity(remote.client, subject["digest"])
        evidence = list_evidence(remote.client, subject["digest"], remote.exp_hash, trusted_key, identity)
    by_target: dict[str, list[Any]] = {}
    for e in evidence:
        by_target.setdefault(e.target, []).append(e)
    if as_json:
        _echo_json(
            {
                "reference": str(remote.ref),
                "digest": subject["digest"],
                "content_digest": identity.content_digest,
                "exp_hash": remote.exp_hash,
                "evidence": {t: [e.as_json() for e in es] for t, es in sorted(by_target.items())},
            }
        )
        return
    click.echo(
        f"{remote.ref}  {subject['digest']}  (bundle {remote.exp_hash}, content {identity.content_digest})"
    )
    rows = []
    policies: dict[str, str] = {}
    for target, items in sorted(by_target.items()):
        for e in items:
            j = e.as_json()
            result = e.verdict.describe()
            signed = "yes" if j["signed_by"] else "no"
            if e.trusted is not None:
                signed = "trusted key" if e.trusted else f"{signed}, NOT by the trusted key"
            figures = recorded_policy_digest(e.policy)  # the digest of what it records, not what it claims
            policy = "none" if figures is None else figures[:19]
            if figures is not None:
                against = j["tolerance_policy"]["against_builtin"]
                policies.setdefault(figures, policy_summary(e.policy) + (f" -- {against}" if against else ""))
                if not j["tolerance_policy"]["digest_matches"]:
                    policy += f" (recorded digest {str(j['tolerance_policy']['digest'])[:19]} does not match)"
            content = j["content_digest"]
            rows.append(
                [
                    target,
                    result if e.verdict.status != "failed" else result.upper(),
                    f"{j['host']} ({j['system']} {j['machine']})",
                    j["finished_at"],
                    signed,
                    "yes" if j["strict_targets"] is True else "no",
                    j["check_profile"] or "?",
                    policy,
                    "this bundle" if content == identity.content_digest else (content or "none")[:19],
                ]
            )
    if not rows:
        click.echo("  no evidence attached (conv2d pack verify oci://... --target T --attest)")
        return
    print_table(
        ["target", "result", "host", "finished", "signed", "strict", "profile", "policy", "content"],
        rows,
        title="Evidence",
    )
    for digest, summary in sorted(policies.items()):
        click.echo(f"  policy {digest}: {summary}")


COMMANDS = (push, pull)
