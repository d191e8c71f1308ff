"""The one exception family of conv2d-bundle.

Every error the library raises on purpose is a :class:`BundleError`. The CLI turns each into one line on
stderr and an exit code (see ``cli.py``); library users can catch ``BundleError`` alone.
"""

from __future__ import annotations


class BundleError(Exception):
    """Base of every error conv2d-bundle raises on purpose."""

    #: exit code the CLI uses for this kind of error (2: bad input or usage)
    exit_code = 2


class ConfigError(BundleError):
    """The experiment configuration is missing, unreadable or invalid."""


class ModelLoadError(BundleError):
    """A checkpoint or model class could not be loaded safely."""


class ExportError(BundleError):
    """A format could not be exported (converter failure, missing extra)."""


class MissingExtraError(ExportError):
    """An optional dependency (an extra) needed for a format is not installed."""


class ParityError(ExportError):
    """An export does not reproduce the source model's outputs."""


class BundleNotFoundError(BundleError):
    """No bundle matches a hash, prefix or path."""


class AmbiguousBundleError(BundleError):
    """A hash prefix matches more than one bundle."""


class BundleIntegrityError(BundleError):
    """A bundle's files disagree with its MANIFEST.json or metadata, or a file is malformed."""


class HefError(BundleError):
    """A file is not a valid HEF, or a HEF does not fit the bundle."""


class ArchiveError(BundleError):
    """An archive cannot be created or is unsafe to import."""


class RegistryError(BundleError):
    """An OCI registry cannot be reached, refuses the request or credentials, or serves content that does not
    match its digests (push, pull, evidence)."""


class ValidationFailed(BundleError):
    """The checks did not pass: one failed, or the run was incomplete (CLI exit code 1)."""

    exit_code = 1


class BundleWarning(UserWarning):
    """A finding that does not block deployment (low opset, large file); checks raise it and reports list it."""
