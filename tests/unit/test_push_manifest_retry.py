"""push_bundle against a registry that refuses the manifest once for a blob it should have (another push of the
same blobs racing ours, as distribution 2.8 does): the blobs are looked up and sent again, and the manifest
retried; any other refusal is the error at once, and the race's refusal after the retries too."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conv2d_bundle.errors import RegistryError
from conv2d_bundle.oci import artifact
from conv2d_bundle.oci.artifact import build_artifact, push_bundle
from conv2d_bundle.oci.client import TransferStats
from conv2d_bundle.oci.reference import parse_ref

RACE = (
    "registry 127.0.0.1:5000: PUT /v2/team/x/manifests/v1 -> 400 DIGEST_INVALID: provided digest did not match "
    "uploaded content; MANIFEST_BLOB_UNKNOWN: blob unknown to registry"
)


class Registry:
    """Records blob lookups and manifest PUTs; refuses the first ``refusals`` manifests with ``error``."""

    def __init__(self, refusals: int, error: str = RACE) -> None:
        self.refusals, self.error = refusals, error
        self.blob_calls: list[str] = []
        self.manifest_puts = 0
        self.stats = TransferStats()

    def push_blob(self, digest: str, size: int, source: Any, name: str | None = None) -> bool:
        self.blob_calls.append(digest)
        return False

    def put_manifest(self, reference: str, body: bytes) -> Any:
        self.manifest_puts += 1
        if self.manifest_puts <= self.refusals:
            raise RegistryError(self.error)
        return SimpleNamespace(headers={})


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifact.time, "sleep", lambda s: None)


def test_a_manifest_refused_for_a_racing_blob_is_sent_again_after_the_blobs(example_bundle: Path) -> None:
    blobs = len(build_artifact(example_bundle, verify=False).layers) + 1  # and the config
    registry = Registry(refusals=1)
    result = push_bundle(registry, example_bundle, parse_ref("oci://127.0.0.1:5000/team/x:v1"))  # type: ignore[arg-type]
    assert registry.manifest_puts == 2
    assert len(registry.blob_calls) == 2 * blobs  # every blob looked up (and sent if missing) again
    assert result.digest == build_artifact(example_bundle, verify=False).digest


def test_the_race_refused_after_the_retries_is_the_error(example_bundle: Path) -> None:
    registry = Registry(refusals=artifact._MANIFEST_RETRIES + 1)
    with pytest.raises(RegistryError, match="MANIFEST_BLOB_UNKNOWN"):
        push_bundle(registry, example_bundle, parse_ref("oci://127.0.0.1:5000/team/x:v1"))  # type: ignore[arg-type]
    assert registry.manifest_puts == artifact._MANIFEST_RETRIES + 1


def test_any_other_refusal_of_the_manifest_is_not_retried(example_bundle: Path) -> None:
    registry = Registry(
        refusals=1, error="registry 127.0.0.1:5000: PUT /v2/team/x/manifests/v1 -> 400 MANIFEST_INVALID"
    )
    with pytest.raises(RegistryError, match="MANIFEST_INVALID"):
        push_bundle(registry, example_bundle, parse_ref("oci://127.0.0.1:5000/team/x:v1"))  # type: ignore[arg-type]
    assert registry.manifest_puts == 1
