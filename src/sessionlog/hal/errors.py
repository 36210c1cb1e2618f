"""Typed errors of the hardware abstraction layer, each carrying the reason a person can act on.

A session runner catches ``DeviceFaultError`` to learn that output was stopped and why; the other
errors say what went wrong before a device was in use (no such driver, a port that will not open).
"""

from __future__ import annotations


class HalError(Exception):
    """Base of every error raised by the HAL."""


class DriverNotFoundError(HalError):
    def __init__(self, name: str, available: list[str]) -> None:
        known = ", ".join(sorted(available)) or "none installed"
        super().__init__(
            f"no driver named {name!r} is registered in the 'sessionlog.drivers' entry-point group "
            f"(available: {known})"
        )
        self.name = name


class DriverLoadError(HalError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"the driver {name!r} is registered but could not be loaded: {reason}")
        self.name = name


class TransportError(HalError):
    """The serial link failed (the port vanished, a write failed)."""


class TransportTimeoutError(TransportError):
    """Fewer bytes arrived than were needed within the timeout; partial data is never returned."""


class DisconnectedError(TransportError):
    """The port is gone: unplugged, closed by the peer, or closed by us."""


class ReplyTimeoutError(HalError):
    """The device did not acknowledge a command in time."""


class DeviceRefusedError(HalError):
    """The device answered a command with an error code instead of an acknowledgement."""

    def __init__(self, operation: str, code: int, reason: str) -> None:
        super().__init__(f"the device refused {operation}: {reason} (code {code})")
        self.operation = operation
        self.code = code
        self.reason = reason


class DeviceFaultError(HalError):
    """The driver has stopped output after a fault and accepts no further commands."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"device faulted, output stopped: {reason}")
        self.reason = reason


class DuplicateReplyKeyError(HalError):
    """A driver sent a request under the reply key of a request still waiting for its reply, so
    either could be answered with the other's reply: a defect of the driver, never of the device."""

    def __init__(self, operation: str, key: object) -> None:
        super().__init__(
            f"{operation} was sent under the reply key {key!r}, which a request still waiting "
            "for its reply uses: each request in flight needs a key of its own (a driver defect)"
        )
        self.operation = operation
        self.key = key


class PlanNotApprovedError(HalError):
    """A driver was handed something other than a plan approved against its own capabilities."""


class InvalidStateError(HalError):
    """The command does not fit the driver's state (e.g. start before a plan was applied)."""


class PlanNotEncodableError(HalError):
    """An approved plan that this device's wire format cannot carry exactly (nothing is rounded).

    Raised before anything is written; the driver stays usable, since nothing went wrong on the
    device, and the plan must be changed."""
