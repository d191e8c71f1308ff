"""The reference model, its numpy host part, and safe checkpoint loading."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conv2d_bundle.config import parse_config
from conv2d_bundle.errors import ModelLoadError
from conv2d_bundle.models import Conv2dFSQ, load_model
from conv2d_bundle.models.postprocess import fsq_codes, rounding_margin, softmax
from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_MODEL


@pytest.fixture(scope="module")
def model() -> Conv2dFSQ:
    from conv2d_bundle.config import load_config

    return load_model(load_config(EXAMPLE_CONFIG).model, EXAMPLE_MODEL)  # type: ignore[return-value]


def test_parameter_count_near_spec() -> None:
    n = sum(p.numel() for p in Conv2dFSQ().parameters())
    assert 280_000 <= n <= 320_000, n


def test_outputs_shapes_dtypes_and_ranges(model: Conv2dFSQ) -> None:
    x = torch.randn(17, 9, 2, 100, generator=torch.Generator().manual_seed(3))
    codes, conf = model(x)
    assert codes.dtype == torch.int64 and codes.shape == (17,)
    assert conf.dtype == torch.float32 and conf.shape == (17, 4)
    assert int(codes.min()) >= 0 and int(codes.max()) < 800
    assert torch.allclose(conf.sum(1), torch.ones(17), atol=1e-6)


def test_every_fsq_code_is_reachable() -> None:
    """The bounded latent spans each level fully: all 8*5*5*4 = 800 codes occur on a dense grid."""
    fsq = Conv2dFSQ().fsq
    grid = torch.cartesian_prod(*[torch.linspace(-6, 6, 41)] * 4)
    codes = fsq.codes(fsq.bound(grid))
    assert fsq.codebook_size == 800
    assert set(codes.tolist()) == set(range(800))


def test_numpy_host_part_matches_torch(model: Conv2dFSQ) -> None:
    x = torch.randn(256, 9, 2, 100, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        bounded, logits = model.device_forward(x)
        codes, conf = model(x)
    safe = rounding_margin(bounded.numpy()) > 1e-4
    np.testing.assert_array_equal(fsq_codes(bounded.numpy(), model.fsq.levels)[safe], codes.numpy()[safe])
    np.testing.assert_allclose(softmax(logits.numpy()), conf.numpy(), atol=1e-6)


def test_rounding_is_ties_to_even_everywhere() -> None:
    halves = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], dtype=np.float32)
    expected = np.array([-2, -2, -0, 0, 2, 2], dtype=np.float32)
    np.testing.assert_array_equal(np.rint(halves), expected)
    np.testing.assert_array_equal(torch.round(torch.from_numpy(halves)).numpy(), expected)


def _spec():  # type: ignore[no-untyped-def]
    return parse_config({"model": {"architecture": "conv2d_fsq"}, "labels": ["a", "b", "c", "d"]}).model


def test_pickled_module_is_refused_without_allow_pickle(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(Conv2dFSQ(), path)
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        load_model(_spec(), path)
    loaded = load_model(_spec(), path, allow_pickle=True)
    assert isinstance(loaded, Conv2dFSQ) and not loaded.training


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_malicious_pickle_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"weights": _Payload(marker)}, f)
    with pytest.raises(ModelLoadError):
        load_model(_spec(), path)
    assert not marker.exists()


def test_wrong_architecture_lists_keys(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(ModelLoadError, match=r"missing keys \[.*encoder.*unexpected keys \[bias, weight\]"):
        load_model(_spec(), path)


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    state = Conv2dFSQ().state_dict()
    state["to_latent.weight"][0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(state, path)
    with pytest.raises(ModelLoadError, match=r"non-finite weights.*to_latent\.weight"):
        load_model(_spec(), path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_corrupt_checkpoint(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=r"bad\.pt"):
        load_model(_spec(), path)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (np.random.default_rng(0).bytes(4096), "torch.save writes a zip archive"),
        (b"name: dogs_v1\n", "torch.save writes a zip archive"),
        (b"", "the file is empty"),
    ],
    ids=["random-bytes", "text", "empty"],
)
def test_junk_is_not_a_checkpoint_and_no_pickle_is_suggested(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as caught:
        load_model(_spec(), path, allow_pickle=True)
    assert str(caught.value).startswith(f"{path} is not a PyTorch checkpoint: {why}")
    assert "--allow-pickle" not in str(caught.value)


def test_legacy_format_checkpoint_loads(tmp_path: Path) -> None:
    """torch.save's pre-1.6 format is a pickle stream, not a zip archive: still a checkpoint."""
    path = tmp_path / "legacy.pt"
    torch.save(Conv2dFSQ().state_dict(), path, _use_new_zipfile_serialization=False)
    assert isinstance(load_model(_spec(), path), Conv2dFSQ)


def test_nested_state_dict_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "nested.pt"
    torch.save({"state_dict": Conv2dFSQ().state_dict(), "epoch": 3}, path)
    assert isinstance(load_model(_spec(), path), Conv2dFSQ)
