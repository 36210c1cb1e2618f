"""Users: the practitioners, integrators, analysts and admins the records refer to."""

from __future__ import annotations

from sessionlog.api.routes.crud import crud_router
from sessionlog.schemas import UserCreate, UserPublic, UserUpdate
from sessionlog.store.models import User

router = crud_router(
    resource="user",
    path="/users",
    model=User,
    create_schema=UserCreate,
    update_schema=UserUpdate,
    public_schema=UserPublic,
    unique=("username",),
    tag="users",
)
