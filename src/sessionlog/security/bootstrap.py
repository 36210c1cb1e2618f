"""The first administrator of an embedded installation: created once, with a random password.

No fixed password ever ships. On the first start of the embedded default, when no user exists yet,
an ``admin`` account is created with a generated password, which is printed once and written to an
owner-only file in the data folder so the operator can sign in and change it.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from sqlalchemy import Engine, func
from sqlmodel import select

from sessionlog.security.passwords import hash_password
from sessionlog.settings import Settings
from sessionlog.store.audit import append_event
from sessionlog.store.database import session_scope
from sessionlog.store.models import User

logger = logging.getLogger(__name__)

INITIAL_ADMIN = "admin"
PASSWORD_FILE = "initial-admin-password.txt"  # noqa: S105  (a file name)


def create_initial_admin(engine: Engine, settings: Settings) -> str | None:
    """Create the first admin if there is no user at all; returns the password, or None."""
    with session_scope(engine) as db:
        if db.exec(select(func.count()).select_from(User)).one() > 0:
            return None
        password = secrets.token_urlsafe(18)
        admin = User(
            username=INITIAL_ADMIN,
            display_name="Administrator",
            role="admin",
            password_hash=hash_password(password),
        )
        db.add(admin)
        db.flush()
        append_event(
            db,
            actor_id=None,
            actor_via="bootstrap",
            action="create",
            resource="user",
            resource_id=admin.id,
            after={"username": INITIAL_ADMIN, "role": "admin"},
            reason="first start of an embedded installation",
        )
    path = Path(settings.data_dir) / PASSWORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    return password
