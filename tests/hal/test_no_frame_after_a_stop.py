"""No command frame reaches the wire after an emergency stop that overtook its command.

A command's thread checks whether an emergency stop overtook it, then writes its frame. Were the
stop written by another thread between the two, the frame would follow the stop on the line, and
a device that kept its configuration through a stop could start again. The check therefore runs
under the transport's write lock, which the stop's write takes too. The interleaving cannot be
produced on demand with real timing, so the test stops the output from inside the command's call
to ``write``, the moment before the frame would be written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from sessionlog.hal import DriverState, InvalidStateError, open_device
from sessionlog_drivers.simulated import protocol as wire
from sessionlog_drivers.simulated.emulator import StimulatorEmulator
from tests.hal.plans import change, ems_plan, start_output


def test_an_emergency_stop_just_before_a_frame_is_written_keeps_the_frame_off_the_wire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with open_device("sim://?channels=2&seed=3", driver="simulated") as driver:
        approved = start_output(driver, ems_plan(20, 20))
        emulator: StimulatorEmulator = driver.transport.port.emulator  # type: ignore[attr-defined]
        transport = driver.transport
        write = transport.write
        amplitude_frame = wire.Command.SET_AMPLITUDE

        checked_under_the_lock: list[bool] = []

        def stop_first(data: bytes, *, unless: Callable[[], None] | None = None) -> None:
            frames = wire.FrameDecoder().feed(data)
            if frames and frames[0].command == amplitude_frame:
                stopper = threading.Thread(target=driver.emergency_stop)
                stopper.start()
                stopper.join(5)
            if unless is None:
                write(data)
                return
            check = unless

            def noting_the_lock() -> None:
                checked_under_the_lock.append(transport._write_lock.locked())
                check()

            write(data, unless=noting_the_lock)

        monkeypatch.setattr(transport, "write", stop_first)
        with pytest.raises(InvalidStateError, match="emergency stop"):
            driver.set_amplitude(change(approved, 25_000), channel=1)

        assert checked_under_the_lock  # the change's frame was judged...
        assert all(checked_under_the_lock)  # ...and every frame under the write lock
        commands = [e.command for e in emulator.command_log]
        stop_at = commands.index(wire.Command.EMERGENCY_STOP)
        assert wire.Command.SET_AMPLITUDE not in commands[stop_at:]
        assert driver.state is DriverState.STOPPED
        assert not emulator.output_active
