"""Helpers for the lifecycle tests: cheap bundle variants derived from the example bundle.

Building a bundle costs ~4 s; most tests only need distinct bundles, so a variant is a copy of the example
with edited metrics/config/created_at, re-sealed and renamed to a made-up hash (metadata says the same hash).
Such a variant is a valid bundle for listing, cleaning and comparing, but its hash is not its real identity.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import reseal

MakeVariant = Callable[..., Path]


def make_variant(
    example: Path,
    artifacts: Path,
    exp_hash: str,
    *,
    metrics: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    created_at: str | None = None,
    exp_name: str | None = None,
) -> Path:
    """A copy of ``example`` at ``artifacts/exp_hash`` with these edits, re-sealed (no validation reports)."""
    dst = artifacts / exp_hash
    shutil.copytree(example, dst, symlinks=True)
    shutil.rmtree(dst / "validation", ignore_errors=True)
    meta = json.loads((dst / "metadata.json").read_text())
    meta["exp_hash"] = exp_hash
    meta["created_by"] = "test@host"
    meta["created_at"] = created_at or "2026-01-01T00:00:00.000000Z"
    if exp_name is not None:
        meta["exp_name"] = exp_name
    if metrics:
        m = {**json.loads((dst / "metrics.json").read_text()), **metrics}
        (dst / "metrics.json").write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
        if "accuracy" in metrics:
            meta["model"]["accuracy"] = metrics["accuracy"]
    if config:
        cfg = yaml.safe_load((dst / "config.yaml").read_text())
        for dotted, value in config.items():
            *parents, leaf = dotted.split(".")
            node = cfg
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        (dst / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=True))
    (dst / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    reseal(dst)
    return dst


@pytest.fixture
def variant(example_bundle: Path, tmp_path: Path) -> MakeVariant:
    """``variant(exp_hash, **edits)``: a derived bundle under ``tmp_path / "artifacts"``."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir(exist_ok=True)

    def make(exp_hash: str, **edits: Any) -> Path:
        return make_variant(example_bundle, artifacts, exp_hash, **edits)

    return make
