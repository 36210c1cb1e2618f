"""Firmware of a RehaStim 2 in ScienceMode2, emulated from the protocol spec as a state machine.

PC bytes go in through ``receive``, device bytes come out of ``read_output``, and time moves only
when the injected clock says so (``tick`` runs whatever fell due). The device behaves as the
ScienceMode2 spec v1.24 describes: it sends Init every 500 ms until the PC answers InitAck 0;
then it answers every command that has an acknowledgement, echoing the packet number; it stops
stimulating, resets its modes and starts sending Init again when no valid packet arrives for
1200 ms; it keeps the stimulation modes start → initialised → started of Figure 4 and refuses
parameters and commands with the result codes of §5. Every decoded command is recorded with its
time in ``command_log``, and the output (mode and current per channel) is readable, so tests
assert what the hardware would have done. Faults the protocol can express are switchable. The byte
path, link faults and event loop are the shared ``emulation.device.EmulatedDevice``; all public
methods are thread-safe; ``runner.EmulatorRunner`` drives one in real time.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from enum import Enum

from sessionlog_drivers.emulation.device import (
    TIME_TOLERANCE_S,
    CommandRefusedError,
    EmulatedDevice,
    LinkOutcome,
    ScheduledEvent,
)
from sessionlog_drivers.rehastim2.config import EmulatorConfig, FaultConfig
from sessionlog_drivers.rehastim2.protocol import (
    ACK_FOR,
    CHANNEL_COUNT,
    HOST_COMMANDS,
    AckResult,
    ChannelPulse,
    Command,
    DecoderCounters,
    GetStimulationMode,
    GetStimulationModeAck,
    Init,
    InitAck,
    InitChannelListMode,
    InitChannelListModeAck,
    Message,
    Packet,
    PacketDecoder,
    Rejection,
    RejectReason,
    SinglePulse,
    SinglePulseAck,
    StartChannelListMode,
    StartChannelListModeAck,
    StimulationError,
    StimulationErrorCode,
    StimulationMode,
    StopChannelListMode,
    StopChannelListModeAck,
    UnknownCommand,
    encode_packet,
    inter_pulse_interval_coded,
    main_interval_coded,
)

MIN_PULSE_WIDTH_US = 20
"""The firmware raises a shorter pulse width to 20 µs (§4.3: "if (pw < 20) then pw = 20")."""

MIN_INTER_PULSE_INTERVAL_CODED = inter_pulse_interval_coded(8.0)
MIN_MAIN_INTERVAL_CODED = main_interval_coded(8.0)
"""Both intervals are at least 8 ms "in the current software version" (§4.3)."""


class DeviceEvent(Enum):
    """What the device did on its own, without a PC command."""

    WATCHDOG_EXPIRED = "watchdog_expired"
    STIMULATION_ERROR = "stimulation_error"
    UNPLUGGED = "unplugged"


@dataclass(frozen=True, slots=True)
class LoggedCommand:
    """A PC packet exactly as the device decoded it, stamped with the emulator clock."""

    timestamp_s: float
    packet_number: int
    command: Command
    message: Message


@dataclass(frozen=True, slots=True)
class EventRecord:
    timestamp_s: float
    event: DeviceEvent
    detail: str = ""


@dataclass(slots=True)
class InjectionCounters:
    """How often each rate-based fault fired, so a test can tell it was exercised."""

    packets_dropped: int = 0
    packets_corrupted: int = 0
    busy_answers: int = 0


class _CommandRefusedError(CommandRefusedError[AckResult]):
    """Answered with the command's acknowledgement carrying ``code`` as its result."""


class RehaStim2Emulator(
    EmulatedDevice[EmulatorConfig, FaultConfig, LoggedCommand, DecoderCounters]
):
    """The device end of a ScienceMode2 link (see the module docstring)."""

    RELEASE_TOLERANCE_S = TIME_TOLERANCE_S

    _config_type = EmulatorConfig
    _faults_type = FaultConfig
    _decoder: PacketDecoder

    def _power_up(self) -> None:
        self.injection_counters = InjectionCounters()
        self._decoder = PacketDecoder(accepted=HOST_COMMANDS)
        self._rng = random.Random(f"rehastim2:{self.config.seed}")  # noqa: S311 - simulation
        self._connected = False
        self._next_init_s: float | None = self._power_on_s
        self._last_valid_packet_s = self._power_on_s
        self._device_packet_number = 0
        self._mode = StimulationMode.START
        self._channel_list: InitChannelListMode | None = None
        self._pulses: dict[int, ChannelPulse] = {}
        self._one_shot_passes = 0
        self._single_pulses: list[SinglePulse] = []
        self._event_log: list[EventRecord] = []
        self._rejected_init_acks = 0

    # --- observation ------------------------------------------------------------------------------

    @property
    def event_log(self) -> tuple[EventRecord, ...]:
        with self._lock:
            return tuple(self._event_log)

    @property
    def connected(self) -> bool:
        """True from an accepted InitAck until the watchdog drops the connection."""
        with self._lock:
            return self._connected

    @property
    def rejected_init_acks(self) -> int:
        """InitAck packets that refused the device's protocol version (result −5)."""
        with self._lock:
            return self._rejected_init_acks

    @property
    def stimulation_mode(self) -> StimulationMode:
        with self._lock:
            return self._mode

    @property
    def channel_list(self) -> InitChannelListMode | None:
        with self._lock:
            return self._channel_list

    @property
    def output_active(self) -> bool:
        """True while the continuous channel list is being processed (pulses on the electrodes)."""
        with self._lock:
            return self._continuous_output()

    def output_current_ma(self, channel: int) -> int:
        """Current of the pulses now delivered on 1-based ``channel`` (0 when it is not pulsing)."""
        with self._lock:
            if not self._continuous_output() or channel not in self._pulses:
                return 0
            return self._pulses[channel].current_ma

    def output_pulse(self, channel: int) -> ChannelPulse | None:
        """Group, width and current now delivered on 1-based ``channel``, if it is pulsing."""
        with self._lock:
            return self._pulses.get(channel) if self._continuous_output() else None

    @property
    def single_pulses(self) -> tuple[SinglePulse, ...]:
        with self._lock:
            return tuple(self._single_pulses)

    @property
    def one_shot_passes(self) -> int:
        """Channel-list passes triggered in one-shot mode (each StartChannelListMode is one)."""
        with self._lock:
            return self._one_shot_passes

    # --- byte interface ---------------------------------------------------------------------------

    def _consume(self, data: bytes, now: float) -> None:
        """Act on every complete PC packet, then on any hardware condition that now stops output."""
        for event in self._decoder.feed_events(data):
            if isinstance(event, Rejection):
                self._answer_rejection(event, now)
            else:
                self._execute(event, now)
        self._apply_fault_switches(now)

    # --- time-driven behaviour ---------------------------------------------------------------------

    def _scheduled_events(self) -> list[ScheduledEvent]:
        events: list[ScheduledEvent] = []
        if self._connected:
            deadline_s = self._last_valid_packet_s + self.config.watchdog_timeout_ms / 1000
            events.append((deadline_s, 1, self._expire_watchdog))
        elif self._next_init_s is not None:
            events.append((self._next_init_s, 2, self._send_init))
        return events

    def _send_init(self, at_s: float) -> None:
        self._send_unsolicited(Init(self.config.protocol_version), at_s)
        assert self._next_init_s is not None
        self._next_init_s += self.config.init_repetition_ms / 1000

    def _expire_watchdog(self, at_s: float) -> None:
        """§5.2: stimulation stopped, all modes reset, Init sent again."""
        self._reset_stimulation()
        self._connected = False
        self._next_init_s = at_s
        self._event_log.append(EventRecord(at_s, DeviceEvent.WATCHDOG_EXPIRED))

    def _on_unplug(self, at_s: float) -> None:
        self._reset_stimulation()
        self._connected = False
        self._event_log.append(EventRecord(at_s, DeviceEvent.UNPLUGGED))

    def _reset_stimulation(self) -> None:
        self._mode = StimulationMode.START
        self._channel_list = None
        self._pulses = {}

    def _continuous_output(self) -> bool:
        channel_list = self._channel_list
        return (
            self._mode is StimulationMode.STARTED
            and channel_list is not None
            and not channel_list.one_shot
        )

    def _apply_fault_switches(self, now: float) -> None:
        """Stop with StimulationError when a hardware condition holds while stimulating (§1.3)."""
        if self._mode is not StimulationMode.STARTED or self._unplugged:
            return
        faults = self.faults
        error: StimulationErrorCode | None = None
        if faults.emergency_switch:
            error = StimulationErrorCode.EMERGENCY_SWITCH
        elif faults.module_error:
            error = StimulationErrorCode.MODULE_ERROR
        elif faults.electrode_error & set(self._pulses):
            error = StimulationErrorCode.ELECTRODE_ERROR
        if error is None:
            return
        self._reset_stimulation()
        self._event_log.append(EventRecord(now, DeviceEvent.STIMULATION_ERROR, error.name))
        self._send_unsolicited(StimulationError(error), now)

    # --- output path with injected faults ------------------------------------------------------

    def _send_unsolicited(self, message: Message, at_s: float) -> None:
        """Init and StimulationError carry the device's own packet counter (§2.2)."""
        number = self._device_packet_number
        self._device_packet_number = (number + 1) & 0xFF
        self._send(Packet(number, message), at_s)

    def _send(self, packet: Packet, at_s: float) -> None:
        outcome = self._transmit(encode_packet(packet), at_s, self._rng)
        if outcome is LinkOutcome.DROPPED:
            self.injection_counters.packets_dropped += 1
        elif outcome is LinkOutcome.CORRUPTED:
            self.injection_counters.packets_corrupted += 1

    # --- commands -------------------------------------------------------------------------------

    def _answer_rejection(self, rejection: Rejection, now: float) -> None:
        """§5.2: transfer errors and bad parameters get the command's ack with −1 or −2, an
        unknown command gets UnknownCommand. Only an intact packet feeds the watchdog."""
        if not self._connected or rejection.packet_number is None or rejection.command is None:
            return
        reason = rejection.reason
        if reason is RejectReason.UNKNOWN_COMMAND:
            self._last_valid_packet_s = now
            reply: Message = UnknownCommand(rejection.command)
        elif reason.transfer_error or reason is RejectReason.BAD_DATA:
            if reason is RejectReason.BAD_DATA:
                self._last_valid_packet_s = now
            try:
                ack = ACK_FOR[Command(rejection.command)]
            except (ValueError, KeyError):
                return
            result = (
                AckResult.TRANSFER_ERROR if reason.transfer_error else AckResult.PARAMETER_ERROR
            )
            reply = _ack(ack, result)
        else:
            return
        self._send(Packet(rejection.packet_number, reply), now)

    def _execute(self, packet: Packet, now: float) -> None:
        message = packet.message
        self._command_log.append(LoggedCommand(now, packet.packet_number, packet.command, message))
        if not self._connected:
            # Before the connection exists only InitAck means anything (§3.5, §5.3).
            if isinstance(message, InitAck):
                self._accept_init_ack(message, now)
            return
        self._last_valid_packet_s = now
        ack = ACK_FOR.get(packet.command)
        if ack is None:
            return  # Watchdog, or a repeated InitAck: nothing to answer
        reply: Message
        if isinstance(message, StopChannelListMode):
            # A stop is never refused for being busy: StopChannelListModeAck knows only 0 and −1.
            self._reset_stimulation()
            reply = StopChannelListModeAck(AckResult.OK)
        elif self.faults.busy_next > 0:
            self.faults.busy_next -= 1
            self.injection_counters.busy_answers += 1
            reply = _ack(ack, AckResult.BUSY)
        else:
            try:
                reply = self._dispatch(message)
            except _CommandRefusedError as refusal:
                reply = _ack(ack, refusal.code)
        self._send(Packet(packet.packet_number, reply), now)

    def _accept_init_ack(self, message: InitAck, now: float) -> None:
        if message.result is not AckResult.OK:
            self._rejected_init_acks += 1
            return
        self._connected = True
        self._next_init_s = None
        self._last_valid_packet_s = now
        self._reset_stimulation()

    def _dispatch(self, message: Message) -> Message:
        if isinstance(message, GetStimulationMode):
            return GetStimulationModeAck(AckResult.OK, self._mode)
        if isinstance(message, InitChannelListMode):
            self._init_channel_list(message)
            return InitChannelListModeAck(AckResult.OK)
        if isinstance(message, StartChannelListMode):
            self._start_channel_list(message)
            return StartChannelListModeAck(AckResult.OK)
        if isinstance(message, SinglePulse):
            self._single_pulse(message)
            return SinglePulseAck(AckResult.OK)
        raise AssertionError(f"no handler for {type(message).__name__}")  # pragma: no cover

    def _init_channel_list(self, message: InitChannelListMode) -> None:
        if self._mode is not StimulationMode.START:
            raise _CommandRefusedError(AckResult.WRONG_MODE)
        if message.inter_pulse_interval_coded < MIN_INTER_PULSE_INTERVAL_CODED or (
            not message.one_shot
            and message.main_stimulation_interval_coded < MIN_MAIN_INTERVAL_CODED
        ):
            raise _CommandRefusedError(AckResult.PARAMETER_ERROR)
        self._channel_list = message
        self._mode = StimulationMode.INITIALISED

    def _start_channel_list(self, message: StartChannelListMode) -> None:
        channel_list = self._channel_list
        if self._mode is StimulationMode.START or channel_list is None:
            raise _CommandRefusedError(AckResult.WRONG_MODE)
        channels = sorted(channel_list.active_channels)
        if len(message.channels) != len(channels):
            raise _CommandRefusedError(AckResult.PARAMETER_ERROR)
        if not channel_list.one_shot:
            # Table 2: t1 ≥ nPgr · t2 for the largest pulse group in use.
            groups = max((pulse.pulse_group.pulse_count for pulse in message.channels), default=1)
            if (
                channel_list.main_stimulation_interval_ms
                < groups * channel_list.inter_pulse_interval_ms
            ):
                raise _CommandRefusedError(AckResult.PARAMETER_ERROR)
        self._pulses = {
            channel: dataclasses.replace(
                pulse, pulse_width_us=max(MIN_PULSE_WIDTH_US, pulse.pulse_width_us)
            )
            for channel, pulse in zip(channels, message.channels, strict=True)
        }
        self._mode = StimulationMode.STARTED
        if channel_list.one_shot:
            self._one_shot_passes += 1

    def _single_pulse(self, message: SinglePulse) -> None:
        if self._mode is not StimulationMode.START:
            raise _CommandRefusedError(AckResult.WRONG_MODE)
        if not 1 <= message.channel <= CHANNEL_COUNT:  # pragma: no cover - the codec checks it
            raise _CommandRefusedError(AckResult.PARAMETER_ERROR)
        width = max(MIN_PULSE_WIDTH_US, message.pulse_width_us)
        self._single_pulses.append(dataclasses.replace(message, pulse_width_us=width))


_ACK_TYPES: dict[
    Command,
    type[
        InitChannelListModeAck | StartChannelListModeAck | StopChannelListModeAck | SinglePulseAck
    ],
] = {
    Command.INIT_CHANNEL_LIST_MODE_ACK: InitChannelListModeAck,
    Command.START_CHANNEL_LIST_MODE_ACK: StartChannelListModeAck,
    Command.STOP_CHANNEL_LIST_MODE_ACK: StopChannelListModeAck,
    Command.SINGLE_PULSE_ACK: SinglePulseAck,
}


def _ack(ack: Command, result: AckResult) -> Message:
    """An error acknowledgement of type ``ack``."""
    if ack is Command.GET_STIMULATION_MODE_ACK:
        return GetStimulationModeAck(result)
    return _ACK_TYPES[ack](result)
