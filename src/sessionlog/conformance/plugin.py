"""The pytest plugin of the driver contract: its command-line options, and the contract collected
for the driver they name.

``--sessionlog-driver NAME`` runs ``contract.DriverContract`` for the driver registered as NAME
(unless a test module of the run already subclasses the contract for it), against the driver's
emulator; ``--sessionlog-url URL`` points that run at another port, and ``--sessionlog-hardware``
says the port is a real device: emulator-only checks are skipped with the reason, and the plans use
the gentlest currents. Without these options the plugin does nothing, so it is harmless in any
other project's test run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionlog.conformance import selected
from sessionlog.conformance.contract import (
    DRIVER_OPTION,
    HARDWARE_OPTION,
    URL_OPTION,
    DriverContract,
)
from sessionlog.hal.errors import HalError
from sessionlog.hal.registry import load_driver


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sessionlog", "sessionlog driver conformance")
    group.addoption(
        "--sessionlog-driver",
        dest=DRIVER_OPTION,
        metavar="NAME",
        default=None,
        help="run the driver contract for the driver registered as NAME "
        "(entry-point group sessionlog.drivers)",
    )
    group.addoption(
        "--sessionlog-url",
        dest=URL_OPTION,
        metavar="URL",
        default=None,
        help="the port to run that driver's contract against (default: the driver's "
        "emulator URL), e.g. /dev/ttyUSB0, COM3, socket://host:port",
    )
    group.addoption(
        "--sessionlog-hardware",
        dest=HARDWARE_OPTION,
        action="store_true",
        default=False,
        help="the URL is a real device (connect a test load, never a person): skip the "
        "emulator-only checks and use the gentlest currents",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Refuse option combinations that would test something other than what was asked for."""
    name = config.getoption(DRIVER_OPTION)
    url = config.getoption(URL_OPTION)
    hardware = config.getoption(HARDWARE_OPTION)
    if (url or hardware) and not name:
        raise pytest.UsageError(
            "--sessionlog-url and --sessionlog-hardware apply to the driver named by "
            "--sessionlog-driver NAME; give it too"
        )
    if hardware and not url:
        raise pytest.UsageError("--sessionlog-hardware needs --sessionlog-url naming the port")
    if name:
        try:
            load_driver(name)
        except HalError as error:
            raise pytest.UsageError(str(error)) from error


def _runs_contract_for(item: pytest.Item, name: str) -> bool:
    contract = getattr(item, "cls", None)
    return (
        isinstance(contract, type)
        and issubclass(contract, DriverContract)
        and (contract.driver_name or name) == name
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Add the contract for ``--sessionlog-driver`` unless the run already holds it. Runs before
    other plugins' hooks, so ``-k`` and ``-m`` select among the added checks too."""
    name = config.getoption(DRIVER_OPTION)
    if not name or any(_runs_contract_for(item, name) for item in items):
        return
    module = pytest.Module.from_parent(
        session, path=Path(selected.__file__), nodeid=f"sessionlog-contract[{name}]"
    )
    items.extend(item for item in session.genitems(module) if isinstance(item, pytest.Item))
