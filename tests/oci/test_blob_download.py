"""``RegistryClient.download_blob`` against small stand-in servers: what the real registry never does (redirect
to storage elsewhere, serve too many bytes), and what a proxy sees. The real registry covers the rest."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, urlunsplit

import pytest

from conv2d_bundle.errors import RegistryError
from conv2d_bundle.oci.client import RegistryClient
from conv2d_bundle.oci.credentials import Credentials
from conv2d_bundle.oci.reference import parse_ref

#: several 1 MiB blocks and a partial one: both buffers, the second thread
DATA = os.urandom((4 << 20) + 12345)
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()

Answer = tuple[int, dict[str, str], bytes]
Route = Callable[[str, dict[str, str]], Answer]


@dataclass
class Stand:
    """A plain-HTTP/1.1 server on loopback answering GETs with ``route``; what it was asked, and from where."""

    route: Route
    port: int = 0
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)
    peers: set[int] = field(default_factory=set)  # client ports: one per connection
    hang_up: bool = False  # close each connection after one answer, without saying so (an idle timeout)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client's TLS probe of a plain-HTTP port, reset: expected


@pytest.fixture
def stands() -> Iterator[Callable[[Route], Stand]]:
    """Start stand-ins; all are shut down after the test."""
    servers: list[ThreadingHTTPServer] = []

    def start(route: Route) -> Stand:
        stand = Stand(route)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive

            def do_GET(self) -> None:
                stand.seen.append((self.path, self.headers.get("Authorization")))
                stand.peers.add(self.client_address[1])
                status, headers, body = stand.route(self.path, dict(self.headers))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Transfer-Encoding" not in headers:
                    self.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
                self.end_headers()
                if headers.get("Transfer-Encoding") == "chunked":
                    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                self.wfile.write(body)
                self.close_connection = stand.hang_up

            def log_message(self, *args: object) -> None:
                pass

        server = _QuietServer(("127.0.0.1", 0), Handler)
        stand.port = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return stand

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def download(port: int, size: int = len(DATA), credentials: Credentials | None = None) -> bytes:
    out = bytearray()
    with RegistryClient(parse_ref(f"oci://127.0.0.1:{port}/team/x:v1"), credentials) as client:
        n = client.download_blob(DIGEST, size, out.extend)
    assert n == len(out)
    return bytes(out)


def test_a_redirect_to_storage_elsewhere_is_followed_without_the_credentials(
    stands: Callable[[Route], Stand],
) -> None:
    storage = stands(lambda path, headers: (200, {}, DATA))
    creds = Credentials("alice", "s3cret")

    def registry(path: str, headers: dict[str, str]) -> Answer:
        if headers.get("Authorization") != creds.basic_header():
            return 401, {"WWW-Authenticate": 'Basic realm="test"'}, b""
        if path == "/v2/":
            return 200, {}, b"{}"
        # another origin (localhost, not 127.0.0.1): storage that must not see the registry's credentials
        return 307, {"Location": f"http://localhost:{storage.port}/data?sig=abc"}, b""

    reg = stands(registry)
    assert download(reg.port, credentials=creds) == DATA
    assert (f"/v2/team/x/blobs/{DIGEST}", creds.basic_header()) in reg.seen
    assert storage.seen == [("/data?sig=abc", None)]


def test_blobs_share_one_keep_alive_connection(stands: Callable[[Route], Stand]) -> None:
    reg = stands(lambda path, headers: (200, {}, DATA))
    out: list[bytes] = []
    with RegistryClient(parse_ref(f"oci://127.0.0.1:{reg.port}/team/x:v1")) as client:
        for _ in range(3):
            got = bytearray()
            client.download_blob(DIGEST, len(DATA), got.extend)
            out.append(bytes(got))
    assert out == [DATA] * 3
    blob_gets = [path for path, _ in reg.seen if "/blobs/" in path]
    assert len(blob_gets) == 3
    assert len(reg.peers) <= 2  # httpx's probe of /v2/, then one connection for every blob


def test_a_keep_alive_connection_the_server_closed_meanwhile_is_replaced(
    stands: Callable[[Route], Stand],
) -> None:
    reg = stands(lambda path, headers: (200, {}, DATA))
    reg.hang_up = True
    with RegistryClient(parse_ref(f"oci://127.0.0.1:{reg.port}/team/x:v1")) as client:
        for _ in range(2):
            got = bytearray()
            client.download_blob(DIGEST, len(DATA), got.extend)
            assert bytes(got) == DATA
    assert len([path for path, _ in reg.seen if "/blobs/" in path]) == 2


@pytest.mark.parametrize(
    "headers",
    [{}, {"Transfer-Encoding": "chunked"}],
    ids=["content-length", "chunked"],
)
def test_more_bytes_than_the_manifest_says_are_refused(
    stands: Callable[[Route], Stand], headers: dict[str, str]
) -> None:
    reg = stands(lambda path, _h: (200, headers, DATA + b"extra"))
    with pytest.raises(RegistryError, match=r"download of sha256:\w+ failed: .*manifest says"):
        download(reg.port)


def test_an_error_answer_is_one_line_with_the_registry_message(stands: Callable[[Route], Stand]) -> None:
    body = b'{"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}]}'
    reg = stands(lambda path, _h: (200, {}, b"{}") if path == "/v2/" else (404, {}, body))
    with pytest.raises(
        RegistryError, match=r"GET /v2/team/x/blobs/sha256:\w+ -> 404 BLOB_UNKNOWN: blob unknown"
    ):
        download(reg.port)


def test_blobs_go_through_the_http_proxy_the_environment_names(
    stands: Callable[[Route], Stand], monkeypatch: pytest.MonkeyPatch
) -> None:
    def forward(url: str, headers: dict[str, str]) -> Answer:  # a forward proxy: absolute request targets
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port)
        conn.request("GET", urlunsplit(("", "", parts.path, parts.query, "")))
        resp = conn.getresponse()
        return resp.status, {}, resp.read()

    reg = stands(lambda path, _h: (200, {}, DATA))
    proxy = stands(forward)
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    assert download(reg.port) == DATA
    assert (f"http://127.0.0.1:{reg.port}/v2/team/x/blobs/{DIGEST}", None) in proxy.seen
