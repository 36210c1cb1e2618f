"""The contract for the driver named on the command line, collected by the plugin.

``pytest --sessionlog-driver NAME`` adds this module to the run (see ``plugin``), so a driver can be
checked without writing a test module first, against its emulator or, with ``--sessionlog-url`` and
``--sessionlog-hardware``, against a device on a real port.
"""

from __future__ import annotations

from sessionlog.conformance.contract import DriverContract


class TestSelectedDriver(DriverContract):
    """The contract for ``--sessionlog-driver`` (``driver_name`` stays None to read the option)."""
