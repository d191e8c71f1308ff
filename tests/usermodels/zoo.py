"""The model zoo: architectures people ship, which nobody here wrote, each loaded through ``model.target``.

Four Hugging Face ``transformers`` image classifiers built from small configs (no download; random weights)
and a model of our own whose ``forward`` returns a dict of two outputs. Each classifier returns
``{"logits": ...}`` (the ``ModelOutput``'s logits), for 64x64 RGB images.

Random weights alone make a poor golden set: the pooled features of a fresh network are nearly the same for
every input, so one class wins on every window (measured: HF ResNet 16 of 16 windows one class, MobileNetV2's
logits ~1e-31). :func:`_calibrated` therefore resets every layer to torch's default initialisation and
standardises the classification head on 256 seeded images, as training would leave it spread: the golden
windows then exercise all ten classes, so agreement on them says something.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

IMAGE = 64
N_CLASSES = 10


class Logits(nn.Module):
    """A ``transformers`` classifier as a bundle sees it: pixel values in, ``{"logits": ...}`` out."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner.eval()

    def forward(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.inner(pixel_values=pixel_values).logits}


def _calibrated(model: nn.Module) -> Logits:
    torch.manual_seed(0)
    for layer in model.modules():
        reset = getattr(layer, "reset_parameters", None)
        if callable(reset):
            reset()
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    seen: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach()))
    images = torch.randn(256, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.eval()(pixel_values=images)
        hook.remove()
        features = seen[0]
        mean, std = features.mean(0), features.std(0) + 1e-6
        weight = head.weight / std
        spread = ((features - mean) @ weight.T).std()
        head.weight.copy_(weight * 3 / spread)  # logits with a standard deviation of ~3
        head.bias.copy_(-(head.weight @ mean))
    return Logits(model)


def resnet() -> Logits:
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(
        depths=[1, 1, 1, 1], embedding_size=16, hidden_sizes=[16, 32, 64, 128], num_labels=N_CLASSES
    )
    return _calibrated(ResNetForImageClassification(config))


def mobilenet_v2() -> Logits:
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification

    config = MobileNetV2Config(depth_multiplier=0.35, image_size=IMAGE, num_labels=N_CLASSES)
    return _calibrated(MobileNetV2ForImageClassification(config))


def convnext() -> Logits:
    from transformers import ConvNextConfig, ConvNextForImageClassification

    config = ConvNextConfig(depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 64, 128], num_labels=N_CLASSES)
    return _calibrated(ConvNextForImageClassification(config))


def regnet() -> Logits:
    from transformers import RegNetConfig, RegNetForImageClassification

    config = RegNetConfig(
        depths=[1, 1, 1, 1],
        embedding_size=16,
        hidden_sizes=[16, 32, 64, 128],
        groups_width=8,
        num_labels=N_CLASSES,
    )
    return _calibrated(RegNetForImageClassification(config))


class TwoHeads(nn.Module):
    """A model of our own whose forward returns a dict: class probabilities and an embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4), nn.Flatten())
        self.classes = nn.Linear(8 * 16, 4)
        self.embed = nn.Linear(8 * 16, 8)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        return {"probs": torch.softmax(self.classes(h), dim=-1), "embedding": self.embed(h)}


def two_heads() -> TwoHeads:
    torch.manual_seed(0)
    return TwoHeads().eval()


#: zoo name -> (factory, the config's model section, labels)
ZOO: dict[str, dict[str, Any]] = {
    name: {
        "target": f"tests.usermodels.zoo:{name}",
        "input_name": "pixel_values",
        "input_shape": [1, 3, IMAGE, IMAGE],
        # logits spread ~3 wide: XNNPACK's fp32 reductions land up to ~2e-5 off torch's (measured on these
        # models), over the 1e-5 default; 1e-4 is the verifier's float32 cap
        "outputs": [{"name": "logits", "dtype": "float32", "kind": "logits", "atol": 1.0e-4}],
    }
    for name in ("resnet", "mobilenet_v2", "convnext", "regnet")
}
ZOO["two_heads"] = {
    "target": "tests.usermodels.zoo:two_heads",
    "input_name": "x",
    "input_shape": [1, 3, 16, 16],
    "outputs": [
        {"name": "probs", "dtype": "float32", "kind": "probabilities"},
        {"name": "embedding", "dtype": "float32"},
    ],
}
