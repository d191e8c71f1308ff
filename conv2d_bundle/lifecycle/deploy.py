"""Deploy a bundle: verify it for its target, then copy it to a local directory or to ``host:path``.

Validate for the target first and refuse a failing bundle
(``force`` overrides), then copy. A local copy goes to ``<dest>/.tmp-deploy-*``, its manifest is verified
there, and only then is it renamed to ``<dest>/<exp_hash>``: no half-copied bundle ever has the final name.
A remote destination works the same way over ssh (``remote.Remote``: rsync into a temporary name, compared
with the bundle, then ``mv``); the bundle's sealed layout is the deployment unit, and the device can re-verify
with ``conv2d pack verify`` or ``pytest checks``. Each deployment is recorded in
``<artifacts>/.conv2d/deployments.json`` so that ``clean`` keeps deployed bundles until ``undeploy`` forgets
them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conv2d_bundle.bundle.store import Bundle, is_bundle_dir
from conv2d_bundle.errors import (
    AmbiguousBundleError,
    BundleError,
    BundleIntegrityError,
    BundleNotFoundError,
    ValidationFailed,
)
from conv2d_bundle.lifecycle import retention as lifecycle
from conv2d_bundle.lifecycle.remote import Remote, default_ssh

DEPLOY_PREFIX = ".tmp-deploy-"
_REMOTE = re.compile(r"^(?P<host>[^/:\s]+):(?P<path>.*)$")


@dataclass
class DeployResult:
    exp_hash: str
    destination: str
    target: str
    verified: bool | None  # whether the checks passed (False when --force deployed past a failure)
    command: list[str] | None = None  # the rsync command for a remote destination (into its staging name)
    already_present: bool = False
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "exp_hash": self.exp_hash,
            "destination": self.destination,
            "target": self.target,
            "verified": self.verified,
            "command": self.command,
            "already_present": self.already_present,
            "dry_run": self.dry_run,
            "errors": self.errors,
        }


def parse_destination(to: str) -> tuple[str | None, str]:
    """(host, path) for ``[user@]host:path``; (None, path) for a local directory."""
    m = _REMOTE.match(to)
    if m and not Path(to).exists():
        return m["host"], m["path"] or "."
    return None, to


def remote_for(to: str, ssh: str | None = None) -> Remote | None:
    """The :class:`Remote` for a ``[user@]host:path`` destination; None for a local directory."""
    host, path = parse_destination(to)
    return None if host is None else Remote(host, path, ssh or default_ssh())


def verify_for_target(bundle: Bundle, target: str, profile: str = "default") -> tuple[bool, list[str]]:
    """Run the bundle's checks for ``target`` in this process: (passed, what failed or did not run). A pass
    counts only for the bytes it verified: the report's content digest must be the bundle's (as its
    MANIFEST.json says now, which the copy is then checked against)."""
    from conv2d_bundle.verify.runner import run_pytest
    from conv2d_bundle.verify.verdict import bound_verdict

    run = run_pytest(bundle.bundle_dir, target, profile=profile)
    if run.interrupted:
        raise KeyboardInterrupt
    if target not in run.reports:
        raise BundleError(
            f"the checks could not run (pytest exit {run.exit_code}): {run.output.strip()[-300:]}"
        )
    digest = bundle.content_digest_or_none()
    if digest is None:
        return False, ["MANIFEST.json cannot be read: nothing to bind the verdict to"]
    verdict = bound_verdict(
        run.reports[target], target=target, content_digest=digest, exit_code=run.exit_code
    )
    return verdict.passed, [*verdict.errors, *(f"{verdict.status}: {r}" for r in verdict.reasons)]


def deploy(
    bundle: Bundle,
    to: str,
    *,
    target: str = "general",
    force: bool = False,
    dry_run: bool = False,
    profile: str = "default",
    artifacts_dir: Path | None = None,
    now: str | None = None,
    ssh: str | None = None,
) -> DeployResult:
    """Verify ``bundle`` for ``target`` and copy it to ``to`` (a local directory or ``host:path``)."""
    remote = remote_for(to, ssh)
    path = parse_destination(to)[1]
    final = (
        remote.spec(remote.final(bundle.exp_hash)) if remote else str(Path(path).absolute() / bundle.exp_hash)
    )
    result = DeployResult(bundle.exp_hash, final, target, verified=None, dry_run=dry_run)
    if remote is not None:
        result.command = remote.rsync_command(bundle.bundle_dir, remote.staging(bundle.exp_hash))
    passed, errors = verify_for_target(bundle, target, profile)
    result.verified, result.errors = passed, errors
    if not passed and not force:
        shown = "; ".join(errors[:3]) + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")
        refused = "a deploy would be refused" if dry_run else "not deploying it"
        raise ValidationFailed(
            f"{bundle.exp_hash} fails its {target} checks, {refused} (--force to override): {shown}"
        )
    if dry_run:  # verified as a deploy would; nothing copied, nothing recorded
        result.already_present = remote is None and _intact_copy_at(
            bundle, Path(path) / bundle.exp_hash, force
        )
        return result
    if remote is not None:
        result.already_present = remote.deploy(bundle.bundle_dir, bundle.exp_hash, force=force)
    else:
        result.already_present = _copy_local(bundle, Path(path), force)
    from conv2d_bundle.bundle.provenance import utc_now

    lifecycle.record_deployment(
        Path(artifacts_dir) if artifacts_dir is not None else bundle.bundle_dir.parent,
        {
            "exp_hash": bundle.exp_hash,
            "content_digest": bundle.content_digest_or_none(),
            "destination": final,
            "target": target,
            "verified": passed,
            "forced": bool(force and not passed),
            "deployed_at": now or utc_now(),
        },
    )
    return result


def _intact_copy_at(bundle: Bundle, final: Path, force: bool) -> bool:
    """Whether an intact copy of ``bundle`` is at ``final``; a damaged one is refused unless ``force``."""
    if final.exists() and not force and not final.is_symlink():
        diff = bundle.manifest.verify(final)
        if diff.ok:
            return True
        raise BundleIntegrityError(
            f"{final} exists and does not match the bundle ({diff.describe()}); --force replaces it"
        )
    return False


def _copy_local(bundle: Bundle, dest: Path, force: bool) -> bool:
    """Copy into ``dest/<exp_hash>`` through a verified temporary copy; True if an intact copy was already there."""
    final = dest / bundle.exp_hash
    if _intact_copy_at(bundle, final, force):
        return True
    try:
        dest.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{DEPLOY_PREFIX}{bundle.exp_hash}-", dir=dest))
    except OSError as exc:
        raise BundleError(f"cannot write to {dest}: {exc.strerror}") from exc
    try:
        staged = work / bundle.exp_hash
        shutil.copytree(bundle.bundle_dir, staged, symlinks=True)
        os.chmod(staged, 0o755)
        diff = bundle.manifest.verify(staged)
        if not diff.ok:
            raise BundleIntegrityError(f"the copy at {dest} does not match the manifest: {diff.describe()}")
        if final.exists() or final.is_symlink():  # --force over a damaged copy: moved aside, removed below
            os.rename(final, work / "replaced")
        os.rename(staged, final)
    except OSError as exc:
        raise BundleError(f"cannot copy the bundle to {dest}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return False


# ------------------------------------------------------------------------------------------ undeploy


def undeploy(
    artifacts_dir: Path, ref: str, *, to: str | None = None, remove: bool = False, ssh: str | None = None
) -> list[dict[str, Any]]:
    """Forget the recorded deployments of the bundle ``ref`` (a hash prefix of a deployed bundle; the bundle itself
    may already be gone), all of them or the one at ``to``. With ``remove`` the deployed copy is deleted first;
    a record is forgotten only once its copy is gone. The forgotten records, each with ``removed``: True (deleted),
    False (nothing was there) or None (not asked)."""
    records = lifecycle.deployments(artifacts_dir)
    exp_hash = _deployed_hash(artifacts_dir, records, ref)
    entries = [d for d in records if d.get("exp_hash") == exp_hash]
    if to is not None:
        wanted = _destination_forms(to, exp_hash)
        entries = [d for d in entries if str(d.get("destination")) in wanted]
        if not entries:
            recorded = ", ".join(
                sorted({str(d.get("destination")) for d in records if d.get("exp_hash") == exp_hash})
            )
            raise BundleNotFoundError(
                f"{exp_hash} is not recorded as deployed to {to} (recorded: {recorded})"
            )
    forgotten: list[dict[str, Any]] = []
    try:
        for d in entries:
            removed = _remove_copy(str(d.get("destination")), exp_hash, ssh) if remove else None
            forgotten.append({**d, "removed": removed})
    finally:
        done = [d for d in entries if any(f["destination"] == d.get("destination") for f in forgotten)]
        lifecycle.forget_deployments(artifacts_dir, done)
    return forgotten


def _deployed_hash(artifacts_dir: Path, records: list[dict[str, Any]], ref: str) -> str:
    prefix = ref.strip().lower()
    hashes = sorted({str(d.get("exp_hash")) for d in records if str(d.get("exp_hash")).startswith(prefix)})
    if len(prefix) < 4 or not hashes:
        where = Path(artifacts_dir) / lifecycle.STATE_DIR / lifecycle.DEPLOYMENTS_FILE
        raise BundleNotFoundError(f"{ref!r}: no deployment of it is recorded in {where}")
    if len(hashes) > 1:
        raise AmbiguousBundleError(f"{ref!r} is ambiguous among deployed bundles: {', '.join(hashes)}")
    return hashes[0]


def _destination_forms(to: str, exp_hash: str) -> set[str]:
    """How a deployment of ``exp_hash`` to ``to`` may be recorded: the bundle's path there, or (records written
    before the final path was recorded) the destination as given."""
    remote = remote_for(to)
    if remote is not None:
        base = remote.spec(remote.directory.rstrip("/"))
        return {to, base, remote.spec(remote.final(exp_hash))}
    local = Path(to).absolute()
    return {to, str(local), str(local / exp_hash)} | (
        {str(local.parent)} if local.name == exp_hash else set()
    )


def _remove_copy(destination: str, exp_hash: str, ssh: str | None) -> bool:
    """Delete the deployed copy recorded as ``destination``; whether one was there."""
    remote = remote_for(destination, ssh)
    if remote is not None:
        directory = remote.directory
        if directory.rstrip("/").rsplit("/", 1)[-1] == exp_hash:
            directory = directory.rstrip("/").rsplit("/", 1)[0] if "/" in directory.rstrip("/") else "."
        return Remote(remote.host, directory, remote.ssh).remove(exp_hash)
    path = Path(destination)
    copy = path if path.name == exp_hash else path / exp_hash
    if copy.is_symlink():
        copy.unlink()
        return True
    if not copy.exists():
        return False
    if not is_bundle_dir(copy):
        raise BundleError(f"{copy} is not a bundle; not removing it (undeploy without --remove forgets it)")
    try:
        shutil.rmtree(copy)
    except OSError as exc:
        raise BundleError(f"cannot remove {copy}: {exc.strerror or exc}") from exc
    return True
