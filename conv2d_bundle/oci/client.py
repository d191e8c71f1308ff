"""A small OCI distribution client: what push, pull and evidence need, and nothing else.

Over httpx (not oras-py: see README "Sharing bundles" for why). Blobs are streamed in both directions, so a
256 MB weights file is never held in memory; every byte sent is counted (:class:`TransferStats`). Blob
downloads alone go through the standard library's http.client on keep-alive connections of their own
(:meth:`RegistryClient.download_blob`): httpx hands a body over in 64 KiB pieces, each one a trip through h11,
httpcore and httpx; ``readinto`` fills a reused 1 MiB buffer with no copy and no per-piece Python at all. Same
TLS context, credentials, redirects (credentials only to the registry's own origin) and ``*_proxy`` variables.

Transport: HTTPS, verified against the system store or ``--ca-file``. Plain HTTP only for a loopback
registry or with ``insecure=True``: HTTPS is tried first and plain HTTP used only if the TLS handshake itself
fails. Auth: HTTP Basic, or the Bearer token flow (``WWW-Authenticate: Bearer realm=...``) that most hosted
registries use. Credentials live only in request headers: no message, log line or report ever holds them.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import httpx

from conv2d_bundle.errors import RegistryError
from conv2d_bundle.oci.connections import ConnectionPool
from conv2d_bundle.oci.credentials import Credentials
from conv2d_bundle.oci.reference import OciRef

log = logging.getLogger("conv2d_bundle.oci")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_CHUNK = 1 << 20
_CONNECT_TIMEOUT, _READ_TIMEOUT = 30.0, 300.0
_TIMEOUT = httpx.Timeout(_CONNECT_TIMEOUT, read=_READ_TIMEOUT)
#: what one read of a blob download fills, twice (one buffer is received while the other is hashed and written);
#: 1 MiB stays in the CPU cache from recv through hashing to write (with 4 MiB, write() cost several times more)
_BLOCK = 1 << 20
_MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass
class TransferStats:
    blobs_sent: int = 0
    blobs_skipped: int = 0  # already in the registry: not sent
    bytes_sent: int = 0
    bytes_skipped: int = 0
    bytes_received: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """Add to the counters; safe from the threads of a parallel push."""
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


class RegistryClient:
    """One registry host and its repositories; use as a context manager."""

    def __init__(
        self,
        ref: OciRef,
        credentials: Credentials | None = None,
        *,
        ca_file: Path | None = None,
        insecure: bool = False,
    ) -> None:
        self.ref = ref
        self.credentials = credentials
        self.stats = TransferStats()
        self._plain_ok = insecure or ref.is_loopback
        self._auth_header: str | None = None
        if ca_file is not None:
            if not Path(ca_file).is_file():
                raise RegistryError(f"--ca-file {ca_file}: no such file")
            tls = ssl.create_default_context(cafile=str(ca_file))
        else:
            tls = httpx.create_ssl_context()  # httpx's default trust, shared with the blob downloads
        self._http = httpx.Client(timeout=_TIMEOUT, verify=tls, follow_redirects=True)
        self._blob_connections = ConnectionPool(tls, _CONNECT_TIMEOUT, _READ_TIMEOUT)
        self._base: str | None = None

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()
        self._blob_connections.close()

    # ------------------------------------------------------------------------------------ transport

    def _origin(self) -> str:
        """``https://host`` or, where allowed and TLS is not spoken there, ``http://host``; checked once."""
        if self._base is not None:
            return self._base
        https = f"https://{self.ref.registry}"
        try:
            self._http.get(f"{https}/v2/")
            self._base = https
        except httpx.ConnectError as exc:
            if _untrusted_certificate(exc):
                raise RegistryError(
                    f"registry {self.ref.registry}: TLS certificate not trusted ({_reason(exc)}); "
                    "give its CA with --ca-file"
                ) from exc
            if not (self._plain_ok and _is_tls_failure(exc)):
                hint = "; plain HTTP only for loopback or with --insecure" if _is_tls_failure(exc) else ""
                raise RegistryError(
                    f"cannot reach registry {self.ref.registry}: {_reason(exc)}{hint}"
                ) from exc
            self._base = (
                f"http://{self.ref.registry}"  # the host speaks no TLS; allowed for loopback/--insecure
            )
        except httpx.HTTPError as exc:
            raise RegistryError(f"cannot reach registry {self.ref.registry}: {_reason(exc)}") from exc
        return self._base

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | Iterator[bytes] | None = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200, 201, 202, 204),
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One request to ``path`` (``/v2/...`` or an absolute upload URL), authenticated on demand.

        A status outside ``ok`` and ``allow`` raises RegistryError with the registry's own message."""
        url = path if path.startswith(("http://", "https://")) else self._origin() + path
        for attempt in range(2):
            hdrs = dict(headers or {})
            if self._auth_header:
                hdrs["Authorization"] = self._auth_header
            try:
                req = self._http.build_request(method, url, headers=hdrs, content=content)
                resp = self._http.send(req, stream=stream)
            except httpx.HTTPError as exc:
                raise RegistryError(f"registry {self.ref.registry}: {method} failed: {_reason(exc)}") from exc
            if resp.status_code == 401 and attempt == 0 and not isinstance(content, Iterator):
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.close()
                self._authenticate(challenge)
                continue
            break
        if resp.status_code in ok or resp.status_code in allow:
            return resp
        if stream:
            resp.read()
        raise self._error(method, resp)

    def _authenticate(self, challenge: str) -> None:
        scheme, _, params = challenge.partition(" ")
        creds = self.credentials
        if creds is None:
            raise RegistryError(
                f"registry {self.ref.registry} needs credentials: docker login, ~/.docker/config.json, "
                "or --username with --password-stdin"
            )
        if scheme.lower() == "basic":
            self._auth_header = creds.basic_header()
            return
        if scheme.lower() != "bearer":
            raise RegistryError(f"registry {self.ref.registry} asks for unsupported auth {scheme!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.pop("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(f"registry {self.ref.registry}: bearer challenge without a realm URL")
        try:
            resp = self._http.get(
                f"{realm}?{urlencode(fields)}", headers={"Authorization": creds.basic_header()}
            )
        except httpx.HTTPError as exc:
            raise RegistryError(f"token service of {self.ref.registry}: {_reason(exc)}") from exc
        if resp.status_code in (401, 403):
            raise RegistryError(f"registry {self.ref.registry} refused the credentials ({resp.status_code})")
        try:
            body = resp.json()
            token = body.get("token") or body.get("access_token")
        except ValueError:
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service of {self.ref.registry} returned no token")
        self._auth_header = f"Bearer {token}"

    def _error(self, method: str, resp: httpx.Response) -> RegistryError:
        return self._refusal(method, resp.url.path, resp.status_code, resp.content)

    def _refusal(self, method: str, path: str, code: int, body: bytes) -> RegistryError:
        where = f"registry {self.ref.registry}"
        if code == 401:
            return RegistryError(f"{where} refused the credentials (401 Unauthorized)")
        if code == 403:
            return RegistryError(f"{where} denied {method} on {self.ref.repository} (403 Forbidden)")
        detail = ""
        try:
            errors = json.loads(body).get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
        except (ValueError, AttributeError):
            detail = body.decode("utf-8", "replace").strip()[:200]
        return RegistryError(f"{where}: {method} {path} -> {code} {detail}".rstrip())

    # ------------------------------------------------------------------------------------ blobs

    def _repo(self, repository: str | None) -> str:
        return f"/v2/{repository or self.ref.repository}"

    def blob_exists(self, digest: str, repository: str | None = None) -> bool:
        resp = self.request("HEAD", f"{self._repo(repository)}/blobs/{digest}", allow=(404,))
        return resp.status_code == 200

    def push_blob(
        self,
        digest: str,
        size: int,
        source: Path | bytes,
        repository: str | None = None,
        name: str | None = None,
    ) -> bool:
        """Upload unless the registry has it; True when bytes were sent. Monolithic POST-then-PUT upload."""
        if self.blob_exists(digest, repository):
            self.stats.add(blobs_skipped=1, bytes_skipped=size)
            return False
        resp = self.request("POST", f"{self._repo(repository)}/blobs/uploads/", ok=(202,))
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.ref.registry} started an upload without a Location")
        url = urljoin(self._origin() + "/", location)
        url += ("&" if "?" in url else "?") + urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        try:
            self.request("PUT", url, headers=headers, content=self._counted(source), ok=(201, 204))
        except RegistryError as exc:
            # the registry checks the digest of what it received; hashing here only once something went wrong
            # (not on every push) tells whether our bytes, not the registry, are at fault
            actual = _sha256_of(source)
            if actual != digest:
                raise RegistryError(
                    f"{name or 'blob'}: the file's sha256 is {actual}, not {digest} as MANIFEST.json says"
                ) from exc
            raise
        self.stats.add(blobs_sent=1)
        return True

    def _counted(self, source: Path | bytes) -> Iterator[bytes]:
        for block in _blocks(source):
            self.stats.add(bytes_sent=len(block))
            yield block

    def download_blob(
        self,
        digest: str,
        size: int,
        sink: Callable[[memoryview], None],
        repository: str | None = None,
        name: str | None = None,
    ) -> int:
        """Receive the blob ``digest`` into ``sink``, block by block in order; the number of bytes received.

        Each block is read with ``readinto`` into one of two reused buffers, and ``sink`` (the caller hashes and
        writes it) runs in a second thread while the next block arrives: hashlib, file writes and ``recv``
        all release the GIL. A block is valid only during its ``sink`` call. More than ``size`` bytes is
        refused (RegistryError) before ``sink`` sees the excess; fewer is the caller's to judge."""
        path = f"{self._repo(repository)}/blobs/{digest}"
        origin, conn, resp = self._get_blob(path)
        failed = f"registry {self.ref.registry}: download of {name or digest} failed"
        length = resp.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > size:
            conn.close()
            raise RegistryError(f"{failed}: {length} bytes served, the manifest says {size}")
        received, turn = 0, 0
        buffers = [bytearray(min(_BLOCK, size + 1)) for _ in range(1 if size < _BLOCK else 2)]
        try:
            with ThreadPoolExecutor(max_workers=1) as worker:  # idle (no thread) for one-block blobs
                pending: Future[None] | None = None
                while True:  # ends: each pass reads at least one byte, and at most size + 1 are read
                    view = memoryview(buffers[turn % len(buffers)])[: size + 1 - received]
                    turn += 1
                    try:
                        n = resp.readinto(view)
                    except (OSError, http.client.HTTPException) as exc:
                        raise RegistryError(f"{failed}: {_reason(exc)}") from exc
                    if n == 0:
                        break
                    received += n
                    self.stats.add(bytes_received=n)
                    if received > size:
                        raise RegistryError(f"{failed}: more than the {size} bytes the manifest says")
                    if pending is not None:
                        pending.result()  # the buffer that block used is the next one to be filled
                        pending = None
                    if len(buffers) == 1:
                        sink(view[:n])
                    else:
                        pending = worker.submit(sink, view[:n])
                if pending is not None:
                    pending.result()
        except BaseException:
            conn.close()
            raise
        if resp.isclosed():  # the whole response was read: the connection can carry the next request
            self._blob_connections.give(origin, conn)
        else:
            conn.close()
        return received

    def _get_blob(self, path: str) -> tuple[str, http.client.HTTPConnection, http.client.HTTPResponse]:
        """(origin, connection, response) of a 200 answer to ``GET path``, redirects followed, authenticated
        on demand; credentials are sent to the registry's own origin only, never to where it redirects."""
        registry = self._origin()
        url, challenged = registry + path, False
        for _hop in range(_MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise RegistryError(
                    f"registry {self.ref.registry} redirected a blob download to {url[:100]!r}"
                )
            origin = f"{parts.scheme}://{parts.netloc}"
            headers = {"Accept-Encoding": "identity"}
            if origin == registry and self._auth_header:
                headers["Authorization"] = self._auth_header
            target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
            try:
                conn, resp = self._blob_connections.get(origin, target, headers)
            except (OSError, http.client.HTTPException) as exc:
                raise RegistryError(f"registry {self.ref.registry}: GET failed: {_reason(exc)}") from exc
            if resp.status == 200:
                return origin, conn, resp
            try:
                body = resp.read(64 << 10)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise RegistryError(f"registry {self.ref.registry}: GET failed: {_reason(exc)}") from exc
            if resp.isclosed():
                self._blob_connections.give(origin, conn)
            else:
                conn.close()
            location = resp.getheader("Location")
            if resp.status in _REDIRECTS and location:
                url = urljoin(url, location)
                continue
            if resp.status == 401 and origin == registry and not challenged:
                self._authenticate(resp.getheader("WWW-Authenticate", ""))
                challenged = True
                continue
            raise self._refusal("GET", parts.path, resp.status, body)
        raise RegistryError(f"registry {self.ref.registry}: more than {_MAX_REDIRECTS} redirects for {path}")

    def fetch_blob(self, digest: str, max_size: int = 16 << 20) -> bytes:
        resp = self.request("GET", f"{self._repo(None)}/blobs/{digest}")
        if len(resp.content) > max_size:
            raise RegistryError(f"blob {digest} is larger than {max_size} bytes")
        self.stats.add(bytes_received=len(resp.content))
        return resp.content

    # ------------------------------------------------------------------------------------ manifests

    def put_manifest(self, reference: str, body: bytes, media_type: str = OCI_MANIFEST) -> httpx.Response:
        return self.request(
            "PUT",
            f"{self._repo(None)}/manifests/{reference}",
            headers={"Content-Type": media_type},
            content=body,
            ok=(201, 200, 202),
        )

    def get_manifest(self, reference: str, accept: str = OCI_MANIFEST) -> tuple[bytes, str] | None:
        """(bytes, media type) of a manifest or index, or None where the registry has no such reference."""
        resp = self.request(
            "GET", f"{self._repo(None)}/manifests/{reference}", headers={"Accept": accept}, allow=(404,)
        )
        if resp.status_code == 404:
            return None
        if len(resp.content) > 4 << 20:  # the spec's manifest limit
            raise RegistryError(f"manifest {reference} is larger than 4 MiB")
        return resp.content, resp.headers.get("Content-Type", "").split(";")[0]

    def referrers(self, digest: str, artifact_type: str | None = None) -> dict[str, Any] | None:
        """The referrers API's index for ``digest``, or None where the registry has no referrers API."""
        query = f"?{urlencode({'artifactType': artifact_type})}" if artifact_type else ""
        resp = self.request(
            "GET",
            f"{self._repo(None)}/referrers/{digest}{query}",
            headers={"Accept": OCI_INDEX},
            allow=(404,),
        )
        if resp.status_code == 404:
            return None
        try:
            index = json.loads(resp.content)
        except ValueError as exc:
            raise RegistryError(f"registry {self.ref.registry}: referrers answer is not JSON") from exc
        return index if isinstance(index, dict) else None


def _blocks(source: Path | bytes) -> Iterator[bytes]:
    if isinstance(source, bytes):
        for i in range(0, len(source), _CHUNK):
            yield source[i : i + _CHUNK]
        return
    with open(source, "rb") as f:
        while block := f.read(_CHUNK):
            yield block


def _sha256_of(source: Path | bytes) -> str:
    h = hashlib.sha256()
    for block in _blocks(source):
        h.update(block)
    return "sha256:" + h.hexdigest()


def _untrusted_certificate(exc: httpx.ConnectError) -> bool:
    """A TLS server whose certificate does not verify: never a reason to fall back to plain HTTP."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _is_tls_failure(exc: httpx.ConnectError) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "SSL" in str(exc) or "TLS" in str(exc)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
