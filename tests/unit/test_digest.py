"""EXP_HASH: the content address of a bundle covers the config *and* the weights."""

from __future__ import annotations

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
