"""A user's own model, loaded through ``model.target``: another input shape, other output names."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """Input [N, 3, 1, 20]; outputs ``class_probs`` [N, n_classes] and ``embedding`` [N, 8]."""

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, (1, 5), padding=(0, 2))
        self.head = nn.Linear(8 * 20, n_classes)
        self.embed = nn.Linear(8 * 20, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.conv(x)).flatten(1)
        return torch.softmax(self.head(h), dim=-1), self.embed(h)
