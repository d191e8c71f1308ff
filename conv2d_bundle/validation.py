"""Moved to :mod:`conv2d_bundle.verify.runner`; the names users imported from here keep working."""

from conv2d_bundle.verify.runner import BundleValidator, ValidationResult

__all__ = ["BundleValidator", "ValidationResult"]
