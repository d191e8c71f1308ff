"""The source model: architectures, safe loading of user models, and the built-in model's post-processing.

``conv2d_fsq`` and ``loading`` import torch: they are on the *create* path only. ``postprocess`` is numpy
only (the verify path reads it through the golden reference), so this package's names load on first use:
importing ``conv2d_bundle.models.postprocess`` never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_LAZY = {
    "FSQ": "conv2d_bundle.models.conv2d_fsq",
    "Conv2dFSQ": "conv2d_bundle.models.conv2d_fsq",
    "ARCHITECTURES": "conv2d_bundle.models.loading",
    "build_model": "conv2d_bundle.models.loading",
    "load_checkpoint": "conv2d_bundle.models.loading",
    "load_model": "conv2d_bundle.models.loading",
}

if TYPE_CHECKING:
    from conv2d_bundle.models.conv2d_fsq import FSQ, Conv2dFSQ
    from conv2d_bundle.models.loading import ARCHITECTURES, build_model, load_checkpoint, load_model

__all__ = ["ARCHITECTURES", "FSQ", "Conv2dFSQ", "build_model", "load_checkpoint", "load_model"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conv2d_bundle.models' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
