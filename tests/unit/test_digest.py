"""EXP_HASH: the content address of a bundle covers the config *and* the weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conv2d_bundle.bundle.digest import experiment_hash, is_exp_hash
from conv2d_bundle.config import load_config
from tests.conftest import EXAMPLE_CONFIG


def test_new_weights_with_the_same_config_give_a_new_hash() -> None:
    """Guards against a hash of the config alone: retrained weights under an unchanged config would get the
    old bundle's directory, and `create` would hand back the old bundle as "already exists"."""
    cfg = load_config(EXAMPLE_CONFIG).data
    old, new = "a" * 64, "a" * 63 + "b"  # one hex digit of the weights' sha256 differs
    assert is_exp_hash(experiment_hash(cfg, old))
    assert experiment_hash(cfg, old) == experiment_hash(cfg, old)
    assert experiment_hash(cfg, new) != experiment_hash(cfg, old)


def test_real_golden_inputs_are_hashed_like_the_weights_and_absent_change_nothing() -> None:
    """A bundle created without export.reference.inputs keeps exactly the hash it always had (the payload has
    no inputs key then); with it, the file's sha256 is part of the identity: one other byte, another bundle."""
    import hashlib

    from conv2d_bundle.bundle.digest import canonical_json

    cfg = load_config(EXAMPLE_CONFIG).data
    weights, inputs = "a" * 64, "b" * 64
    old_formula = hashlib.sha256(
        canonical_json({"config": cfg, "weights_sha256": weights}).encode()
    ).hexdigest()
    assert experiment_hash(cfg, weights) == experiment_hash(cfg, weights, None) == old_formula[:12]
    assert experiment_hash(cfg, weights, inputs) != experiment_hash(cfg, weights)
    assert experiment_hash(cfg, weights, "b" * 63 + "c") != experiment_hash(cfg, weights, inputs)


def test_recompute_reads_the_inputs_sha256_from_metadata(tmp_path: Path) -> None:
    """The data file is not in the bundle: recompute_exp_hash takes its sha256 from metadata.json, and refuses to
    guess when a config that names the file has none recorded."""
    import json

    import pytest
    import yaml

    from conv2d_bundle.bundle.digest import recompute_exp_hash
    from conv2d_bundle.errors import BundleIntegrityError

    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["export"]["reference"]["inputs"] = "windows.npy"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    cfg = load_config(tmp_path / "config.yaml").data
    meta: dict[str, Any] = {"model": {"weights_sha256": "a" * 64, "reference": {"inputs_sha256": "b" * 64}}}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    assert recompute_exp_hash(tmp_path) == experiment_hash(cfg, "a" * 64, "b" * 64)
    del meta["model"]["reference"]["inputs_sha256"]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(
        BundleIntegrityError, match=r"model\.reference\.inputs_sha256 is missing \(config\.yaml"
    ):
        recompute_exp_hash(tmp_path)
