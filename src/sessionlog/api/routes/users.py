"""Users: the practitioners, integrators, analysts and admins the records refer to."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from sessionlog.api.routes.crud import crud_router
from sessionlog.schemas import UserCreate, UserPublic, UserUpdate
from sessionlog.security.passwords import hash_password
from sessionlog.security.scopes import Scope
from sessionlog.store.models import User


def _user_row(data: BaseModel) -> dict[str, Any]:
    """The row values for a user: the password becomes its argon2 hash and is never stored."""
    values = data.model_dump(mode="json", exclude={"password"})
    password = getattr(data, "password", None)
    if password is not None:
        values["password_hash"] = hash_password(password)
    return values


router = crud_router(
    resource="user",
    path="/users",
    model=User,
    create_schema=UserCreate,
    update_schema=UserUpdate,
    public_schema=UserPublic,
    unique=("username",),
    tag="users",
    read_scope=Scope.USERS_READ,
    write_scope=Scope.USERS_WRITE,
    to_row=_user_row,
)
