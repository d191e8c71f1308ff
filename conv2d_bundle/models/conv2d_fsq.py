"""The reference architecture: a small Conv2d encoder, Finite Scalar Quantization and a classifier head.

Input ``imu_input`` float32 ``[N, 9, 2, 100]`` (9 IMU channels, 2 sensors, 100 time steps). Outputs
``behavioral_codes`` int64 ``[N]`` (one of ``prod(levels)`` FSQ codes) and ``confidence`` float32
``[N, n_classes]`` (softmax). The model says where a quantizing accelerator's part ends
(:meth:`Conv2dFSQ.device_forward`): the bounded latent and the class logits; the rest is
:mod:`conv2d_bundle.models.postprocess` on the host.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

DEFAULT_LEVELS = (8, 5, 5, 4)


class FSQ(nn.Module):
    """Finite Scalar Quantization (Mentzer et al., 2023): tanh bound, round, mixed-radix index."""

    def __init__(self, levels: Sequence[int] = DEFAULT_LEVELS, eps: float = 1e-3) -> None:
        super().__init__()
        lv = torch.tensor(list(levels), dtype=torch.float32)
        half_l = (lv - 1) * (1 + eps) / 2
        offset = torch.where(lv % 2 == 0, 0.5, 0.0)
        self.levels = tuple(int(x) for x in levels)
        self.half_l: torch.Tensor
        self.offset: torch.Tensor
        self.shift: torch.Tensor
        self.half_width: torch.Tensor
        self.basis: torch.Tensor
        self.register_buffer("half_l", half_l, persistent=False)
        self.register_buffer("offset", offset, persistent=False)
        self.register_buffer("shift", torch.atanh(offset / half_l), persistent=False)
        self.register_buffer("half_width", torch.tensor([n // 2 for n in self.levels]), persistent=False)
        basis = [math.prod(self.levels[:i]) for i in range(len(self.levels))]
        self.register_buffer("basis", torch.tensor(basis, dtype=torch.int64), persistent=False)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """The pre-rounding latent: each dimension lies strictly inside its level range."""
        return torch.tanh(z + self.shift) * self.half_l - self.offset

    def codes(self, bounded: torch.Tensor) -> torch.Tensor:
        digits = torch.round(bounded).to(torch.int64) + self.half_width
        return (digits * self.basis).sum(dim=-1)


def _block(c_in: int, c_out: int, kernel: tuple[int, int], padding: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


class Conv2dFSQ(nn.Module):
    """Conv2d encoder + FSQ codes + classifier head (about 300k parameters)."""

    input_name = "imu_input"
    output_names = ("behavioral_codes", "confidence")

    def __init__(
        self,
        in_channels: int = 9,
        n_classes: int = 4,
        levels: Sequence[int] = DEFAULT_LEVELS,
        width: int = 64,
    ) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            _block(in_channels, width, (1, 5), (0, 2)),
            _block(width, 2 * width, (1, 5), (0, 2)),
            _block(2 * width, 3 * width, (2, 5), (0, 2)),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
        )
        features = 3 * width
        self.to_latent = nn.Linear(features, len(levels))
        self.fsq = FSQ(levels)
        self.classifier = nn.Sequential(nn.Linear(features, width), nn.ReLU(), nn.Linear(width, n_classes))

    def device_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The part a quantizing accelerator runs: (bounded latent [N, 4], class logits [N, C])."""
        h = self.encoder(x)
        return self.fsq.bound(self.to_latent(h)), self.classifier(h)

    def rounding_latent(self, x: torch.Tensor) -> torch.Tensor:
        """The pre-rounding latent, for screening golden inputs away from rounding boundaries."""
        return self.device_forward(x)[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bounded, logits = self.device_forward(x)
        return self.fsq.codes(bounded), torch.softmax(logits, dim=-1)
