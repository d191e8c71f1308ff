"""Benchmarks (not tests): ``python -m bench [--quick] [--json results.json] [--only KEYS]``.

Every row is a figure measured side by side with its reference in the same run (interleaved, medians of
several runs) and reported as a ratio, because the machines these run on are shared and noisy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Row:
    """One line of the table: a figure, what it is compared with, the ratio and whether the goal is met."""

    key: str
    figure: str
    compared_with: str
    value: str
    reference: str
    ratio: float | None
    goal: str
    met: bool | None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
