"""The token signing secret: from the settings, or generated once into the data folder.

A secret that is generated is written with owner-only permissions and reused at every start, so
tokens survive a restart; no secret is ever part of the code or the documentation.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sessionlog.settings import Settings

SIGNING_KEY_FILE = "auth-secret"


def auth_secret(settings: Settings) -> str:
    if settings.auth_secret is not None:
        return settings.auth_secret.get_secret_value()
    path = Path(settings.data_dir) / SIGNING_KEY_FILE
    if path.is_file():
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(value)
    return value
