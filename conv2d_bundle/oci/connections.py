"""Keep-alive HTTP/1.1 connections for blob downloads (:meth:`.client.RegistryClient.download_blob`), by origin.

Standard library only (http.client): a blob body is read with ``readinto`` into the caller's buffer, with no
per-piece Python in between. Connections go through the proxy that ``http_proxy`` / ``https_proxy`` /
``all_proxy`` name (``no_proxy`` respected), as httpx's do: plain HTTP with absolute request targets, HTTPS
through a CONNECT tunnel, TLS end to end with the client's context.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import urllib.request
from urllib.parse import unquote, urlsplit

from conv2d_bundle.errors import RegistryError


class ConnectionPool:
    """Idle HTTP/1.1 keep-alive connections for blob downloads, by origin; safe from several threads."""

    def __init__(self, tls: ssl.SSLContext, connect_timeout: float, read_timeout: float) -> None:
        self._tls = tls
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._idle: dict[str, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def get(
        self, origin: str, target: str, headers: dict[str, str]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send ``GET target`` to ``origin`` and read the status and headers: on an idle connection if there is
        one (once more on a new one if the server closed it meanwhile), else on a new one. OSError or
        http.client.HTTPException when that fails; the connection is then closed."""
        for attempt in range(2):
            with self._lock:
                idle = self._idle.get(origin)
                conn = idle.pop() if idle and not attempt else None  # the retry: a new connection
            reused = conn is not None
            conn = conn or self._connect(origin)
            try:
                if conn.sock is None:  # new, or closed by the last response (Connection: close)
                    conn.connect()  # within the connect timeout; then reads may take the read timeout
                    if conn.sock is not None:
                        conn.sock.settimeout(self._read_timeout)
                conn.request("GET", target, headers=headers)
                return conn, conn.getresponse()
            except (ConnectionResetError, BrokenPipeError, http.client.BadStatusLine):
                conn.close()
                if not reused:
                    raise
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    def give(self, origin: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(origin, []).append(conn)

    def close(self) -> None:
        with self._lock:
            for conns in self._idle.values():
                for conn in conns:
                    conn.close()
            self._idle.clear()

    def _connect(self, origin: str) -> http.client.HTTPConnection:
        """A connection to ``origin``, through the proxy that ``*_proxy`` names for it (as httpx does)."""
        parts = urlsplit(origin)
        https = parts.scheme == "https"
        proxies = urllib.request.getproxies()
        proxy = proxies.get(parts.scheme) or proxies.get("all")
        if proxy and urllib.request.proxy_bypass(parts.netloc):
            proxy = None
        if not proxy:
            host, port = parts.hostname or "", parts.port
            if https:
                return http.client.HTTPSConnection(
                    host, port, timeout=self._connect_timeout, context=self._tls
                )
            return http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if via.scheme != "http":
            raise RegistryError(f"proxy {via.scheme}://{via.hostname}: only http:// proxies are supported")
        proxy_headers = {}
        if via.username is not None:
            pair = f"{unquote(via.username)}:{unquote(via.password or '')}".encode()
            proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair).decode()
        conn: http.client.HTTPConnection
        if https:  # a CONNECT tunnel, TLS end to end
            conn = http.client.HTTPSConnection(
                via.hostname or "", via.port, timeout=self._connect_timeout, context=self._tls
            )
            conn.set_tunnel(parts.hostname or "", parts.port, headers=proxy_headers)
            return conn
        return _ProxiedConnection(via.hostname or "", via.port, origin, proxy_headers, self._connect_timeout)


class _ProxiedConnection(http.client.HTTPConnection):
    """Plain HTTP through a forward proxy: absolute request targets, the proxy's credentials on each request."""

    def __init__(
        self, host: str, port: int | None, origin: str, proxy_headers: dict[str, str], timeout: float
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._target_origin = origin
        self._proxy_headers = proxy_headers

    def putrequest(
        self, method: str, url: str, skip_host: bool = False, skip_accept_encoding: bool = False
    ) -> None:
        super().putrequest(method, self._target_origin + url, skip_host, skip_accept_encoding)
        for name, value in self._proxy_headers.items():
            self.putheader(name, value)
