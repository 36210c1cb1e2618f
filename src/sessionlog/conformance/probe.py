"""The emulator probe: what the conformance contract may observe and switch on a device's far end.

What reached the wire, and whether the output stage is on, can only be seen when the device is an
emulator. A driver's emulator offers that through this small protocol, reached as ``.emulator`` on
the pyserial port its URL handler opens; the contract runs its wire-level and fault-injection checks
only when ``probe_for`` finds one, and the rest against anything, hardware included. The two
built-in emulators predate the protocol and are adapted here rather than changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sessionlog.hal.driver import Driver
from sessionlog.safety.plan import PhaseType


@dataclass(frozen=True)
class WireCommand:
    """One host command as the device decoded it.

    ``keepalive`` marks traffic that changes nothing on the device (heartbeats, identity or status
    queries), so the contract can tell "nothing was sent" from "only the link was kept alive"."""

    timestamp_s: float
    name: str
    keepalive: bool


@runtime_checkable
class EmulatorProbe(Protocol):
    """The far end of a port, seen by the contract. Channels are 1-based, currents in µA.

    The fault switches stay on once thrown: the contract throws one per device and then expects the
    driver to fault, stop output and refuse every later command."""

    @property
    def output_active(self) -> bool:
        """True while any channel's output stage delivers current."""
        ...

    def delivered_amplitude_ua(self, channel: int) -> int:
        """The amplitude ``channel`` delivers now; 0 when it is not delivering."""
        ...

    def wire_log(self) -> Sequence[WireCommand]:
        """Every host command decoded so far, oldest first."""
        ...

    def unplug(self) -> None:
        """Vanish like a pulled USB cable: output off, every port operation fails."""
        ...

    def raise_device_error(self) -> None:
        """A hardware fault the device reports by itself, stopping its output."""
        ...

    def refuse_next_command(self) -> None:
        """Answer the next command with an error reply instead of an acknowledgement."""
        ...

    def drop_replies(self) -> None:
        """Lose every reply from now on (the device still acts on what it receives)."""
        ...

    def corrupt_replies(self) -> None:
        """Damage every frame the device sends from now on."""
        ...


@dataclass(frozen=True)
class DeliveredPulse:
    """The pulse train one channel delivers: what the plan's timing fields became on the device."""

    pulse_width_us: int
    """One phase, as in the plan."""
    frequency_hz: float
    phase_type: PhaseType
    pulses_per_period: int = 1
    """More than one for a burst (a ScienceMode2 doublet or triplet), which no plan asks for."""


@runtime_checkable
class PulseProbe(Protocol):
    """An emulator probe that also reports each channel's pulse train, so that the contract checks
    pulse width, frequency and phase type as it checks amplitudes. Apart from ``EmulatorProbe``
    so that a probe written without it still runs every other check."""

    def delivered_pulse(self, channel: int) -> DeliveredPulse | None:
        """The pulse train 1-based ``channel`` delivers now; None when it delivers none."""
        ...


@runtime_checkable
class TelemetryProbe(Protocol):
    """An emulator probe of a device that reports measured current by itself, so that the contract
    checks the driver hands every reading on: the base class's overcurrent check, the session
    record and the live view see only what the driver decodes. Optional like ``PulseProbe``."""

    def last_telemetry(self) -> dict[int, int]:
        """Per 1-based channel, the measured current (µA) the device last reported."""
        ...


class _SimulatedProbe:
    """The simulated reference stimulator's emulator seen through the probe protocol."""

    def __init__(self, emulator: object) -> None:
        from sessionlog_drivers.simulated.emulator import StimulatorEmulator
        from sessionlog_drivers.simulated.protocol import Command

        assert isinstance(emulator, StimulatorEmulator)
        self._emulator = emulator
        self._keepalive = frozenset({Command.HEARTBEAT, Command.IDENTIFY, Command.GET_STATUS})

    @property
    def output_active(self) -> bool:
        return self._emulator.output_active

    def delivered_amplitude_ua(self, channel: int) -> int:
        return self._emulator.output_amplitude_ua(channel - 1)

    def wire_log(self) -> Sequence[WireCommand]:
        return [
            WireCommand(e.timestamp_s, e.command.name.lower(), e.command in self._keepalive)
            for e in self._emulator.command_log
        ]

    def last_telemetry(self) -> dict[int, int]:
        return {index + 1: ua for index, ua in self._emulator.last_telemetry().items()}

    def delivered_pulse(self, channel: int) -> DeliveredPulse | None:
        settings = self._emulator.delivered_settings(channel - 1)
        if settings is None:
            return None
        return DeliveredPulse(
            pulse_width_us=settings.pulse_width_us,
            frequency_hz=settings.frequency_hz,
            phase_type=PhaseType[settings.phase_type.name],
        )

    def unplug(self) -> None:
        self._emulator.unplug()

    def raise_device_error(self) -> None:
        self._emulator.set_device_error(True)

    def refuse_next_command(self) -> None:
        self._emulator.faults.nak_next = 1

    def drop_replies(self) -> None:
        self._emulator.faults.drop_rate = 1.0

    def corrupt_replies(self) -> None:
        self._emulator.faults.corrupt_rate = 1.0


class _RehaStim2Probe:
    """The emulated RehaStim 2 seen through the probe protocol (it carries whole mA)."""

    def __init__(self, emulator: object) -> None:
        from sessionlog_drivers.rehastim2.emulator import RehaStim2Emulator
        from sessionlog_drivers.rehastim2.protocol import Command

        assert isinstance(emulator, RehaStim2Emulator)
        self._emulator = emulator
        self._keepalive = frozenset(
            {Command.WATCHDOG, Command.GET_STIMULATION_MODE, Command.INIT_ACK}
        )

    @property
    def output_active(self) -> bool:
        return self._emulator.output_active

    def delivered_amplitude_ua(self, channel: int) -> int:
        return self._emulator.output_current_ma(channel) * 1000

    def wire_log(self) -> Sequence[WireCommand]:
        return [
            WireCommand(e.timestamp_s, e.command.name.lower(), e.command in self._keepalive)
            for e in self._emulator.command_log
        ]

    def delivered_pulse(self, channel: int) -> DeliveredPulse | None:
        """ScienceMode2 pulses are biphasic and charge-balanced; a channel pulses on every pass
        of the channel list, or on every (factor + 1)-th when it is a low-frequency channel."""
        pulse = self._emulator.output_pulse(channel)
        channel_list = self._emulator.channel_list
        if pulse is None or channel_list is None or channel_list.one_shot:
            return None
        passes = 1
        if channel in channel_list.low_frequency_channels:
            passes += channel_list.low_frequency_factor
        return DeliveredPulse(
            pulse_width_us=pulse.pulse_width_us,
            frequency_hz=1000 / (channel_list.main_stimulation_interval_ms * passes),
            phase_type=PhaseType.BIPHASIC_SYMMETRIC,
            pulses_per_period=pulse.pulse_group.pulse_count,
        )

    def unplug(self) -> None:
        self._emulator.unplug()

    def raise_device_error(self) -> None:
        # The stimulation module's own error: reported as StimulationError −3 while stimulating.
        self._emulator.faults.module_error = True

    def refuse_next_command(self) -> None:
        self._emulator.faults.busy_next = 1

    def drop_replies(self) -> None:
        self._emulator.faults.drop_rate = 1.0

    def corrupt_replies(self) -> None:
        self._emulator.faults.corrupt_rate = 1.0


_ADAPTERS: dict[str, Callable[[object], EmulatorProbe]] = {
    "sessionlog_drivers.simulated.emulator.StimulatorEmulator": _SimulatedProbe,
    "sessionlog_drivers.rehastim2.emulator.RehaStim2Emulator": _RehaStim2Probe,
}
"""Adapters by the emulator's qualified class name, so no driver package is imported to look."""


def probe_for(port: object) -> EmulatorProbe | None:
    """The probe of the device behind ``port``, or None when it is not an emulator we can see into
    (real hardware, a socket to an out-of-process emulator, a port without ``.emulator``)."""
    emulator = getattr(port, "emulator", None)
    if emulator is None:
        return None
    if isinstance(emulator, EmulatorProbe):
        return emulator
    kind = type(emulator)
    adapter = _ADAPTERS.get(f"{kind.__module__}.{kind.__qualname__}")
    return None if adapter is None else adapter(emulator)


def probe_of_driver(driver: Driver) -> EmulatorProbe | None:
    return probe_for(driver.transport.port)
