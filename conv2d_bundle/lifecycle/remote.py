"""A bundle on another machine, ``[user@]host:path``, reached with rsync over ssh.

A deployment copies the bundle into ``<path>/.tmp-deploy-<exp_hash>/`` (rsync; a rerun after an interrupted copy
sends only what is missing), checks that copy against the bundle file by file (rsync ``--checksum`` in dry-run
mode: any difference or leftover file is listed), and only then renames it to ``<path>/<exp_hash>`` with ``mv``
over ssh. An interrupted or failed copy never sits under the final name. The device needs ``rsync`` and a POSIX
``sh``, nothing of ours.

The remote shell is ``ssh`` unless ``$RSYNC_RSH`` (rsync's own variable) or ``--ssh`` says otherwise, e.g.
``--ssh "ssh -p 2222 -i ~/.ssh/board"``; hosts, users and keys otherwise come from ``~/.ssh/config``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conv2d_bundle.errors import BundleError, BundleIntegrityError

STAGING_PREFIX = ".tmp-deploy-"
#: not part of the sealed bundle (the manifest does not cover it): each deploy writes fresh reports
_UNSEALED = "/validation/"
#: ssh's own exit status when it cannot connect or authenticate
_SSH_FAILED = 255


def default_ssh() -> str:
    return os.environ.get("RSYNC_RSH") or "ssh"


@dataclass(frozen=True)
class Remote:
    """A directory ``path`` on ``host`` (``[user@]host`` as ssh takes it), reached with the ``ssh`` command."""

    host: str
    path: str
    ssh: str = "ssh"

    @property
    def directory(self) -> str:
        """``path`` as the remote shell and rsync both read it: ``~/x`` and ``~`` relative to the login directory."""
        p = self.path.strip()
        if p in ("", "~", "~/"):
            return "."
        if p.startswith("~/"):
            p = p[2:]
        return p.rstrip("/") or "/"

    def final(self, exp_hash: str) -> str:
        return f"{self.directory.rstrip('/')}/{exp_hash}"

    def staging(self, exp_hash: str) -> str:
        return f"{self.directory.rstrip('/')}/{STAGING_PREFIX}{exp_hash}"

    def spec(self, remote_path: str) -> str:
        """``host:remote_path``, as rsync and the deployment record write it."""
        return f"{self.host}:{remote_path}"

    # ----------------------------------------------------------------------------------------- commands

    def rsync_command(self, source: Path, remote_path: str, *extra: str) -> list[str]:
        return ["rsync", "-a", "--delete", *extra, "-e", self.ssh, f"{source}/", f"{self.spec(remote_path)}/"]

    def shell_command(self, script: str) -> list[str]:
        """ssh HOST sh -c SCRIPT: the script runs in a POSIX shell whatever the login shell is."""
        return [*shlex.split(self.ssh), self.host, f"sh -c {shlex.quote(script)}"]

    def run(self, command: list[str], what: str) -> str:
        """Run ``command`` (ssh or rsync), its stdout; a failure is one BundleError naming the host."""
        if shutil.which(command[0]) is None:
            raise BundleError(f"{command[0]} is not installed on this machine; install it or copy an archive")
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return proc.stdout
        last = (proc.stderr.strip().splitlines() or [""])[-1][:300]
        if proc.returncode == _SSH_FAILED and command[0] != "rsync":
            raise BundleError(f"cannot reach {self.host} over ssh ({what}): {last}")
        raise BundleError(f"{what} on {self.host} failed (exit {proc.returncode}): {last}")

    def differences(self, source: Path, remote_path: str) -> list[str]:
        """Files that differ between ``source`` and ``host:remote_path`` (content compared by checksum; extra
        files on the remote side count), ``validation/`` left out; rsync's itemized lines, [] when identical."""
        out = self.run(
            self.rsync_command(
                source, remote_path, "--dry-run", "--checksum", "--itemize-changes", f"--exclude={_UNSEALED}"
            ),
            f"comparing {remote_path}",
        )
        return [line for line in out.splitlines() if line.strip() and not _only_directory_times(line)]

    # --------------------------------------------------------------------------------------- operations

    def exists(self, remote_path: str) -> bool:
        """Whether ``remote_path`` is a directory on the host (its parent directory is created on the way)."""
        parent = remote_path.rsplit("/", 1)[0] if "/" in remote_path else "."
        script = f"mkdir -p -- {shlex.quote(parent or '/')} && if [ -d {shlex.quote(remote_path)} ]; then echo yes; fi"
        return self.run(self.shell_command(script), f"preparing {parent}").strip() == "yes"

    def deploy(self, source: Path, exp_hash: str, *, force: bool) -> bool:
        """Copy ``source`` to ``<path>/<exp_hash>`` through the staging name; True if an intact copy was already
        there (nothing copied). A differing copy under the final name is refused unless ``force``."""
        final, staging = self.final(exp_hash), self.staging(exp_hash)
        if self.exists(final) and not force:
            diff = self.differences(source, final)
            if not diff:
                return True
            raise BundleIntegrityError(
                f"{self.spec(final)} exists and does not match the bundle ({_describe(diff)}); --force replaces it"
            )
        self.run(self.rsync_command(source, staging), f"copying to {staging}")
        diff = self.differences(source, staging)
        if diff:
            raise BundleIntegrityError(
                f"the copy at {self.spec(staging)} does not match the bundle ({_describe(diff)}); not renamed"
            )
        self.run(
            self.shell_command(_rename_script(staging, final, exp_hash)), f"renaming {staging} to {final}"
        )
        return False

    def remove(self, exp_hash: str) -> bool:
        """Remove ``<path>/<exp_hash>`` (and what an interrupted deploy left under the staging name); whether the
        copy was there."""
        final, staging = shlex.quote(self.final(exp_hash)), shlex.quote(self.staging(exp_hash))
        script = f"rm -rf -- {staging}; if [ -d {final} ]; then rm -rf -- {final} && echo removed; fi"
        return self.run(self.shell_command(script), f"removing {self.final(exp_hash)}").strip() == "removed"


def _rename_script(staging: str, final: str, exp_hash: str) -> str:
    """Move a copy already under ``final`` aside (only --force gets here with one), rename the staged copy into
    place, then delete the old one: ``final`` is never a half copy."""
    s, f = shlex.quote(staging), shlex.quote(final)
    aside = shlex.quote(f"{final.rsplit('/', 1)[0]}/.tmp-replaced-{exp_hash}")
    return (
        f"set -e; rm -rf -- {aside}; if [ -e {f} ] || [ -L {f} ]; then mv -- {f} {aside}; fi; "
        f"mv -- {s} {f}; rm -rf -- {aside}"
    )


def _only_directory_times(line: str) -> bool:
    """rsync's ``.d..t......`` lines: a directory whose modification time alone differs (not a content change)."""
    flags = line.split(" ", 1)[0]
    return flags.startswith(".d") and set(flags[2:]) <= {".", "t"}


def _describe(diff: list[str]) -> str:
    names = [line.split(" ", 1)[-1].strip() for line in diff]
    shown = ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")
    return f"{len(names)} file(s) differ: {shown}"
