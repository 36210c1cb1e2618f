"""Dependencies shared by the routes: the database unit of work and the settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from sessionlog.api.problems import ProblemError
from sessionlog.fields import MAX_DB_INT
from sessionlog.settings import Settings

logger = logging.getLogger(__name__)

COMMIT_RETRY_AFTER_S = 1
"""``Retry-After`` of the answer to a request whose transaction the database did not commit."""


# The small dependencies are ``async def`` on purpose: they do no I/O, and FastAPI runs a sync
# dependency in a worker thread, a hop per dependency per request.
async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _rollback(session: Session) -> None:
    try:
        session.rollback()
    finally:
        session.close()


def _commit(session: Session) -> None:
    try:
        session.commit()
    except BaseException:
        # A COMMIT that failed may leave the transaction open on the connection (SQLite keeps it
        # after SQLITE_BUSY), and the pool would not roll back a transaction the session has
        # given up on: roll it back here, so the connection returns to the pool clean.
        try:
            session.rollback()
        except Exception:
            logger.exception("rollback after a failed commit failed too")
        raise
    finally:
        session.close()


def not_stored(error: BaseException) -> ProblemError:
    """The answer when COMMIT fails: a 503 saying the change was not confirmed, never a 2xx.

    The client cannot know whether a COMMIT that failed mid-way took effect, so the answer tells it
    to retry with the same ``Idempotency-Key``: the retry either replays the stored answer or
    creates the record once.
    """
    problem = ProblemError(
        503,
        "Change not stored",
        detail="the database did not confirm the transaction, so the change cannot be counted "
        "as stored; retry the request (with the same Idempotency-Key, if it had one)",
        kind="not-stored",
    )
    problem.headers = {"Retry-After": str(COMMIT_RETRY_AFTER_S)}
    return problem


async def get_db(engine: Annotated[Engine, Depends(get_engine)]) -> AsyncIterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on an error.

    ``SessionDep`` runs this with ``scope="function"``, so the commit ends before the response is
    sent: a 2xx then always means the data is stored, and a client that reads right after it sees
    its write. A COMMIT that fails becomes a problem response (409 for a constraint the database
    checks at commit, 503 otherwise) instead of a success already on its way. Streaming responses
    read through connections of their own, so nothing streams from this session after it closed.

    Opening a session does no I/O (it connects at its first statement), so only the end of the
    unit of work goes to a worker thread: one hop instead of one for each side.
    """
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    except BaseException:
        await run_in_threadpool(_rollback, session)
        raise
    try:
        await run_in_threadpool(_commit, session)
    except IntegrityError:
        raise
    except Exception as error:
        logger.exception("commit failed; the request's changes were not stored")
        raise not_stored(error) from error


SessionDep = Annotated[Session, Depends(get_db, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PathId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="Record id")]
