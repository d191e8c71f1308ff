"""Deploy a bundle: verify it for its target, then copy it to a local directory or to ``host:path``.

Validate for the target first and refuse a failing bundle
(``force`` overrides), then copy. A local copy goes to ``<dest>/.tmp-deploy-*``, its manifest is verified
there, and only then is it renamed to ``<dest>/<exp_hash>``: no half-copied bundle ever has the final name.
A remote destination gets ``rsync -a -e ssh`` (the bundle's sealed layout is the deployment unit; the
device can re-verify with ``conv2d pack verify`` or ``pytest checks``). Each deployment is recorded in
``<artifacts>/.conv2d/deployments.json`` so that ``clean`` keeps deployed bundles.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conv2d_bundle import lifecycle
from conv2d_bundle.bundle import Bundle
from conv2d_bundle.errors import BundleError, BundleIntegrityError, ValidationFailed

DEPLOY_PREFIX = ".tmp-deploy-"
_REMOTE = re.compile(r"^(?P<host>[^/:\s]+):(?P<path>.*)$")


@dataclass
class DeployResult:
    exp_hash: str
    destination: str
    target: str
    verified: bool | None  # whether the checks passed (False when --force deployed past a failure)
    command: list[str] | None = None  # the rsync command for a remote destination
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


def rsync_command(bundle: Bundle, host: str, path: str) -> list[str]:
    remote = f"{host}:{path.rstrip('/') or '/'}/{bundle.exp_hash}/"
    return ["rsync", "-a", "--delete", "-e", "ssh", f"{bundle.bundle_dir}/", remote]


def verify_for_target(bundle: Bundle, target: str, profile: str = "default") -> tuple[bool, list[str]]:
    """Run the bundle's checks for ``target`` in this process: (passed, what failed or did not run)."""
    from conv2d_bundle.validation import run_pytest

    run = run_pytest(bundle.bundle_dir, target, profile=profile)
    if run.interrupted:
        raise KeyboardInterrupt
    if target not in run.reports:
        raise BundleError(
            f"the checks could not run (pytest exit {run.exit_code}): {run.output.strip()[-300:]}"
        )
    verdict = run.verdict(target)
    return verdict.passed, [*verdict.errors, *(f"incomplete: {r}" for r in verdict.reasons)]


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
) -> DeployResult:
    """Verify ``bundle`` for ``target`` and copy it to ``to`` (a local directory or ``host:path``)."""
    host, path = parse_destination(to)
    result = DeployResult(bundle.exp_hash, to, target, verified=None, dry_run=dry_run)
    if host is not None:
        result.command = rsync_command(bundle, host, path)
    passed, errors = verify_for_target(bundle, target, profile)
    result.verified, result.errors = passed, errors
    if not passed and not force:
        shown = "; ".join(errors[:3]) + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")
        refused = "a deploy would be refused" if dry_run else "not deploying it"
        raise ValidationFailed(
            f"{bundle.exp_hash} fails its {target} checks, {refused} (--force to override): {shown}"
        )
    if dry_run:  # verified as a deploy would; nothing copied, nothing recorded
        result.already_present = host is None and _intact_copy_at(bundle, Path(path) / bundle.exp_hash, force)
        return result
    if host is not None:
        _run_rsync(rsync_command(bundle, host, path))
    else:
        result.already_present = _copy_local(bundle, Path(path), force)
    from conv2d_bundle.provenance import utc_now

    lifecycle.record_deployment(
        Path(artifacts_dir) if artifacts_dir is not None else bundle.bundle_dir.parent,
        {
            "exp_hash": bundle.exp_hash,
            "destination": to if host is not None else str(Path(path).absolute() / bundle.exp_hash),
            "target": target,
            "verified": passed,
            "forced": bool(force and not passed),
            "deployed_at": now or utc_now(),
        },
    )
    return result


def _run_rsync(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise BundleError("rsync is not installed on this machine; install it or copy an archive instead")
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BundleError(
            f"{shlex.join(command)} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
        )


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
