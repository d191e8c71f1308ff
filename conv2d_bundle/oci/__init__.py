"""Sharing bundles through an OCI registry: push, pull, and validation evidence attached as referrers.

- :mod:`.reference`: ``oci://HOST[:PORT]/REPO[:TAG][@sha256:DIGEST]`` references.
- :mod:`.client`: a small OCI distribution client over httpx (manifests, uploads, auth, TLS); blob downloads over
  http.client, into reused buffers.
- :mod:`.connections`: the keep-alive connections those downloads use (proxies included).
- :mod:`.artifact`: a bundle as one OCI artifact (the layout) and its push and verified pull.
- :mod:`.cache`: the content-addressed pull cache that ``verify oci://`` and ``pytest --bundle oci://`` use.
- :mod:`.evidence`: validation reports as signed (DSSE / in-toto) referrers of a bundle's manifest.

Nothing here is imported unless a command or ``--bundle`` names an ``oci://`` reference.
"""

from __future__ import annotations

SCHEME = "oci://"


def is_oci_ref(text: str) -> bool:
    return text.startswith(SCHEME)
