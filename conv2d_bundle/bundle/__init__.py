"""The bundle: the artifact and its store.

The read side (:mod:`.store`: ``Bundle``, ``get_bundle``, ``list_bundles``), the hashed manifest and digests
(:mod:`.manifest`, :mod:`.digest`), the JSON shapes of its files (:mod:`.schema`), atomic writes and locks,
provenance, the generated docs, the golden reference and its taps, signatures, archives, and placement of a
bundle that arrived from elsewhere (:mod:`.placement`). Nothing here imports torch at import time, and nothing
here knows how a bundle is verified: the layers above read it (``ARCHITECTURE.md``).

``from conv2d_bundle.bundle import Bundle`` (the module this package replaced) keeps working.
"""

from conv2d_bundle.bundle.store import Bundle, default_artifacts_dir, get_bundle, is_bundle_dir, list_bundles

__all__ = ["Bundle", "default_artifacts_dir", "get_bundle", "is_bundle_dir", "list_bundles"]
