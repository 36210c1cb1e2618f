"""The hardware abstraction layer: transports, the driver base class, the registry and discovery."""

from sessionlog.hal.driver import (
    DeviceFaultReport,
    DeviceIdentity,
    DeviceStatus,
    Driver,
    DriverState,
    Inbound,
    LinkCounters,
    Reply,
    TelemetryReading,
)
from sessionlog.hal.errors import (
    DeviceFaultError,
    DeviceRefusedError,
    DisconnectedError,
    DriverLoadError,
    DriverNotFoundError,
    HalError,
    InvalidStateError,
    PlanNotApprovedError,
    PlanNotEncodableError,
    ReplyTimeoutError,
    TransportError,
    TransportTimeoutError,
)
from sessionlog.hal.registry import ENTRY_POINT_GROUP, available_drivers, load_driver, open_device
from sessionlog.hal.transport import SerialSettings, SerialTransport

__all__ = [
    "ENTRY_POINT_GROUP",
    "DeviceFaultError",
    "DeviceFaultReport",
    "DeviceIdentity",
    "DeviceRefusedError",
    "DeviceStatus",
    "DisconnectedError",
    "Driver",
    "DriverLoadError",
    "DriverNotFoundError",
    "DriverState",
    "HalError",
    "Inbound",
    "InvalidStateError",
    "LinkCounters",
    "PlanNotApprovedError",
    "PlanNotEncodableError",
    "Reply",
    "ReplyTimeoutError",
    "SerialSettings",
    "SerialTransport",
    "TelemetryReading",
    "TransportError",
    "TransportTimeoutError",
    "available_drivers",
    "load_driver",
    "open_device",
]
