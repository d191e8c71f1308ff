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


def experiment_hash(
    normalized_config: Mapping[str, Any], weights_sha256: str, reference_inputs_sha256: str | None = None
) -> str:
    """EXP_HASH: first 12 hex digits of sha256 over the normalized config and the weights' sha256, and, when
    the config names real golden inputs (``export.reference.inputs``), that file's sha256. Without such a file
    the payload is exactly what it always was, so existing bundles keep their hash."""
    payload: dict[str, Any] = {"config": normalized_config, "weights_sha256": weights_sha256}
    if reference_inputs_sha256 is not None:
        payload["reference_inputs_sha256"] = reference_inputs_sha256
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()[:EXP_HASH_LENGTH]


def is_exp_hash(name: str) -> bool:
    return len(name) == EXP_HASH_LENGTH and all(c in "0123456789abcdef" for c in name)


def recompute_exp_hash(bundle_dir: Path) -> str:
    """A bundle's identity from its own files: its config.yaml (read safely, normalized as create normalizes
    it), the weights' sha256 in metadata.json and, when the config names real golden inputs, their file's
    sha256 (``model.reference.inputs_sha256``: the file itself is not in the bundle). BundleError
    (ConfigError, BundleIntegrityError) when any is unreadable. The one recomputation the checks and
    ``import`` share."""
    from conv2d_bundle.bundle.schema import read_json
    from conv2d_bundle.config import load_config
    from conv2d_bundle.errors import BundleIntegrityError

    meta = read_json(bundle_dir / "metadata.json", what="metadata.json")
    model = meta.get("model") if isinstance(meta, dict) else None
    model = model if isinstance(model, dict) else {}
    weights = model.get("weights_sha256")
    if not _is_sha256(weights):
        raise BundleIntegrityError(
            "metadata.json model.weights_sha256 is missing: the hash cannot be recomputed"
        )
    config = load_config(bundle_dir / "config.yaml")
    inputs_sha256 = None
    if config.reference_options.get("inputs") is not None:
        reference = model.get("reference")
        inputs_sha256 = reference.get("inputs_sha256") if isinstance(reference, dict) else None
        if not _is_sha256(inputs_sha256):
            raise BundleIntegrityError(
                "metadata.json model.reference.inputs_sha256 is missing (config.yaml names "
                "export.reference.inputs): the hash cannot be recomputed"
            )
    return experiment_hash(config.data, str(weights), inputs_sha256)


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
