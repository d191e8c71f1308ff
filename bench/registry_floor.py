"""The floor of the registry rows: a bundle's files sent and fetched as blobs with plain HTTP requests, one
short script (standard library only, one keep-alive connection, no checks, no hashing of its own).

    python bench/registry_floor.py push PORT REPO BUNDLE_DIR
    python bench/registry_floor.py pull PORT REPO BUNDLE_DIR OUT_DIR

Digests come from the bundle's MANIFEST.json (as ``conv2d pack push`` takes them); MANIFEST.json itself is sent
as one more blob. The registry checks each upload's digest, as it does for ours.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import sys
from pathlib import Path

CHUNK = 1 << 20


def blobs(bundle: Path) -> list[tuple[str, Path]]:
    manifest = json.loads((bundle / "MANIFEST.json").read_bytes())
    out = [(f"sha256:{e['sha256']}", bundle / rel) for rel, e in manifest["files"].items()]
    return [
        *out,
        (
            "sha256:" + hashlib.sha256((bundle / "MANIFEST.json").read_bytes()).hexdigest(),
            bundle / "MANIFEST.json",
        ),
    ]


def push(conn: http.client.HTTPConnection, repo: str, bundle: Path) -> None:
    for digest, path in blobs(bundle):
        conn.request("POST", f"/v2/{repo}/blobs/uploads/")
        resp = conn.getresponse()
        resp.read()
        location = resp.getheader("Location") or ""
        url = location.split("://", 1)[-1].split("/", 1)[-1]
        with open(path, "rb") as f:
            conn.request(
                "PUT",
                f"/{url}{'&' if '?' in url else '?'}digest={digest}",
                body=f,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(path.stat().st_size),
                },
                encode_chunked=False,
            )
            resp = conn.getresponse()
            resp.read()
        if resp.status != 201:
            raise SystemExit(f"PUT {path.name}: HTTP {resp.status}")


def pull(conn: http.client.HTTPConnection, repo: str, bundle: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i, (digest, _path) in enumerate(blobs(bundle)):
        conn.request("GET", f"/v2/{repo}/blobs/{digest}")
        resp = conn.getresponse()
        if resp.status != 200:
            raise SystemExit(f"GET {digest}: HTTP {resp.status}")
        with open(out / str(i), "wb") as f:
            while block := resp.read(CHUNK):
                f.write(block)


def main(argv: list[str]) -> None:
    op, port, repo, bundle = argv[0], int(argv[1]), argv[2], Path(argv[3])
    conn = http.client.HTTPConnection("127.0.0.1", port, blocksize=CHUNK)
    if op == "push":
        push(conn, repo, bundle)
    else:
        pull(conn, repo, bundle, Path(argv[4]))
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
