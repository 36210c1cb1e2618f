"""Hasomed RehaStim 2 over ScienceMode2: the codec (``protocol``), the driver (``driver``), and an
emulator of the device's firmware written from the protocol spec (``emulator``) behind a pyserial
``rehastim2://`` URL handler (``protocol_rehastim2``), so the driver is tested on the serial path
real hardware takes.
"""

from __future__ import annotations

URL_HANDLER_PACKAGE = "sessionlog_drivers.rehastim2"
"""Where pyserial finds ``protocol_rehastim2`` for ``rehastim2://`` URLs."""
