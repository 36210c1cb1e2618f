"""Dependencies shared by the routes: the database unit of work and the settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy import Engine
from sqlmodel import Session

from sessionlog.fields import MAX_DB_INT
from sessionlog.settings import Settings
from sessionlog.store.database import session_scope


# The small dependencies are ``async def`` on purpose: they do no I/O, and FastAPI runs a sync
# dependency in a worker thread, a hop per dependency per request.
async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """One transaction per request: committed after the route returns, rolled back on an error."""
    with session_scope(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PathId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="Record id")]
