"""conv2d-bundle: one content-addressed deployment bundle per experiment, proven deployable by pytest checks.

The public API is imported lazily, so ``import conv2d_bundle`` stays cheap and never imports torch:
bundles are verified on devices that have only numpy and onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "ArtifactBundler": "conv2d_bundle.lifecycle.create",
    "Bundle": "conv2d_bundle.bundle.store",
    "get_bundle": "conv2d_bundle.bundle.store",
    "list_bundles": "conv2d_bundle.bundle.store",
    "BundleValidator": "conv2d_bundle.verify.runner",
    "ValidationResult": "conv2d_bundle.verify.runner",
    "ModelExporter": "conv2d_bundle.targets.exporter",
    "load_config": "conv2d_bundle.config",
    "BundleManifest": "conv2d_bundle.bundle.manifest",
}

if TYPE_CHECKING:
    from conv2d_bundle.bundle.manifest import BundleManifest
    from conv2d_bundle.bundle.store import Bundle, get_bundle, list_bundles
    from conv2d_bundle.config import load_config
    from conv2d_bundle.lifecycle.create import ArtifactBundler
    from conv2d_bundle.targets.exporter import ModelExporter
    from conv2d_bundle.verify.runner import BundleValidator, ValidationResult

__all__ = [
    "ArtifactBundler",
    "Bundle",
    "BundleManifest",
    "BundleValidator",
    "ModelExporter",
    "ValidationResult",
    "__version__",
    "get_bundle",
    "list_bundles",
    "load_config",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conv2d_bundle' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
