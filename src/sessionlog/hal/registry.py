"""Finding drivers: one lazy registry over the ``sessionlog.drivers`` entry-point group.

The built-in drivers register exactly as a third-party package does, so there is a single path from a
name to a driver class, and a driver module is imported only when it is asked for. ``open_device`` is
the one factory: resolve the driver, open the port with the driver's line settings, connect.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from sessionlog.hal.driver import Driver
from sessionlog.hal.errors import DriverLoadError, DriverNotFoundError
from sessionlog.hal.transport import SerialTransport, register_url_handler_package

ENTRY_POINT_GROUP = "sessionlog.drivers"


def driver_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_drivers() -> list[str]:
    return sorted(driver_entry_points())


def load_driver(name: str) -> type[Driver]:
    found = driver_entry_points().get(name)
    if found is None:
        raise DriverNotFoundError(name, available_drivers())
    try:
        driver_class = found.load()
    except Exception as error:
        raise DriverLoadError(name, f"{type(error).__name__}: {error}") from error
    if not (isinstance(driver_class, type) and issubclass(driver_class, Driver)):
        raise DriverLoadError(name, f"{found.value} is not a subclass of sessionlog.hal.Driver")
    if driver_class.url_handler_package:
        register_url_handler_package(driver_class.url_handler_package)
    return driver_class


def open_device(url: str, driver: str) -> Driver:
    """Open ``url`` with the named driver and connect; the caller owns (and closes) the result."""
    driver_class = load_driver(driver)
    transport = SerialTransport(url, driver_class.serial_settings)
    device = driver_class(transport)
    try:
        device.connect()
    except BaseException:
        device.close()
        raise
    return device
