"""Dependencies shared by the routes: the database unit of work and the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from sessionlog.fields import MAX_DB_INT
from sessionlog.settings import Settings


# The small dependencies are ``async def`` on purpose: they do no I/O, and FastAPI runs a sync
# dependency in a worker thread, a hop per dependency per request.
async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _finish(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_db(engine: Annotated[Engine, Depends(get_engine)]) -> AsyncIterator[Session]:
    """One transaction per request: committed after the route returns, rolled back on an error.

    Opening a session does no I/O (it connects at its first statement), so only the end of the
    unit of work goes to a worker thread: one hop instead of one for each side.
    """
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    except BaseException:
        await run_in_threadpool(_finish, session, commit=False)
        raise
    await run_in_threadpool(_finish, session, commit=True)


SessionDep = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PathId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="Record id")]
