"""Host-side post-processing in plain numpy: FSQ rounding, code index, softmax.

This is what runs on the CPU next to an accelerator that executes only the device part of the model
(Hailo: everything up to the bounded latent and the class logits). It is also how the golden inputs are
screened against rounding boundaries. numpy only: importable on a device without torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fsq_half_widths(levels: Sequence[int]) -> np.ndarray:
    """The integer offset that maps a rounded latent of each dimension onto ``0 .. L-1``."""
    return np.asarray([int(level) // 2 for level in levels], dtype=np.int64)


def fsq_basis(levels: Sequence[int]) -> np.ndarray:
    """Mixed-radix weights: code = sum(digit_i * basis_i), basis = cumprod([1, L0, L1, ...])."""
    return np.cumprod([1, *list(levels)[:-1]]).astype(np.int64)


def fsq_codes(bounded_latent: np.ndarray, levels: Sequence[int]) -> np.ndarray:
    """Integer codes from the bounded (pre-rounding) latent ``[N, len(levels)]``.

    ``np.rint`` rounds half to even, as ``torch.round`` and ONNX ``Round`` do.
    """
    digits = np.rint(np.asarray(bounded_latent, dtype=np.float32)).astype(np.int64) + fsq_half_widths(levels)
    return (digits * fsq_basis(levels)).sum(axis=-1)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float32."""
    x = np.asarray(logits, dtype=np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def rounding_margin(bounded_latent: np.ndarray) -> np.ndarray:
    """Per-row distance of the latent to the nearest rounding boundary (x.5); small means fragile codes."""
    x = np.asarray(bounded_latent, dtype=np.float64)
    return np.abs(np.abs(x - np.floor(x)) - 0.5).min(axis=-1)
