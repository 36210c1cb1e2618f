"""The driver for the Hasomed RehaStim 2 in ScienceMode2: approved plans to channel-list commands.

It is I/O only, like every driver: the HAL base class owns locking, reply timeouts, the heartbeat
thread, approval checks and stop-on-error. Here the handshake answers the device's Init, the HAL's
operations become continuous-channel-list commands (apply → InitChannelListMode, start and live
amplitude changes → StartChannelListMode, pause and stop → StopChannelListMode), the heartbeat feeds
the device's 1200 ms watchdog, and the device's packets become replies and fault reports. A plan
that the protocol cannot carry exactly (a frequency off the 0.5 ms interval grid, a current that is
not a whole mA) is refused before a byte is written: nothing is rounded.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Hashable, Iterator

from sessionlog.hal import (
    DeviceFaultReport,
    DeviceIdentity,
    DeviceStatus,
    Driver,
    DriverState,
    HalError,
    Inbound,
    PlanNotEncodableError,
    Reply,
    SerialSettings,
    SerialTransport,
)
from sessionlog.safety.capabilities import DeviceCapabilities, ModalityCapabilities
from sessionlog.safety.plan import (
    Modality,
    PhaseType,
    Polarity,
    StimulationPlan,
    Waveform,
)
from sessionlog_drivers.rehastim2 import URL_HANDLER_PACKAGE
from sessionlog_drivers.rehastim2 import protocol as wire

logger = logging.getLogger(__name__)

SUPPORTED_PROTOCOL_VERSIONS = frozenset({1})
"""Init version bytes this driver accepts. The spec (v1.24) states no number; see the doc."""

EMERGENCY_STOP_PACKET_NUMBER = 0xFF
"""Reserved for the pre-encoded emergency stop, so its acknowledgement never matches a request."""

UA_PER_MA = 1000

INTER_PULSE_INTERVAL_MS = 8.0
"""Only doublets and triplets use it; this driver sends single pulses, so it is set to the
firmware's minimum, which keeps Table 2's t1 ≥ nPgr · t2 true for every main interval ≥ 8 ms."""

MAX_LOW_FREQUENCY_DIVISOR = wire.MAX_LOW_FREQUENCY_FACTOR + 1
"""A low-frequency channel pulses on every (factor + 1)-th pass of the channel list."""

HANDSHAKE_TIMEOUT_S = 1.5
"""Three InitRepetitionTimes (500 ms each, §2.3): one lost Init is tolerated."""

CAPABILITIES = DeviceCapabilities(
    model_name="RehaStim 2",
    channel_count=wire.CHANNEL_COUNT,
    modalities={
        Modality.EMS: ModalityCapabilities(
            amplitude_min_ua=0,
            amplitude_max_ua=wire.MAX_CURRENT_MA * UA_PER_MA,
            amplitude_step_ua=UA_PER_MA,
            pulse_width_min_us=20,
            pulse_width_max_us=wire.MAX_PULSE_WIDTH_US,
            pulse_width_step_us=1,
            frequency_min_hz=1.0,
            frequency_max_hz=50.0,
            waveforms=frozenset({Waveform.RECTANGULAR}),
            phase_types=frozenset({PhaseType.BIPHASIC_SYMMETRIC}),
        )
    },
    max_current_density_ma_per_cm2=2.0,
    max_power_density_w_per_cm2=0.1,
    min_main_stimulation_interval_ms=8.0,
)
"""What a RehaStim 2 can deliver through ScienceMode2 (sources in docs/protocols/rehastim2.md):
the current byte carries whole mA (0-130), the pulse width whole µs (20-500 in the current
firmware), frequencies 1-50 Hz (spec Table 1), biphasic charge-balanced rectangular pulses only,
and the IFU's density limits."""


class UnencodablePlanError(PlanNotEncodableError):
    """An approved plan that ScienceMode2 cannot carry exactly; refused before anything is sent."""


def _low_frequency_factor(main_hz: float, channel_hz: float) -> int | None:
    """The skip factor that gives ``channel_hz`` exactly from ``main_hz``, if there is one."""
    for divisor in range(2, MAX_LOW_FREQUENCY_DIVISOR + 1):
        if abs(main_hz / divisor - channel_hz) <= 1e-9 * main_hz:
            return divisor - 1
    return None


def channel_list_for(plan: StimulationPlan) -> wire.InitChannelListMode:
    """The InitChannelListMode that runs ``plan`` exactly, or ``UnencodablePlanError`` with every
    reason it cannot. The channel list has one main interval: channels at the highest frequency
    pulse on every pass; the others must share one frequency that is that one divided by 2-8."""
    problems: list[str] = []
    for channel in plan.channels:
        number = channel.channel
        if not 1 <= number <= wire.CHANNEL_COUNT:
            problems.append(f"channel {number} does not exist (channels 1-{wire.CHANNEL_COUNT})")
        if channel.amplitude_ua % UA_PER_MA:
            problems.append(
                f"channel {number}: {channel.amplitude_ua} µA is not a whole number of mA"
            )
        if channel.polarity is Polarity.NEGATIVE:
            problems.append(
                f"channel {number} asks for a negative first phase; the device's biphasic pulse "
                "always starts positive"
            )
    frequencies = sorted({channel.frequency_hz for channel in plan.channels}, reverse=True)
    main_hz = frequencies[0]
    main_coded = 0
    try:
        main_coded = wire.main_interval_coded_for_frequency(main_hz)
    except ValueError as error:
        problems.append(f"{main_hz:g} Hz: {error}")
    low_channels = frozenset(c.channel for c in plan.channels if c.frequency_hz != main_hz)
    factor = 0
    if len(frequencies) > 2:
        problems.append(
            "the channel list runs at most two frequencies (a main one and one divided by 2-8), "
            f"not {', '.join(f'{f:g}' for f in frequencies)} Hz"
        )
    elif len(frequencies) == 2:
        found = _low_frequency_factor(main_hz, frequencies[1])
        if found is None:
            problems.append(
                f"{frequencies[1]:g} Hz is not {main_hz:g} Hz divided by a whole number 2-8"
            )
        else:
            factor = found
    if problems:
        raise UnencodablePlanError(
            "the plan cannot be sent to the RehaStim 2 exactly: " + "; ".join(problems)
        )
    return wire.InitChannelListMode(
        active_channels=frozenset(c.channel for c in plan.channels),
        main_stimulation_interval_coded=main_coded,
        inter_pulse_interval_coded=wire.inter_pulse_interval_coded(INTER_PULSE_INTERVAL_MS),
        low_frequency_channels=low_channels,
        low_frequency_factor=factor,
    )


def channel_pulses_for(plan: StimulationPlan) -> wire.StartChannelListMode:
    """StartChannelListMode for ``plan``: single pulses, one entry per channel in channel order."""
    return wire.StartChannelListMode(
        tuple(
            wire.ChannelPulse(
                wire.PulseGroup.SINGLE, channel.pulse_width_us, channel.amplitude_ua // UA_PER_MA
            )
            for channel in sorted(plan.channels, key=lambda c: c.channel)
        )
    )


_EXPECTED_MODE = {
    DriverState.READY: wire.StimulationMode.START,
    DriverState.CONFIGURED: wire.StimulationMode.INITIALISED,
    DriverState.RUNNING: wire.StimulationMode.STARTED,
    DriverState.PAUSED: wire.StimulationMode.START,
    DriverState.STOPPED: wire.StimulationMode.START,
}
"""The device's stimulation mode that each driver state implies (pause is a stop on the wire)."""


class RehaStim2Driver(Driver):
    """Driver for the RehaStim 2 (ScienceMode2 over its FTDI USB-serial port, or ``rehastim2://``)."""

    name = "rehastim2"
    serial_settings = SerialSettings(baudrate=460_800, bytesize=8, parity="E", stopbits=1)
    usb_ids = frozenset()
    """The spec and IFU name an FTDI chip but no vendor/product id; claiming FTDI's generic ids
    would claim every FTDI adapter, so discovery does not guess."""
    url_handler_package = URL_HANDLER_PACKAGE
    emulator_url = "rehastim2://?seed=3"
    heartbeat_interval_s = 0.25
    reply_timeout_s = 0.3
    """Three times the spec's MaxResponseTime of 100 ms, for USB latency and a loaded host."""
    device_check_every = 4
    """Every fourth heartbeat asks GetStimulationMode instead of sending Watchdog (see below)."""

    def __init__(self, transport: SerialTransport) -> None:
        super().__init__(transport)
        self._decoder = wire.PacketDecoder(accepted=wire.DEVICE_COMMANDS)
        self._numbers: Iterator[int] = itertools.cycle(range(EMERGENCY_STOP_PACKET_NUMBER))
        self._numbers_lock = threading.Lock()
        self._stop_packet = wire.encode_packet(
            wire.Packet(EMERGENCY_STOP_PACKET_NUMBER, wire.StopChannelListMode())
        )
        self._init_received = threading.Event()
        self._device_init: tuple[int, wire.Init] | None = None
        self._connected = False
        self._protocol_version: int | None = None
        self._plan_on_device: StimulationPlan | None = None

    # -- sending

    def _next_number(self) -> int:
        with self._numbers_lock:
            return next(self._numbers)

    def _send(self, message: wire.Message, operation: str) -> Reply:
        """Send a command that has an acknowledgement and return it; a refusal raises."""
        number = self._next_number()
        frame = wire.encode_packet(wire.Packet(number, message))
        return self._request(frame, (number, wire.ACK_FOR[message.COMMAND]), operation)

    def _write(self, message: wire.Message) -> None:
        """Send a packet that is never answered (InitAck, Watchdog)."""
        self._transport.write(wire.encode_packet(wire.Packet(self._next_number(), message)))

    # -- handshake and description

    def _identify(self) -> DeviceIdentity:
        """Answer the device's Init (§4.1) and prove the connection with GetStimulationMode,
        since InitAck itself is never acknowledged."""
        if not self._init_received.wait(HANDSHAKE_TIMEOUT_S):
            raise HalError(
                f"no Init from a RehaStim 2 on {self._transport.url} within "
                f"{HANDSHAKE_TIMEOUT_S:g} s; is ScienceMode2 selected on its start screen?"
            )
        assert self._device_init is not None
        number, init = self._device_init
        version = init.protocol_version
        if version not in SUPPORTED_PROTOCOL_VERSIONS:
            answer = wire.InitAck(wire.AckResult.INCOMPATIBLE_VERSION)
            self._transport.write(wire.encode_packet(wire.Packet(number, answer)))
            supported = ", ".join(str(v) for v in sorted(SUPPORTED_PROTOCOL_VERSIONS))
            raise HalError(
                f"the RehaStim 2 speaks ScienceMode2 protocol version {version}; this driver "
                f"supports version {supported} and answered InitAck −5 (incompatible version)"
            )
        self._transport.write(
            wire.encode_packet(wire.Packet(number, wire.InitAck(wire.AckResult.OK)))
        )
        mode = self._stimulation_mode("connection check")
        self._connected = True
        self._protocol_version = version
        if mode is not wire.StimulationMode.START:
            self._send(wire.StopChannelListMode(), "stop left-over stimulation")
        return DeviceIdentity(
            driver=self.name,
            model="RehaStim 2",
            serial_number="unknown",
            firmware_version=f"ScienceMode2 protocol version {version}",
        )

    def _device_capabilities(self, identity: DeviceIdentity) -> DeviceCapabilities:
        return CAPABILITIES

    def _read_status(self) -> DeviceStatus:
        """ScienceMode2 reports only its stimulation mode: output flows in STARTED mode, on the
        channels of the channel list this driver initialised."""
        mode = self._stimulation_mode("read status")
        plan = self._plan_on_device
        active = mode is wire.StimulationMode.STARTED
        channels = frozenset(c.channel for c in plan.channels) if active and plan else frozenset()
        return DeviceStatus(
            output_active=active,
            channels_active=channels,
            conditions=(f"{mode.name.lower()}_mode",),
        )

    def _stimulation_mode(self, operation: str) -> wire.StimulationMode:
        payload = self._send(wire.GetStimulationMode(), operation).payload
        if not isinstance(payload, wire.GetStimulationModeAck) or payload.mode is None:
            raise ValueError(f"{operation} was answered with {payload!r}")
        return payload.mode

    # -- bytes in

    def _decode(self, data: bytes) -> list[Inbound]:
        inbound: list[Inbound] = []
        for packet in self._decoder.feed(data):
            message, number = packet.message, packet.packet_number
            if isinstance(message, wire.Init):
                if self._connected:
                    inbound.append(
                        DeviceFaultReport(
                            code="connection_reset",
                            reason=(
                                "the device sent Init again: it dropped the connection "
                                "(its watchdog expired or it restarted) and stopped stimulating"
                            ),
                        )
                    )
                else:
                    self._device_init = (number, message)
                    self._init_received.set()
            elif isinstance(message, wire.StimulationError):
                inbound.append(
                    DeviceFaultReport(
                        code=message.error.name.lower(),
                        reason=f"stimulation error: {message.error.description}",
                    )
                )
            elif isinstance(message, wire.UnknownCommand):
                inbound.append(self._unknown_command_reply(number, message.echoed_command))
            elif isinstance(
                message,
                wire.GetStimulationModeAck
                | wire.InitChannelListModeAck
                | wire.StartChannelListModeAck
                | wire.StopChannelListModeAck
                | wire.SinglePulseAck,
            ):
                result = message.result
                inbound.append(
                    Reply(
                        key=(number, message.COMMAND),
                        accepted=result is wire.AckResult.OK,
                        code=int(result),
                        reason=result.description,
                        payload=message,
                    )
                )
        self.counters.malformed_frames = self._decoder.counters.malformed
        return inbound

    @staticmethod
    def _unknown_command_reply(number: int, echoed: int) -> Reply:
        key: Hashable = (number, None)
        with contextlib.suppress(ValueError, KeyError):
            key = (number, wire.ACK_FOR[wire.Command(echoed)])
        return Reply(key=key, accepted=False, code=echoed, reason=f"unknown command {echoed}")

    # -- commands out

    def _check_encodable(self, plan: StimulationPlan) -> None:
        """Refuse a plan ScienceMode2 cannot carry exactly, before anything is written."""
        channel_list_for(plan)
        channel_pulses_for(plan)

    def _apply(self, plan: StimulationPlan) -> None:
        channel_list = channel_list_for(plan)
        if self.state is DriverState.CONFIGURED:
            # A channel list is already initialised; InitChannelListMode needs start mode.
            self._send(wire.StopChannelListMode(), "clear the previous channel list")
        self._send(channel_list, "initialise the channel list")
        self._plan_on_device = plan

    def _start(self, plan: StimulationPlan) -> None:
        self._send(channel_pulses_for(plan), "start the channel list")
        self._plan_on_device = plan

    def _set_amplitude(self, plan: StimulationPlan, channel: int, amplitude_ua: int) -> None:
        """Send the whole channel list with the new current (StartChannelListMode updates).

        While paused the device is in start mode and would refuse an update; the new current is
        kept and goes out with the resume."""
        if self.state is not DriverState.PAUSED:
            self._send(channel_pulses_for(plan), f"update channel {channel} to {amplitude_ua} µA")
        self._plan_on_device = plan

    def _pause(self) -> None:
        self._send(wire.StopChannelListMode(), "stop the channel list (pause)")

    def _resume(self) -> None:
        plan = self._plan_on_device
        if plan is None:
            raise ValueError("no plan to resume")
        self._send(channel_list_for(plan), "initialise the channel list (resume)")
        self._send(channel_pulses_for(plan), "start the channel list (resume)")

    def _stop(self) -> None:
        self._send(wire.StopChannelListMode(), "stop the channel list")

    def _emergency_stop_frame(self) -> bytes:
        return self._stop_packet

    def _emergency_stop_reply_key(self) -> Hashable:
        return (EMERGENCY_STOP_PACKET_NUMBER, wire.ACK_FOR[wire.StopChannelListMode.COMMAND])

    def _send_heartbeat(self) -> None:
        """Feed the device's 1200 ms watchdog with Watchdog (§2.3), which is never answered."""
        self._write(wire.Watchdog())

    def _check_device(self, state: DriverState) -> None:
        """Watchdog alone cannot tell that the device is still there, so every
        ``device_check_every``-th beat is a GetStimulationMode instead, whose answer proves the
        link and whose mode must match the driver's state (§5.3 asks the PC to check modes when
        information packets such as StimulationError may have been lost)."""
        mode = self._stimulation_mode("stimulation mode check")
        expected = _EXPECTED_MODE.get(state)
        if expected is not None and mode is not expected and self.state is state:
            raise RuntimeError(
                f"the device is in {mode.name.lower()} mode while the driver is {state}"
            )
