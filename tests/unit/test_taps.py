"""Taps recorded from a torch model (conv2d_bundle.bundle.taps) and located in its ONNX export (conv2d_bundle.targets.onnx.divergence)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from conv2d_bundle.bundle.taps import record_taps
from conv2d_bundle.errors import ConfigError
from conv2d_bundle.targets.onnx.divergence import locate, map_taps
from conv2d_bundle.targets.onnx.export import export_onnx
from tests.usermodels.tiny import TinyNet


@pytest.fixture
def tiny() -> tuple[TinyNet, np.ndarray]:
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((8, 3, 1, 20)).astype(np.float32)
    return TinyNet().eval(), x


def _onnx(model: torch.nn.Module, tmp_path: Path) -> onnx.ModelProto:
    """Exported as a bundle's ONNX is (TorchScript exporter, opset 13, dynamic batch)."""
    out = tmp_path / "tiny.onnx"
    export_onnx(model, (1, 3, 1, 20), out, input_name="x", output_names=("class_probs", "embedding"))
    return onnx.load(str(out))


def test_default_taps_are_top_level_children_in_call_order(tiny: tuple[TinyNet, np.ndarray]) -> None:
    model, x = tiny
    taps = record_taps(model, x)
    assert taps.names == ("conv", "head", "embed")  # forward calls head before embed
    with torch.no_grad():
        conv = model.conv(torch.from_numpy(x)).numpy()
    assert np.array_equal(taps.values["conv"], conv)
    assert taps.index()["taps"][0] == {"name": "conv", "shape": [8, 8, 1, 20], "dtype": "float32"}


def test_named_taps_unknown_or_uncalled_are_config_errors(tiny: tuple[TinyNet, np.ndarray]) -> None:
    model, x = tiny
    with pytest.raises(ConfigError, match=r"no module 'haed' in the model \(did you mean head\?\)"):
        record_taps(model, x, ["conv", "haed"])
    model.unused = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="unused is never called"):
        record_taps(model, x, ["unused"])


def test_map_and_locate_a_perturbed_layer(tiny: tuple[TinyNet, np.ndarray], tmp_path: Path) -> None:
    model, x = tiny
    taps = record_taps(model, x)
    proto = _onnx(model, tmp_path)
    mapping = map_taps(proto, "x", x, taps.names, taps.values)
    assert all(mapping.values()) and mapping["head"] != mapping["embed"]
    assert locate(proto, "x", x, taps.names, mapping, taps.values, (1e-4, 1e-5)).first_bad is None
    gemm = next(n for n in proto.graph.node if n.output[0] == mapping["head"])
    init = next(i for i in proto.graph.initializer if i.name == gemm.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + np.float32(0.1), init.name))
    found = locate(proto, "x", x, taps.names, mapping, taps.values, (1e-4, 1e-5))
    assert found.describe().startswith("diverges at head (max abs ")
    assert found.describe().endswith(f"agrees up to conv ({found.taps[0].max_abs_error:.2g})")
    assert [t.agrees for t in found.taps] == [True, False, True]  # embed does not depend on head


def test_the_golden_forward_pass_records_the_taps(tiny: tuple[TinyNet, np.ndarray]) -> None:
    """make_reference records the taps in its own forward pass (no second pass at create): same values."""
    from conv2d_bundle.bundle.reference import make_reference
    from conv2d_bundle.config import parse_config

    model, _ = tiny
    spec = parse_config(
        {
            "model": {
                "target": "tests.usermodels.tiny:TinyNet",
                "input_name": "x",
                "input_shape": [1, 3, 1, 20],
                "outputs": [{"name": "class_probs"}, {"name": "embedding"}],
            },
            "labels": ["a", "b", "c"],
        }
    ).model
    ref = make_reference(model, spec, num_samples=8, seed=1)
    again = record_taps(model, ref.inputs)
    assert ref.taps.names == again.names == ("conv", "head", "embed")
    assert all(np.array_equal(ref.taps.values[n], again.values[n]) for n in again.names)
