"""An in-memory OCI registry client for fast tests of the evidence code: the calls ``oci/evidence.py`` and
``cli/registry.RemoteBundle`` make, nothing more, and no referrers API (as distribution 2.8), so evidence is
listed through the referrers tag schema. tests/oci runs the same code against a real registry."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from conv2d_bundle.bundle.manifest import MANIFEST_NAME, BundleManifest
from conv2d_bundle.errors import RegistryError
from conv2d_bundle.oci.artifact import ARTIFACT_TYPE, EXP_HASH, TITLE
from conv2d_bundle.oci.client import OCI_MANIFEST


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FakeRegistry:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)  # digest or tag -> body

    def __enter__(self) -> FakeRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def push_blob(self, digest: str, size: int, data: bytes) -> None:
        if sha256(data) != digest or len(data) != size:
            raise RegistryError(f"blob {digest}: digest or size mismatch")
        self.blobs[digest] = data

    def fetch_blob(self, digest: str, max_size: int = 16 << 20) -> bytes:
        if digest not in self.blobs:
            raise RegistryError(f"no blob {digest}")
        return self.blobs[digest]

    def put_manifest(self, reference: str, body: bytes, media_type: str = OCI_MANIFEST) -> Any:
        self.manifests[sha256(body)] = body
        self.manifests[reference] = body
        return SimpleNamespace(headers={})

    def get_manifest(self, reference: str, accept: str = OCI_MANIFEST) -> tuple[bytes, str] | None:
        body = self.manifests.get(reference)
        return None if body is None else (body, accept)

    def referrers(self, digest: str, artifact_type: str | None = None) -> dict[str, Any] | None:
        return None

    def push_bundle(
        self, files: dict[str, bytes], exp_hash: str = "7bda82d7df9d", tag: str = "v1"
    ) -> tuple[dict[str, Any], str]:
        """A bundle artifact holding ``files`` and its MANIFEST.json; (subject descriptor, content digest)."""
        manifest = BundleManifest(
            {
                rel: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                for rel, data in files.items()
            }
        )
        raw = json.dumps(
            manifest.to_json(), indent=2
        ).encode()  # not canonical, as atomic.write_json writes it
        layers = []
        for rel, data in sorted({**files, MANIFEST_NAME: raw}.items()):
            self.blobs[sha256(data)] = data
            layers.append(
                {
                    "mediaType": "application/octet-stream",
                    "digest": sha256(data),
                    "size": len(data),
                    "annotations": {TITLE: rel},
                }
            )
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": ARTIFACT_TYPE,
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": sha256(b"{}"),
                    "size": 2,
                },
                "layers": layers,
                "annotations": {EXP_HASH: exp_hash},
            },
            sort_keys=True,
        ).encode()
        self.put_manifest(tag, body)
        return {"mediaType": OCI_MANIFEST, "digest": sha256(body), "size": len(body)}, manifest.content_digest
