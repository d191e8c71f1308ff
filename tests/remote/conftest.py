"""A real ssh host for the remote-deploy tests: OpenSSH's ``sshd`` started on a free loopback port with its own
host key, an authorized key made here, and an ssh client config naming it ``device``.

`bash .ci/run` installs openssh-server and rsync when they are missing; a machine without them fails these tests
with that hint rather than skipping them, so a green run always means a real ssh + rsync round trip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.oci.conftest import free_port

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SshHost:
    """``alias`` is what ``--to alias:/path`` names; ``ssh`` is the remote shell command that knows it."""

    alias: str
    ssh: str
    config: Path

    def dest(self, path: Path | str) -> str:
        return f"{self.alias}:{path}"


def _need(path: str | None, package: str) -> str:
    if path is None or not os.access(path, os.X_OK):
        pytest.fail(f"{package} is not installed: `bash .ci/run` installs it (apt-get install {package})")
    return path


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def ssh_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHost]:
    sshd = _need(SSHD if os.path.exists(SSHD) else shutil.which("sshd"), "openssh-server")
    _need(shutil.which("rsync"), "rsync")
    _need(shutil.which("ssh"), "openssh-client")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    root = tmp_path_factory.mktemp("sshd")
    _keygen(root / "host_key")
    _keygen(root / "user_key")
    shutil.copy(root / "user_key.pub", root / "authorized_keys")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    for _attempt in range(3):
        port = free_port()
        (root / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nLogLevel ERROR\n"
        )
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(root / "sshd_config")], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None and not _listening(port):
            time.sleep(0.05)
        if proc.poll() is None and _listening(port):
            break
        proc.kill()
        _, err = proc.communicate()
    else:
        pytest.fail(f"sshd did not start: {err.decode(errors='replace').strip()[-300:]}")
    config = root / "ssh_config"
    config.write_text(
        f"Host device\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {root / 'user_key'}\n"
        "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n"
        "  LogLevel ERROR\n"
    )
    host = SshHost("device", f"ssh -F {config}", config)
    try:
        check = subprocess.run(
            [*host.ssh.split(), "device", "true"], capture_output=True, text=True, timeout=30
        )
        assert check.returncode == 0, f"cannot log in to the test sshd: {check.stderr}"
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
