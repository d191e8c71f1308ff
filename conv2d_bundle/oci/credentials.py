"""Registry credentials: ``--username`` with ``--password-stdin``, else ``~/.docker/config.json`` ``auths``.

A :class:`Credentials` never shows its secret: its ``repr`` masks the password, and nothing in this package
writes one to a message, a log line or a report (tests/oci/test_credentials.py reads all three).
Credential helpers (``credsStore``/``credHelpers``) are not run: a command that runs a helper binary named
in a config file is out of scope; their absence is reported, not guessed around.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from conv2d_bundle.errors import RegistryError


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = "--username"

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***, source={self.source!r})"


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def from_docker_config(registry: str, path: Path | None = None) -> Credentials | None:
    """The ``auths`` entry for ``registry`` (``host:port``, also with an ``https://`` or ``http://`` prefix)."""
    path = path or docker_config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path}: unreadable docker config: {type(exc).__name__}") from exc
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        host = str(key).removeprefix("https://").removeprefix("http://").split("/", 1)[0]
        if host != registry or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise RegistryError(
                    f"{path}: the auth entry for {registry} is not base64 user:password"
                ) from exc
            return Credentials(user, password, source=str(path))
        if entry.get("username") and entry.get("password"):
            return Credentials(str(entry["username"]), str(entry["password"]), source=str(path))
    return None


def resolve(registry: str, username: str | None = None, password: str | None = None) -> Credentials | None:
    """Explicit ``username``/``password`` first, then the docker config; None for anonymous access."""
    if username is not None:
        if not password:
            raise RegistryError("--username needs a password: pipe it to --password-stdin")
        return Credentials(username, password)
    if password is not None:
        raise RegistryError("--password-stdin needs --username")
    return from_docker_config(registry)
