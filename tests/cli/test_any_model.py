"""A user's own model, not the built-in one: the models are defined here, in the test itself.

Each test failed before targets were their own packages: a dict in another key order than the config's outputs
failed create ("logits: shape [64, 16] != expected [64, 5]"), a float-only model got docs about rounding and
softmax and a warning about its "integer tail", the Hailo kit was not among the formats `list` and `compare`
show, verifying a format the bundle lacks failed once per check, and `verify` refused `--target onnx,ios`.
"""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from torch import nn

from conv2d_bundle.errors import BundleWarning
from conv2d_bundle.lifecycle.create import ArtifactBundler
from tests.conftest import conv2d

Pair = namedtuple("Pair", ["embedding", "logits"])


class _Trunk(nn.Module):
    """Input [N, 2, 1, 12] -> a 16-d embedding and 5 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, (1, 3), padding=(0, 1))
        self.embed = nn.Linear(4 * 12, 16)
        self.head = nn.Linear(16, 5)

    def both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.embed(torch.relu(self.conv(x)).flatten(1))
        return e, self.head(e)


class DictNet(_Trunk):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        e, logits = self.both(x)
        return {"embedding": e, "logits": logits}  # not the config's order


class NamedNet(_Trunk):
    def forward(self, x: torch.Tensor) -> Pair:
        e, logits = self.both(x)
        return Pair(embedding=e, logits=logits)


class TupleNet(_Trunk):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e, logits = self.both(x)
        return logits, e  # by position: the config's order


def _config(cls: type[nn.Module]) -> dict[str, Any]:
    return {
        "model": {
            "target": f"{__name__}:{cls.__name__}",
            "input_name": "window",
            "input_shape": [1, 2, 1, 12],
            "outputs": [{"name": "logits", "dtype": "float32"}, {"name": "embedding", "dtype": "float32"}],
        },
        "labels": ["a", "b", "c", "d", "e"],
        "export": {"reference": {"num_samples": 16}, "hailo": {"calibration_size": 64}},
    }


def _create(tmp_path: Path, cls: type[nn.Module], formats: str) -> Any:
    torch.manual_seed(0)
    ckpt = tmp_path / f"{cls.__name__}.pt"
    torch.save(cls().state_dict(), ckpt)
    return ArtifactBundler(tmp_path / "artifacts").create_bundle(
        _config(cls), ckpt, formats=formats, exp_name=cls.__name__.lower()
    )


@pytest.fixture(scope="module")
def float_bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """DictNet (float outputs only, no device/host split) with every format; the warnings its create gave."""
    with pytest.warns(BundleWarning) as caught:
        bundle = _create(tmp_path_factory.mktemp("any-model"), DictNet, "onnx,coreml,hailo")
    return bundle, [str(w.message) for w in caught]


@pytest.mark.parametrize("cls", [DictNet, NamedNet, TupleNet])
def test_outputs_named_and_ordered_by_the_config(tmp_path: Path, cls: type[nn.Module]) -> None:
    bundle = _create(tmp_path, cls, "onnx")
    graph = onnx.load(str(bundle.bundle_dir / "models/model.onnx")).graph
    assert [o.name for o in graph.output] == ["logits", "embedding"]
    shapes = {
        o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in graph.output
    }
    assert shapes["logits"][1:] == [5] and shapes["embedding"][1:] == [16]
    from conv2d_bundle.lifecycle.show import validation_status

    assert validation_status(bundle)["onnx"]["status"] == "passed"


def test_float_only_model_gets_no_text_about_codes_rounding_or_softmax(float_bundle: Any) -> None:
    bundle, warned = float_bundle
    root = bundle.bundle_dir
    texts = {
        name: (root / name).read_text()
        for name in ("models/hailo/README.md", "models/hailo/model_script.alls", "docs/deployment_guide.md")
    }
    for name, text in texts.items():
        for word in ("rounding", "code index", "softmax", "16-bit", "integer"):
            assert word not in text.lower(), (name, word)
    assert "The whole model runs on the device." in texts["docs/deployment_guide.md"]
    assert not [w for w in warned if "integer" in w]
    assert "codes_dtype" not in bundle.metadata["formats"]["coreml"]
    assert bundle.metadata["formats"]["hailo"]["split"] is False


def test_list_and_compare_show_the_hailo_kit(float_bundle: Any, tmp_path: Path) -> None:
    bundle, _ = float_bundle
    art = bundle.bundle_dir.parent
    listed = conv2d("pack", "list", "--output-dir", str(art), "--verbose")
    assert "Formats: coreml, hailo (kit), onnx" in listed.stdout, listed.stdout
    rows = json.loads(conv2d("pack", "list", "--output-dir", str(art), "--json").stdout)
    assert rows[0]["format_status"] == {"coreml": "built", "hailo": "kit", "onnx": "built"}
    other = _create(tmp_path, TupleNet, "onnx")
    compared = conv2d("pack", "compare", str(bundle.bundle_dir), str(other.bundle_dir), "--json")
    formats = json.loads(compared.stdout)["formats"]
    assert formats["bundle1_only"] == ["coreml", "hailo (kit)"] and formats["common"] == ["onnx"]


def test_verify_a_format_the_bundle_lacks_fails_once(tmp_path: Path) -> None:
    bundle = _create(tmp_path, TupleNet, "onnx")
    p = conv2d("pack", "verify", str(bundle.bundle_dir), "--target", "onnx,ios", "--profile", "quick")
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"{bundle.exp_hash} --target onnx: passed" in p.stdout
    assert f"{bundle.exp_hash} --target ios: failed (" in p.stdout
    failures = [line for line in p.stdout.splitlines() if line.startswith("  FAILED")]
    assert failures == [
        "  FAILED  test_targets.py::test_format_built[ios]: the bundle was built without coreml "
        "(not in the formats asked for (onnx); --formats onnx,coreml builds it)"
    ]
    assert "needs macOS" not in p.stdout  # there is no model at all: nothing is said about running it
    assert "running the checks of --target onnx,ios" in p.stderr


def test_a_users_model_gets_taps_and_its_perturbed_layer_is_named(tmp_path: Path) -> None:
    """The taps of a user's model are its own top-level children in call order (``both`` calls conv, embed,
    head); one layer's weights perturbed in the export and re-sealed: parity fails naming that layer."""
    from onnx import numpy_helper

    from tests.conftest import checks_subprocess, reseal

    bundle = _create(tmp_path, TupleNet, "onnx").bundle_dir
    index = json.loads((bundle / "reference/taps.json").read_text())
    assert [t["name"] for t in index["taps"]] == ["conv", "embed", "head"]
    mapping = json.loads((bundle / "metadata.json").read_text())["formats"]["onnx"]["taps"]
    assert all(mapping[t] for t in ("conv", "embed", "head")), mapping

    model = onnx.load(str(bundle / "models/model.onnx"))
    gemm = next(n for n in model.graph.node if n.name.split("/")[-2:] == ["embed", "Gemm"])
    init = next(i for i in model.graph.initializer if i.name == gemm.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
    onnx.save(model, str(bundle / "models/model.onnx"))
    reseal(bundle)
    p = checks_subprocess(
        "--bundle", str(bundle), "--target", "onnx", "--check-profile", "quick", "-k", "parity"
    )
    report = json.loads((bundle / "validation/onnx_validation.json").read_text())
    failed = [c for c in report["checks"] if c["outcome"] == "failed"]
    assert p.returncode == 1 and failed, p.stdout[-2000:]
    for check in failed:
        assert (
            "diverges at embed (max abs " in check["message"] and "; agrees up to conv (" in check["message"]
        )
