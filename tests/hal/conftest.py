"""Fixtures shared by the HAL tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hal.scripted_device import ScriptedDevice


@pytest.fixture
def device() -> Iterator[ScriptedDevice]:
    """A simulated stimulator played by the test over a real socket."""
    scripted = ScriptedDevice()
    yield scripted
    scripted.close()
