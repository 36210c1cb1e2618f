"""Firmware of the simulated reference stimulator, as a transport-agnostic state machine.

Host bytes go in through `receive`, device bytes come out of `read_output`, and time moves only
when the injected clock says so (`tick` processes whatever became due: watchdog expiry, telemetry,
delayed replies, scheduled unplug). Every decoded command is recorded in `command_log` so tests can
assert what really reached the wire, and the device enforces its own hardware limits and stops by
itself when the host falls silent — the fail-safe behaviour of DESIGN.md §3 seen from the device
side. The byte path, link faults and event loop are the shared `emulation.device.EmulatedDevice`;
all public methods are thread-safe; `runner.EmulatorRunner` drives one in real time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from sessionlog_drivers.emulation.device import (
    CommandRefusedError,
    EmulatedDevice,
    LinkOutcome,
    ScheduledEvent,
)
from sessionlog_drivers.simulated.config import EmulatorConfig, FaultConfig
from sessionlog_drivers.simulated.protocol import (
    DEVICE_WIDE_CHANNEL,
    HOST_COMMANDS,
    PROTOCOL_VERSION,
    Ack,
    ChannelFlags,
    ChannelState,
    ChannelStatus,
    Command,
    ConfigureChannel,
    DecoderCounters,
    DeviceFlags,
    EmergencyStop,
    ErrorCode,
    Fault,
    Frame,
    FrameDecoder,
    GetStatus,
    Heartbeat,
    Identify,
    Identity,
    Message,
    ModalityLimit,
    Nak,
    Pause,
    Rejection,
    RejectReason,
    Resume,
    SetAmplitude,
    Start,
    Status,
    Stop,
    Telemetry,
    TelemetrySample,
    channels_in_mask,
    encode_frame,
)

ELECTRODE_OFF_IMPEDANCE_OHM = (20_000.0, 80_000.0)
"""Range reported for a detached electrode: well above the 10 kΩ a driver should treat as open."""

NORMAL_IMPEDANCE_OHM = (500.0, 1500.0)
"""Range of skin-electrode impedance reported while an electrode is attached."""

_NAK_FOR_REJECTION = {
    RejectReason.BAD_CRC: ErrorCode.TRANSFER,
    RejectReason.UNKNOWN_COMMAND: ErrorCode.UNKNOWN_COMMAND,
    RejectReason.BAD_PAYLOAD: ErrorCode.PARAMETER,
}


class FaultKind(Enum):
    """Device-side events that changed the output without a host command."""

    WATCHDOG_EXPIRED = "watchdog_expired"
    ELECTRODE_OFF = "electrode_off"
    HARDWARE_FAULT = "hardware_fault"
    UNPLUGGED = "unplugged"


@dataclass(frozen=True, slots=True)
class LoggedCommand:
    """A command exactly as the device decoded it, stamped with the emulator clock."""

    timestamp_s: float
    seq: int
    command: Command
    message: Message


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """When the device acted on its own, why, and on which channel (None: whole device)."""

    timestamp_s: float
    kind: FaultKind
    channel: int | None


@dataclass(slots=True)
class InjectionCounters:
    """How often each rate-based fault actually fired, so tests can tell a fault was exercised."""

    frames_dropped: int = 0
    frames_corrupted: int = 0
    naks_injected: int = 0


class _CommandRefusedError(CommandRefusedError[ErrorCode]):
    """Answered with NAK(code)."""


@dataclass(slots=True)
class _Channel:
    impedance_ohm: float
    state: ChannelState = ChannelState.UNCONFIGURED
    settings: ConfigureChannel | None = None
    amplitude_ua: int = 0
    electrode_off: bool = False

    @property
    def active(self) -> bool:
        return self.state in (ChannelState.RUNNING, ChannelState.PAUSED)

    @property
    def output_amplitude_ua(self) -> int:
        return self.amplitude_ua if self.state is ChannelState.RUNNING else 0


class StimulatorEmulator(
    EmulatedDevice[EmulatorConfig, FaultConfig, LoggedCommand, DecoderCounters]
):
    """The device: decodes host frames, answers each one, streams telemetry, injects faults."""

    _config_type = EmulatorConfig
    _faults_type = FaultConfig
    _decoder: FrameDecoder

    def _power_up(self) -> None:
        self.injection_counters = InjectionCounters()
        self._decoder = FrameDecoder(accepted=HOST_COMMANDS)
        self._fault_rng = random.Random(f"faults:{self.config.seed}")  # noqa: S311 - simulation
        self._noise_rng = random.Random(f"noise:{self.config.seed}")  # noqa: S311 - simulation
        self._channels = [
            _Channel(impedance_ohm=self._noise_rng.uniform(700.0, 1200.0))
            for _ in range(self.config.channel_count)
        ]
        self._check_fault_channels(self.faults.electrode_off)
        self._last_host_frame_s = self._power_on_s
        self._telemetry_origin_s: float | None = None
        self._telemetry_count = 0
        self._last_telemetry: dict[int, int] = {}
        self._latched_flags = DeviceFlags.NONE
        self._hardware_fault = False
        self._device_seq = 0
        self._fault_log: list[FaultRecord] = []

    # --- observation (for tests and the transports) -----------------------------------------------

    @property
    def fault_log(self) -> tuple[FaultRecord, ...]:
        with self._lock:
            return tuple(self._fault_log)

    @property
    def output_active(self) -> bool:
        """True while any channel is running (its output stage is delivering its set amplitude)."""
        with self._lock:
            return any(ch.state is ChannelState.RUNNING for ch in self._channels)

    def output_amplitude_ua(self, channel: int) -> int:
        with self._lock:
            return self._channels[channel].output_amplitude_ua

    def last_telemetry(self) -> dict[int, int]:
        """The measured current (µA) each channel last reported in TELEMETRY, by channel index."""
        with self._lock:
            return dict(self._last_telemetry)

    def delivered_settings(self, channel: int) -> ConfigureChannel | None:
        """The configuration ``channel`` delivers its pulses with; None while it is not running."""
        with self._lock:
            state = self._channels[channel]
            return state.settings if state.state is ChannelState.RUNNING else None

    def channel_state(self, channel: int) -> ChannelState:
        with self._lock:
            return self._channels[channel].state

    # --- byte interface ---------------------------------------------------------------------------

    def _consume(self, data: bytes, now: float) -> None:
        """Act on every complete host frame; a discarded one is NAKed when its header allows."""
        for event in self._decoder.feed_events(data):
            if isinstance(event, Rejection):
                self._answer_rejection(event, now)
            else:
                self._execute(event, now)

    # --- run-time fault switches ------------------------------------------------------------------

    def set_electrode_off(self, channel: int, off: bool = True) -> None:
        """Detach (or reattach) the electrodes of `channel` now."""
        self._check_fault_channels({channel})
        with self._lock:
            current = set(self.faults.electrode_off)
            if off:
                current.add(channel)
            else:
                current.discard(channel)
            self.faults.electrode_off = frozenset(current)
            self._advance(self._clock())

    def set_device_error(self, active: bool = True) -> None:
        """Raise (or clear) an internal hardware fault now."""
        with self._lock:
            self.faults.device_error = active
            self._advance(self._clock())

    # --- time-driven behaviour ---------------------------------------------------------------------

    def _scheduled_events(self) -> list[ScheduledEvent]:
        events: list[ScheduledEvent] = []
        if any(ch.active for ch in self._channels):
            watchdog_s = self.config.watchdog_timeout_ms / 1000
            events.append((self._last_host_frame_s + watchdog_s, 1, self._expire_watchdog))
            if self._telemetry_origin_s is not None:
                interval_s = self.config.telemetry_interval_s
                when = self._telemetry_origin_s + self._telemetry_count * interval_s
                events.append((when, 2, self._send_telemetry))
        return events

    def _deactivate_all(self) -> None:
        """Output off on every channel; configurations stay, set amplitudes return to configured."""
        for channel in self._channels:
            if channel.active:
                channel.state = ChannelState.IDLE
                if channel.settings is not None:
                    channel.amplitude_ua = channel.settings.amplitude_ua

    def _on_unplug(self, at_s: float) -> None:
        self._deactivate_all()
        self._telemetry_origin_s = None
        self._fault_log.append(FaultRecord(at_s, FaultKind.UNPLUGGED, None))

    def _expire_watchdog(self, at_s: float) -> None:
        self._deactivate_all()
        self._latched_flags |= DeviceFlags.WATCHDOG_EXPIRED
        self._record_fault(at_s, FaultKind.WATCHDOG_EXPIRED, ErrorCode.WATCHDOG_EXPIRED, None)
        self._update_telemetry_schedule(at_s)

    def _send_telemetry(self, at_s: float) -> None:
        samples = []
        rng = self._noise_rng
        for index, channel in enumerate(self._channels):
            if not channel.active:
                continue
            if channel.electrode_off:
                impedance = rng.uniform(*ELECTRODE_OFF_IMPEDANCE_OHM)
                current = 0
            else:
                low, high = NORMAL_IMPEDANCE_OHM
                impedance = min(high, max(low, rng.gauss(channel.impedance_ohm, 15.0)))
                output = channel.output_amplitude_ua
                noise_sd = max(1.0, output * 0.005)
                current = max(0, round(rng.gauss(output, noise_sd))) if output else 0
            samples.append(TelemetrySample(index, current, round(impedance)))
            self._last_telemetry[index] = current
        self._send_unsolicited(Telemetry(self._device_time_ms(at_s), tuple(samples)), at_s)
        self._telemetry_count += 1

    def _apply_fault_switches(self, now: float) -> None:
        """Bring the device in line with `faults.device_error` and `faults.electrode_off`."""
        if self.faults.device_error and not self._hardware_fault:
            self._hardware_fault = True
            self._deactivate_all()
            self._record_fault(now, FaultKind.HARDWARE_FAULT, ErrorCode.HARDWARE_FAULT, None)
        elif not self.faults.device_error:
            self._hardware_fault = False
        off_channels = self.faults.electrode_off
        for index, channel in enumerate(self._channels):
            detached = index in off_channels
            if detached and not channel.electrode_off:
                channel.electrode_off = True
                if channel.state is ChannelState.RUNNING:
                    channel.state = ChannelState.PAUSED
                if channel.active:
                    self._record_fault(now, FaultKind.ELECTRODE_OFF, ErrorCode.ELECTRODE_OFF, index)
            elif not detached:
                channel.electrode_off = False
        self._update_telemetry_schedule(now)

    def _record_fault(
        self, at_s: float, kind: FaultKind, error: ErrorCode, channel: int | None
    ) -> None:
        self._fault_log.append(FaultRecord(at_s, kind, channel))
        wire_channel = DEVICE_WIDE_CHANNEL if channel is None else channel
        self._send_unsolicited(Fault(error, wire_channel, self._device_time_ms(at_s)), at_s)

    def _update_telemetry_schedule(self, now: float) -> None:
        """Telemetry runs while any channel is active, first frame one interval after it starts."""
        if not any(ch.active for ch in self._channels):
            self._telemetry_origin_s = None
        elif self._telemetry_origin_s is None:
            self._telemetry_origin_s = now
            self._telemetry_count = 1

    def _device_time_ms(self, at_s: float) -> int:
        return round((at_s - self._power_on_s) * 1000) & 0xFFFF_FFFF

    # --- output path with injected faults ------------------------------------------------------

    def _send_unsolicited(self, message: Message, at_s: float) -> None:
        seq = self._device_seq
        self._device_seq = (seq + 1) & 0xFF
        self._send(seq, message, at_s)

    def _send(self, seq: int, message: Message, at_s: float) -> None:
        outcome = self._transmit(encode_frame(Frame(seq, message)), at_s, self._fault_rng)
        if outcome is LinkOutcome.DROPPED:
            self.injection_counters.frames_dropped += 1
        elif outcome is LinkOutcome.CORRUPTED:
            self.injection_counters.frames_corrupted += 1

    # --- commands -------------------------------------------------------------------------------

    def _answer_rejection(self, rejection: Rejection, now: float) -> None:
        """NAK a discarded frame when its header names a command to refuse (best effort)."""
        error = _NAK_FOR_REJECTION.get(rejection.reason)
        if error is None or rejection.seq is None or rejection.command is None:
            return
        self._send(rejection.seq, Nak(rejection.command, error), now)

    def _execute(self, frame: Frame, now: float) -> None:
        self._command_log.append(LoggedCommand(now, frame.seq, frame.command, frame.message))
        self._last_host_frame_s = now
        injected = self._injected_nak()
        message = frame.message
        reply: Message
        try:
            if isinstance(message, Stop | EmergencyStop):
                # A device never refuses to stop: an injected NAK changes the reply only.
                self._stop_all(emergency=isinstance(message, EmergencyStop))
                reply = Ack(frame.command) if injected is None else Nak(frame.command, injected)
            elif injected is not None:
                raise _CommandRefusedError(injected)
            else:
                reply = self._dispatch(message, now)
        except _CommandRefusedError as refusal:
            reply = Nak(frame.command, refusal.code)
        self._update_telemetry_schedule(now)
        self._send(frame.seq, reply, now)

    def _injected_nak(self) -> ErrorCode | None:
        faults = self.faults
        if faults.nak_next > 0:
            faults.nak_next -= 1
        elif not (faults.nak_rate > 0 and self._fault_rng.random() < faults.nak_rate):
            return None
        self.injection_counters.naks_injected += 1
        return faults.nak_code

    def _dispatch(self, message: Message, now: float) -> Message:
        if isinstance(message, Identify):
            return self._identity()
        if isinstance(message, GetStatus):
            return self._status(now)
        if isinstance(message, ConfigureChannel):
            self._configure(message)
        elif isinstance(message, Start):
            self._start(message.channel_mask)
        elif isinstance(message, SetAmplitude):
            self._set_amplitude(message)
        elif isinstance(message, Pause):
            self._pause(message.channel_mask)
        elif isinstance(message, Resume):
            self._resume(message.channel_mask)
        elif not isinstance(message, Heartbeat):
            raise _CommandRefusedError(ErrorCode.UNKNOWN_COMMAND)
        return Ack(message.COMMAND)

    def _identity(self) -> Identity:
        config, limits = self.config, self.config.limits
        # IDENTITY has one timing range for the whole device: the union of the supported
        # modalities' ranges, so it never hides a width or rate some modality accepts.
        timing = limits.identity_timing(config.modalities)
        return Identity(
            protocol_version=PROTOCOL_VERSION,
            model=config.model,
            firmware_version=config.firmware_version,
            serial_number=config.serial_number,
            channel_count=config.channel_count,
            amplitude_limits=tuple(
                ModalityLimit(m, limits.max_amplitude_ua(m)) for m in sorted(config.modalities)
            ),
            pulse_width_min_us=timing.pulse_width_min_us,
            pulse_width_max_us=timing.pulse_width_max_us,
            frequency_min_millihz=timing.frequency_min_millihz,
            frequency_max_millihz=timing.frequency_max_millihz,
            watchdog_timeout_ms=config.watchdog_timeout_ms,
            telemetry_interval_ms=round(1000 * config.telemetry_interval_s),
        )

    def _status(self, now: float) -> Status:
        flags = self._latched_flags
        if self._hardware_fault:
            flags |= DeviceFlags.HARDWARE_FAULT
        if any(ch.electrode_off for ch in self._channels):
            flags |= DeviceFlags.ELECTRODE_OFF
        channels = tuple(
            ChannelStatus(
                state=ch.state,
                flags=ChannelFlags.ELECTRODE_OFF if ch.electrode_off else ChannelFlags.NONE,
                output_amplitude_ua=ch.output_amplitude_ua,
            )
            for ch in self._channels
        )
        return Status(self._device_time_ms(now), flags, channels)

    def _channel(self, index: int) -> _Channel:
        if not 0 <= index < len(self._channels):
            raise _CommandRefusedError(ErrorCode.PARAMETER)
        return self._channels[index]

    def _masked(self, mask: int) -> list[_Channel]:
        if mask == 0 or mask >> len(self._channels):
            raise _CommandRefusedError(ErrorCode.PARAMETER)
        return [self._channels[index] for index in channels_in_mask(mask)]

    def _require_healthy(self) -> None:
        if self._hardware_fault:
            raise _CommandRefusedError(ErrorCode.HARDWARE_FAULT)

    def _configure(self, message: ConfigureChannel) -> None:
        channel = self._channel(message.channel)
        if message.modality not in self.config.modalities:
            raise _CommandRefusedError(ErrorCode.PARAMETER)
        self._require_healthy()
        if channel.active:
            raise _CommandRefusedError(ErrorCode.WRONG_STATE)
        limits = self.config.limits
        period_fits = (
            message.phase_type.phase_count * message.pulse_width_us * message.frequency_millihz
            <= 1_000_000_000
        )
        if not (
            message.amplitude_ua <= limits.max_amplitude_ua(message.modality)
            and limits.timing(message.modality).admits(
                message.pulse_width_us, message.frequency_millihz
            )
            and period_fits
            and self._rms_admits(message, message.amplitude_ua)
        ):
            raise _CommandRefusedError(ErrorCode.PARAMETER)
        channel.settings = message
        channel.amplitude_ua = message.amplitude_ua
        channel.state = ChannelState.IDLE

    def _start(self, mask: int) -> None:
        channels = self._masked(mask)
        self._require_healthy()
        if any(ch.state is not ChannelState.IDLE for ch in channels):
            raise _CommandRefusedError(ErrorCode.WRONG_STATE)
        if any(ch.electrode_off for ch in channels):
            raise _CommandRefusedError(ErrorCode.ELECTRODE_OFF)
        for channel in channels:
            channel.state = ChannelState.RUNNING
        self._latched_flags = DeviceFlags.NONE

    def _set_amplitude(self, message: SetAmplitude) -> None:
        channel = self._channel(message.channel)
        self._require_healthy()
        if not channel.active or channel.settings is None:
            raise _CommandRefusedError(ErrorCode.WRONG_STATE)
        settings = channel.settings
        if message.amplitude_ua > self.config.limits.max_amplitude_ua(
            settings.modality
        ) or not self._rms_admits(settings, message.amplitude_ua):
            raise _CommandRefusedError(ErrorCode.PARAMETER)
        channel.amplitude_ua = message.amplitude_ua

    def _rms_admits(self, settings: ConfigureChannel, amplitude_ua: int) -> bool:
        """The rms ceiling of the output stage, at `amplitude_ua` with the timing of `settings`:
        checked on CONFIGURE and again on every SET_AMPLITUDE, since a live raise alone can
        break it."""
        return self.config.limits.rms_admits(
            settings.modality,
            amplitude_ua,
            phase_count=settings.phase_type.phase_count,
            pulse_width_us=settings.pulse_width_us,
            frequency_millihz=settings.frequency_millihz,
        )

    def _pause(self, mask: int) -> None:
        # Pausing an already paused channel is a no-op, so a host can hold every channel after
        # the device paused one by itself (electrode off).
        channels = self._masked(mask)
        if any(ch.state not in (ChannelState.RUNNING, ChannelState.PAUSED) for ch in channels):
            raise _CommandRefusedError(ErrorCode.WRONG_STATE)
        for channel in channels:
            channel.state = ChannelState.PAUSED

    def _resume(self, mask: int) -> None:
        channels = self._masked(mask)
        self._require_healthy()
        if any(ch.state is not ChannelState.PAUSED for ch in channels):
            raise _CommandRefusedError(ErrorCode.WRONG_STATE)
        if any(ch.electrode_off for ch in channels):
            raise _CommandRefusedError(ErrorCode.ELECTRODE_OFF)
        for channel in channels:
            channel.state = ChannelState.RUNNING

    def _stop_all(self, *, emergency: bool) -> None:
        self._deactivate_all()
        if not emergency:
            return
        for channel in self._channels:
            channel.state = ChannelState.UNCONFIGURED
            channel.settings = None
            channel.amplitude_ua = 0
        self._latched_flags |= DeviceFlags.EMERGENCY_STOPPED

    def _check_fault_channels(self, channels: frozenset[int] | set[int]) -> None:
        bad = sorted(c for c in channels if not 0 <= c < self.config.channel_count)
        if bad:
            raise ValueError(
                f"electrode_off names channels {bad}; the device has {self.config.channel_count}"
            )
