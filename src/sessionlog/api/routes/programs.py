"""Programs: named parameter presets a session starts from."""

from __future__ import annotations

from sessionlog.api.routes.crud import crud_router
from sessionlog.schemas import ProgramCreate, ProgramPublic, ProgramUpdate
from sessionlog.security.scopes import Scope
from sessionlog.sessions.approval import check_program
from sessionlog.store.models import Program

router = crud_router(
    resource="program",
    path="/programs",
    model=Program,
    create_schema=ProgramCreate,
    update_schema=ProgramUpdate,
    public_schema=ProgramPublic,
    unique=("name",),
    tag="programs",
    read_scope=Scope.PROGRAMS_READ,
    write_scope=Scope.PROGRAMS_WRITE,
    check=check_program,
)
