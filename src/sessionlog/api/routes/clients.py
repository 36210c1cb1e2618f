"""Clients: pseudonymous codes with their screening (contraindications) and prescription."""

from __future__ import annotations

from sessionlog.api.routes.crud import crud_router
from sessionlog.schemas import ClientCreate, ClientPublic, ClientUpdate
from sessionlog.security.scopes import Scope
from sessionlog.store.models import Client

router = crud_router(
    resource="client",
    path="/clients",
    model=Client,
    create_schema=ClientCreate,
    update_schema=ClientUpdate,
    public_schema=ClientPublic,
    unique=("code",),
    tag="clients",
    read_scope=Scope.CLIENTS_READ,
    write_scope=Scope.CLIENTS_WRITE,
    audit_reads=True,
)
