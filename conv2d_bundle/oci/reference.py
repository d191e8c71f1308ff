"""``oci://HOST[:PORT]/REPO[:TAG][@sha256:DIGEST]``: where a bundle lives in a registry.

The repository and tag grammar are the OCI distribution spec's (lowercase path components separated by
``/``, ``.``, ``_``, ``__`` or ``-``; a tag of at most 128 word characters, dots and dashes, not starting with
a dot or dash). A reference may carry a tag, a digest, both (the digest wins), or neither (``latest``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from conv2d_bundle.errors import RegistryError
from conv2d_bundle.oci import SCHEME

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPO = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?$")


@dataclass(frozen=True)
class OciRef:
    registry: str  # host[:port], as typed
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def host(self) -> str:
        host = self.registry
        if host.startswith("["):
            return host[1 : host.index("]")]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def with_digest(self, digest: str) -> OciRef:
        return OciRef(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        text = f"{SCHEME}{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_ref(text: str) -> OciRef:
    """An :class:`OciRef`, or RegistryError saying which part is malformed."""
    if not text.startswith(SCHEME):
        raise RegistryError(f"{text!r} is not a registry reference: use oci://HOST[:PORT]/REPO[:TAG]")
    rest = text[len(SCHEME) :]
    registry, _, path = rest.partition("/")
    if not registry or not _HOST.match(registry):
        raise RegistryError(f"{text}: {registry!r} is not a registry host[:port]")
    if not path:
        raise RegistryError(f"{text}: no repository after the registry (oci://{registry}/team/name:tag)")
    digest = None
    if "@" in path:
        path, _, digest = path.partition("@")
        if not _DIGEST.match(digest):
            raise RegistryError(f"{text}: {digest!r} is not a sha256:<64 hex> digest")
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, _, tag = path.rpartition(":")
        if not _TAG.match(tag):
            raise RegistryError(f"{text}: {tag!r} is not a valid tag")
    if not _REPO.match(path):
        raise RegistryError(
            f"{text}: {path!r} is not a valid repository name (lowercase letters, digits, . _ - and /)"
        )
    return OciRef(registry, path, tag, digest)
