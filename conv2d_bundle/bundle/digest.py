"""Content digests: streaming sha256 of files, canonical JSON, and the experiment hash (EXP_HASH)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHUNK = 1 << 20  # 1 MiB reads: large enough that hashing is bound by sha256, not by syscalls
EXP_HASH_LENGTH = 12


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def canonical_json(data: Any) -> str:
    """One text per value: sorted keys, no whitespace, no NaN."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def experiment_hash(normalized_config: Mapping[str, Any], weights_sha256: str) -> str:
    """EXP_HASH: first 12 hex digits of sha256 over the normalized config and the weights' sha256."""
    payload = canonical_json({"config": normalized_config, "weights_sha256": weights_sha256})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:EXP_HASH_LENGTH]


def is_exp_hash(name: str) -> bool:
    return len(name) == EXP_HASH_LENGTH and all(c in "0123456789abcdef" for c in name)


def recompute_exp_hash(bundle_dir: Path) -> str:
    """A bundle's identity from its own files: its config.yaml (read safely, normalized as create normalizes
    it) and the weights' sha256 in metadata.json. BundleError (ConfigError, BundleIntegrityError) when either
    is unreadable. The one recomputation the checks and ``import`` share."""
    from conv2d_bundle.bundle.schema import read_json
    from conv2d_bundle.config import load_config
    from conv2d_bundle.errors import BundleIntegrityError

    meta = read_json(bundle_dir / "metadata.json", what="metadata.json")
    weights = meta.get("model", {}).get("weights_sha256") if isinstance(meta, dict) else None
    if not isinstance(weights, str) or len(weights) != 64:
        raise BundleIntegrityError(
            "metadata.json model.weights_sha256 is missing: the hash cannot be recomputed"
        )
    return experiment_hash(load_config(bundle_dir / "config.yaml").data, weights)
