"""Liveness and database reachability, for load balancers and the operator."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

import sessionlog
from sessionlog.api.deps import SessionDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: Literal["ok"]


@router.get("/health", response_model=Health)
def health(db: SessionDep) -> Health:
    db.exec(text("SELECT 1"))  # type: ignore[call-overload]
    return Health(status="ok", version=sessionlog.__version__, database="ok")
