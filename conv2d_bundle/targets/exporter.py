"""``ModelExporter``: export a model to ONNX and Core ML without making a bundle (each target's exporter,
``conv2d_bundle/targets/<name>/export.py``, does the work and imports its heavy dependency when called)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from conv2d_bundle.errors import MissingExtraError

log = logging.getLogger(__name__)


class ModelExporter:
    """Export one model to every format this installation supports, outside a bundle."""

    def export_onnx(self, model: Any, input_shape: tuple[int, ...], output_path: Path, **kwargs: Any) -> Path:
        from conv2d_bundle.targets.onnx.export import export_onnx

        return export_onnx(model, input_shape, Path(output_path), **kwargs).path

    def export_coreml(
        self, model: Any, input_shape: tuple[int, ...], output_path: Path, **kwargs: Any
    ) -> Path:
        from conv2d_bundle.targets.ios.export import export_coreml

        return export_coreml(model, input_shape, Path(output_path), **kwargs).path

    def export_all(
        self, model: Any, input_shape: tuple[int, ...], output_dir: Path, model_name: str = "model"
    ) -> dict[str, Path]:
        """ONNX always; Core ML where coremltools is installed (a missing extra is logged, not hidden)."""
        output_dir = Path(output_dir)
        formats = {"onnx": self.export_onnx(model, input_shape, output_dir / f"{model_name}.onnx")}
        try:
            formats["coreml"] = self.export_coreml(model, input_shape, output_dir / f"{model_name}.mlpackage")
        except MissingExtraError as exc:
            log.warning("Core ML export skipped: %s", exc)
        return formats
