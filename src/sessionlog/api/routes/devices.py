"""Devices: the stimulators known to this service, by driver and serial number."""

from __future__ import annotations

from sessionlog.api.routes.crud import crud_router
from sessionlog.schemas import DeviceCreate, DevicePublic, DeviceUpdate
from sessionlog.security.scopes import Scope
from sessionlog.store.models import Device

router = crud_router(
    resource="device",
    path="/devices",
    model=Device,
    create_schema=DeviceCreate,
    update_schema=DeviceUpdate,
    public_schema=DevicePublic,
    unique=("driver", "serial_number"),
    tag="devices",
    read_scope=Scope.DEVICES_READ,
    write_scope=Scope.DEVICES_WRITE,
)
