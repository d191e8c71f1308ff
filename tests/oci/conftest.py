"""A real OCI registry for the tests: Debian's ``docker-registry`` (CNCF distribution 2.8), started once per
test process on a free loopback port with its storage in a temporary directory, plain HTTP.

`bash .ci/run` installs the package when it is missing; a machine without
it fails these tests with that hint rather than skipping them, so a green run always means a real registry.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:PORT
    storage: Path
    process: subprocess.Popen[bytes]

    def ref(self, path: str) -> str:
        return f"oci://{self.host}/{path}"

    def blob_file(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (to corrupt it on purpose)."""
        hex_ = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def tags(self, repository: str) -> list[str]:
        resp = httpx.get(f"http://{self.host}/v2/{repository}/tags/list", timeout=10)
        resp.raise_for_status()
        return sorted(resp.json().get("tags") or [])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def registry_executable() -> str:
    exe = shutil.which("docker-registry") or shutil.which("registry")
    if exe is None:
        pytest.fail(
            "docker-registry is not installed: `bash .ci/run` installs it (apt-get install docker-registry)"
        )
    return exe


def start_registry(root: Path, extra_http: str = "", auth: str = "", scheme: str = "http") -> Registry:
    """``docker-registry serve`` on a free port, answering ``GET /v2/`` before this returns."""
    exe = registry_executable()
    for _attempt in range(3):
        port = free_port()
        storage = root / "storage"
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n{extra_http}"
            f"{auth}"
        )
        log = open(root / "registry.log", "wb")
        proc = subprocess.Popen([exe, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(f"{scheme}://127.0.0.1:{port}/v2/", timeout=1, verify=False)
                return Registry(f"127.0.0.1:{port}", storage, proc)
            except httpx.HTTPError:
                time.sleep(0.05)
        stop_registry(proc)
    pytest.fail(f"docker-registry did not start: {(root / 'registry.log').read_text()[-500:]}")


def stop_registry(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    stop_registry(reg.process)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """The environment for ``conv2d`` subprocesses: a private pull cache and no docker config."""
    env = dict(os.environ)
    env["CONV2D_CACHE"] = str(tmp_path / "cache")
    env["DOCKER_CONFIG"] = str(tmp_path / "docker")
    return env


class StallingProxy:
    """A TCP proxy to the registry that forwards client bytes until ``stall_after`` of them have passed, then
    holds the rest: a push through it hangs mid-upload, where the test kills it. ``stall_after=None``
    forwards everything."""

    def __init__(self, target_port: int, stall_after: int | None) -> None:
        self.target_port = target_port
        self.stall_after = stall_after
        self.forwarded = 0
        self.stalled = threading.Event()
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = int(self._server.getsockname()[1])
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while data := src.recv(65536):
                if counted:
                    with self._lock:
                        limit = self.stall_after
                        if limit is not None and self.forwarded + len(data) > limit:
                            data = data[: max(0, limit - self.forwarded)]
                            self.stalled.set()
                        self.forwarded += len(data)
                    if self.stalled.is_set() and self.stall_after is not None:
                        if data:
                            dst.sendall(data)
                        while not self._closing:  # hold the connection open, forward nothing more
                            time.sleep(0.05)
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._closing = True
        self._server.close()


@dataclass(frozen=True)
class SecureRegistry:
    registry: Registry
    ca_file: Path
    username: str
    password: str


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A CA-flagged certificate for 127.0.0.1 and its key, made here (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conv2d test registry")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, False, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def bcrypt_hash(password: str) -> str:
    """htpasswd needs bcrypt; the stdlib's crypt (libxcrypt) makes it ($2b$)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        crypt = pytest.importorskip(
            "crypt", reason="bcrypt for htpasswd needs the crypt module (Python < 3.13)"
        )
        # cost 4, not the default 12: distribution checks the hash on every request (~70 per push)
        return str(crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))


@pytest.fixture(scope="session")
def secure_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRegistry]:
    """A second registry: HTTPS with a self-signed certificate made here, htpasswd basic auth."""
    root = tmp_path_factory.mktemp("secure-registry")
    cert, key = self_signed_certificate(root)
    username, password = "alice", "s3cret-" + os.urandom(8).hex()
    (root / "htpasswd").write_text(f"{username}:{bcrypt_hash(password)}\n")
    reg = start_registry(
        root,
        extra_http=f"  tls:\n    certificate: {cert}\n    key: {key}\n",
        auth=f"auth:\n  htpasswd:\n    realm: conv2d-test\n    path: {root / 'htpasswd'}\n",
        scheme="https",
    )
    yield SecureRegistry(reg, cert, username, password)
    stop_registry(reg.process)
