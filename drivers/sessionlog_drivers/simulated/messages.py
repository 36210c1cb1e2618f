"""Typed payloads of the simulated reference stimulator's wire protocol.

This module is the vocabulary of `docs/protocols/simulated.md`: command codes, error codes, the enums
that appear inside payloads, and one frozen dataclass per command or reply, each able to encode its
payload to bytes and decode it back. It knows nothing about framing (see `protocol`) or device
behaviour (see `emulator`); decoding raises `PayloadError` on anything that does not match the
documented layout exactly, so a driver never acts on a half-understood reply.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar, Self, TypeVar

PROTOCOL_VERSION = 1
"""Reported in IDENTITY; bumped on any incompatible change of a payload layout."""

MAX_CHANNELS = 8
"""Channel masks are one byte wide, so a device has at most eight channels (numbered 0-7)."""

DEVICE_WIDE_CHANNEL = 0xFF
"""Channel value in a FAULT that concerns the whole device rather than one channel."""

MAX_TEXT_BYTES = 32
"""Longest ASCII string (model, firmware version, serial number) carried in IDENTITY."""

_E = TypeVar("_E", bound=IntEnum)


class PayloadError(ValueError):
    """A payload does not match the documented layout (size, enum value or text encoding)."""


class Command(IntEnum):
    """Command byte of a frame. Host-to-device codes are below 0x80, device-to-host codes above."""

    IDENTIFY = 0x01
    HEARTBEAT = 0x02
    GET_STATUS = 0x03
    CONFIGURE_CHANNEL = 0x10
    START = 0x11
    SET_AMPLITUDE = 0x12
    PAUSE = 0x13
    RESUME = 0x14
    STOP = 0x15
    EMERGENCY_STOP = 0x1F
    IDENTITY = 0x81
    ACK = 0x82
    NAK = 0x83
    STATUS = 0x84
    TELEMETRY = 0x90
    FAULT = 0x91


HOST_COMMANDS = frozenset(c for c in Command if c < 0x80)
"""Commands a host may send; the device answers anything else with NAK(UNKNOWN_COMMAND)."""

DEVICE_COMMANDS = frozenset(c for c in Command if c >= 0x80)
"""Frames a device sends: replies (IDENTITY, ACK, NAK, STATUS) and unsolicited TELEMETRY/FAULT."""


class ErrorCode(IntEnum):
    """Reason carried by NAK and FAULT."""

    TRANSFER = 1
    UNKNOWN_COMMAND = 2
    PARAMETER = 3
    WRONG_STATE = 4
    BUSY = 5
    ELECTRODE_OFF = 6
    HARDWARE_FAULT = 7
    WATCHDOG_EXPIRED = 8


class Modality(IntEnum):
    """Output stage a channel is configured for; its bit in a modality mask is 1 << (value - 1)."""

    EMS = 1
    MICROCURRENT = 2

    @property
    def mask_bit(self) -> int:
        return 1 << (self.value - 1)


class PhaseType(IntEnum):
    """Pulse shape. Biphasic pulses have two phases of `pulse_width_us` each."""

    BIPHASIC_SYMMETRIC = 0
    BIPHASIC_ASYMMETRIC = 1
    MONOPHASIC = 2

    @property
    def phase_count(self) -> int:
        return 1 if self is PhaseType.MONOPHASIC else 2


class Polarity(IntEnum):
    """Which electrode of the pair is the anode during the first (or only) phase."""

    POSITIVE_FIRST = 0
    NEGATIVE_FIRST = 1


class ChannelState(IntEnum):
    """Per-channel state as reported in STATUS."""

    UNCONFIGURED = 0
    IDLE = 1
    RUNNING = 2
    PAUSED = 3


class DeviceFlags(IntFlag):
    """Device-wide condition bits in STATUS."""

    NONE = 0
    WATCHDOG_EXPIRED = 0x0001
    HARDWARE_FAULT = 0x0002
    ELECTRODE_OFF = 0x0004
    EMERGENCY_STOPPED = 0x0008


class ChannelFlags(IntFlag):
    """Per-channel condition bits in STATUS."""

    NONE = 0
    ELECTRODE_OFF = 0x01


def _pack(fmt: str, *values: int) -> bytes:
    """Pack little-endian integers, turning an out-of-range field into a ValueError that names it."""
    try:
        return struct.pack("<" + fmt, *values)
    except struct.error as exc:
        raise ValueError(f"field out of range for wire format {fmt!r}: {values!r}") from exc


def _pack_text(text: str) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > MAX_TEXT_BYTES:
        raise ValueError(f"text longer than {MAX_TEXT_BYTES} bytes: {text!r}")
    return bytes([len(raw)]) + raw


def _enum(enum_type: type[_E], value: int) -> _E:
    try:
        return enum_type(value)
    except ValueError as exc:
        raise PayloadError(f"{value} is not a valid {enum_type.__name__}") from exc


class _Reader:
    """Cursor over a payload that refuses to read past its end or to leave bytes unread."""

    def __init__(self, payload: bytes) -> None:
        self._payload = payload
        self._offset = 0

    def take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize("<" + fmt)
        end = self._offset + size
        if end > len(self._payload):
            raise PayloadError(f"payload too short: need {end} bytes, have {len(self._payload)}")
        values = struct.unpack_from("<" + fmt, self._payload, self._offset)
        self._offset = end
        return values

    def u8(self) -> int:
        return self.take("B")[0]

    def u16(self) -> int:
        return self.take("H")[0]

    def u32(self) -> int:
        return self.take("I")[0]

    def text(self) -> str:
        length = self.u8()
        if length > MAX_TEXT_BYTES:
            raise PayloadError(f"text length {length} exceeds {MAX_TEXT_BYTES}")
        end = self._offset + length
        if end > len(self._payload):
            raise PayloadError("payload too short for text field")
        raw = self._payload[self._offset : end]
        self._offset = end
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise PayloadError("text field is not ASCII") from exc

    def finish(self) -> None:
        if self._offset != len(self._payload):
            raise PayloadError(f"{len(self._payload) - self._offset} unexpected trailing bytes")


@dataclass(frozen=True, slots=True)
class Message:
    """Base of every payload type; a message without fields has an empty payload."""

    COMMAND: ClassVar[Command]

    def encode_payload(self) -> bytes:
        return b""

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        _Reader(payload).finish()
        return cls()


# --- host to device -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identify(Message):
    """Ask for model, firmware, serial number and hardware limits (answered by IDENTITY)."""

    COMMAND: ClassVar[Command] = Command.IDENTIFY


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """Keep the device watchdog fed when the host has nothing else to say (answered by ACK)."""

    COMMAND: ClassVar[Command] = Command.HEARTBEAT


@dataclass(frozen=True, slots=True)
class GetStatus(Message):
    """Ask for the per-channel state and output (answered by STATUS)."""

    COMMAND: ClassVar[Command] = Command.GET_STATUS


@dataclass(frozen=True, slots=True)
class ConfigureChannel(Message):
    """Set every stimulation parameter of one idle channel; output stays off until START."""

    COMMAND: ClassVar[Command] = Command.CONFIGURE_CHANNEL
    channel: int
    modality: Modality
    amplitude_ua: int
    pulse_width_us: int
    frequency_millihz: int
    phase_type: PhaseType = PhaseType.BIPHASIC_SYMMETRIC
    polarity: Polarity = Polarity.POSITIVE_FIRST

    @property
    def frequency_hz(self) -> float:
        return self.frequency_millihz / 1000

    def encode_payload(self) -> bytes:
        return _pack(
            "BBBBIII",
            self.channel,
            self.modality,
            self.phase_type,
            self.polarity,
            self.amplitude_ua,
            self.pulse_width_us,
            self.frequency_millihz,
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        reader = _Reader(payload)
        channel, modality, phase_type, polarity, amplitude, pulse_width, frequency = reader.take(
            "BBBBIII"
        )
        reader.finish()
        return cls(
            channel=channel,
            modality=_enum(Modality, modality),
            amplitude_ua=amplitude,
            pulse_width_us=pulse_width,
            frequency_millihz=frequency,
            phase_type=_enum(PhaseType, phase_type),
            polarity=_enum(Polarity, polarity),
        )


@dataclass(frozen=True, slots=True)
class _ChannelMaskMessage(Message):
    channel_mask: int

    def encode_payload(self) -> bytes:
        return _pack("B", self.channel_mask)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        reader = _Reader(payload)
        mask = reader.u8()
        reader.finish()
        return cls(channel_mask=mask)


@dataclass(frozen=True, slots=True)
class Start(_ChannelMaskMessage):
    """Switch on the output of every configured channel whose bit is set in `channel_mask`."""

    COMMAND: ClassVar[Command] = Command.START


@dataclass(frozen=True, slots=True)
class Pause(_ChannelMaskMessage):
    """Bring the output of running channels to zero while keeping the session open."""

    COMMAND: ClassVar[Command] = Command.PAUSE


@dataclass(frozen=True, slots=True)
class Resume(_ChannelMaskMessage):
    """Return paused channels to their set amplitude."""

    COMMAND: ClassVar[Command] = Command.RESUME


@dataclass(frozen=True, slots=True)
class SetAmplitude(Message):
    """Change the amplitude of a running or paused channel (the only live parameter change)."""

    COMMAND: ClassVar[Command] = Command.SET_AMPLITUDE
    channel: int
    amplitude_ua: int

    def encode_payload(self) -> bytes:
        return _pack("BI", self.channel, self.amplitude_ua)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        reader = _Reader(payload)
        channel, amplitude = reader.take("BI")
        reader.finish()
        return cls(channel=channel, amplitude_ua=amplitude)


@dataclass(frozen=True, slots=True)
class Stop(Message):
    """End output on every channel; configurations are kept. Never refused."""

    COMMAND: ClassVar[Command] = Command.STOP


@dataclass(frozen=True, slots=True)
class EmergencyStop(Message):
    """End output on every channel at once and forget all configurations. Never refused."""

    COMMAND: ClassVar[Command] = Command.EMERGENCY_STOP


# --- device to host -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModalityLimit:
    """Highest amplitude the output stage of one modality can deliver."""

    modality: Modality
    max_amplitude_ua: int


@dataclass(frozen=True, slots=True)
class Identity(Message):
    """Reply to IDENTIFY: who the device is and what its hardware can do."""

    COMMAND: ClassVar[Command] = Command.IDENTITY
    protocol_version: int
    model: str
    firmware_version: str
    serial_number: str
    channel_count: int
    amplitude_limits: tuple[ModalityLimit, ...]
    pulse_width_min_us: int
    pulse_width_max_us: int
    frequency_min_millihz: int
    frequency_max_millihz: int
    watchdog_timeout_ms: int
    telemetry_interval_ms: int

    @property
    def modalities(self) -> frozenset[Modality]:
        return frozenset(limit.modality for limit in self.amplitude_limits)

    def max_amplitude_ua(self, modality: Modality) -> int:
        """Hardware ceiling for `modality`; KeyError if the device does not support it."""
        for limit in self.amplitude_limits:
            if limit.modality is modality:
                return limit.max_amplitude_ua
        raise KeyError(modality)

    def encode_payload(self) -> bytes:
        parts = [
            _pack("B", self.protocol_version),
            _pack_text(self.model),
            _pack_text(self.firmware_version),
            _pack_text(self.serial_number),
            _pack("BB", self.channel_count, len(self.amplitude_limits)),
        ]
        parts += [_pack("BI", lim.modality, lim.max_amplitude_ua) for lim in self.amplitude_limits]
        parts.append(
            _pack(
                "IIIIIH",
                self.pulse_width_min_us,
                self.pulse_width_max_us,
                self.frequency_min_millihz,
                self.frequency_max_millihz,
                self.watchdog_timeout_ms,
                self.telemetry_interval_ms,
            )
        )
        return b"".join(parts)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        reader = _Reader(payload)
        protocol_version = reader.u8()
        model, firmware, serial = reader.text(), reader.text(), reader.text()
        channel_count, limit_count = reader.take("BB")
        limits = []
        for _ in range(limit_count):
            modality, max_amplitude = reader.take("BI")
            limits.append(ModalityLimit(_enum(Modality, modality), max_amplitude))
        pw_min, pw_max, f_min, f_max, watchdog, telemetry = reader.take("IIIIIH")
        reader.finish()
        return cls(
            protocol_version=protocol_version,
            model=model,
            firmware_version=firmware,
            serial_number=serial,
            channel_count=channel_count,
            amplitude_limits=tuple(limits),
            pulse_width_min_us=pw_min,
            pulse_width_max_us=pw_max,
            frequency_min_millihz=f_min,
            frequency_max_millihz=f_max,
            watchdog_timeout_ms=watchdog,
            telemetry_interval_ms=telemetry,
        )


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """The command in the frame with the same sequence number was carried out."""

    COMMAND: ClassVar[Command] = Command.ACK
    command: Command

    def encode_payload(self) -> bytes:
        return _pack("B", self.command)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        reader = _Reader(payload)
        command = _enum(Command, reader.u8())
        reader.finish()
        return cls(command=command)


@dataclass(frozen=True, slots=True)
class Nak(Message):
    """The command with the same sequence number was refused and changed nothing (except stops).

    `command` is the raw command byte as received, which may be a code this protocol does not know.
    """

    COMMAND: ClassVar[Command] = Command.NAK
    command: int
    error: ErrorCode

    def encode_payload(self) -> bytes:
        return _pack("BB", self.command, self.error)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        reader = _Reader(payload)
        command, error = reader.take("BB")
        reader.finish()
        return cls(command=command, error=_enum(ErrorCode, error))


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """One channel's entry in STATUS; `output_amplitude_ua` is what the output stage delivers now."""

    state: ChannelState
    flags: ChannelFlags
    output_amplitude_ua: int


@dataclass(frozen=True, slots=True)
class Status(Message):
    """Reply to GET_STATUS: device-wide flags and every channel's state, in channel order."""

    COMMAND: ClassVar[Command] = Command.STATUS
    device_time_ms: int
    flags: DeviceFlags
    channels: tuple[ChannelStatus, ...]

    def encode_payload(self) -> bytes:
        head = _pack("IHB", self.device_time_ms, self.flags, len(self.channels))
        body = b"".join(
            _pack("BBI", ch.state, ch.flags, ch.output_amplitude_ua) for ch in self.channels
        )
        return head + body

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        reader = _Reader(payload)
        device_time_ms, flags, count = reader.take("IHB")
        channels = []
        for _ in range(count):
            state, channel_flags, amplitude = reader.take("BBI")
            channels.append(
                ChannelStatus(_enum(ChannelState, state), ChannelFlags(channel_flags), amplitude)
            )
        reader.finish()
        return cls(
            device_time_ms=device_time_ms, flags=DeviceFlags(flags), channels=tuple(channels)
        )


@dataclass(frozen=True, slots=True)
class TelemetrySample:
    """One channel's measurement: delivered current and electrode impedance."""

    channel: int
    measured_current_ua: int
    impedance_ohm: int


@dataclass(frozen=True, slots=True)
class Telemetry(Message):
    """Unsolicited measurement of every running or paused channel at one device time."""

    COMMAND: ClassVar[Command] = Command.TELEMETRY
    device_time_ms: int
    samples: tuple[TelemetrySample, ...]

    def encode_payload(self) -> bytes:
        head = _pack("IB", self.device_time_ms, len(self.samples))
        body = b"".join(
            _pack("BII", s.channel, s.measured_current_ua, s.impedance_ohm) for s in self.samples
        )
        return head + body

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        reader = _Reader(payload)
        device_time_ms, count = reader.take("IB")
        samples = tuple(TelemetrySample(*reader.take("BII")) for _ in range(count))
        reader.finish()
        return cls(device_time_ms=device_time_ms, samples=samples)


@dataclass(frozen=True, slots=True)
class Fault(Message):
    """Unsolicited report of a device-side condition that changed the output by itself."""

    COMMAND: ClassVar[Command] = Command.FAULT
    error: ErrorCode
    channel: int
    device_time_ms: int

    def encode_payload(self) -> bytes:
        return _pack("BBI", self.error, self.channel, self.device_time_ms)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        reader = _Reader(payload)
        error, channel, device_time_ms = reader.take("BBI")
        reader.finish()
        return cls(error=_enum(ErrorCode, error), channel=channel, device_time_ms=device_time_ms)


MESSAGE_TYPES: dict[Command, type[Message]] = {
    cls.COMMAND: cls
    for cls in (
        Identify,
        Heartbeat,
        GetStatus,
        ConfigureChannel,
        Start,
        SetAmplitude,
        Pause,
        Resume,
        Stop,
        EmergencyStop,
        Identity,
        Ack,
        Nak,
        Status,
        Telemetry,
        Fault,
    )
}
"""Payload type for each command byte; every `Command` member has exactly one entry."""


def channel_mask(channels: Iterable[int]) -> int:
    """Bit mask for START/PAUSE/RESUME; channel n is bit n."""
    mask = 0
    for channel in channels:
        if not 0 <= channel < MAX_CHANNELS:
            raise ValueError(f"channel {channel} outside 0..{MAX_CHANNELS - 1}")
        mask |= 1 << channel
    return mask


def channels_in_mask(mask: int) -> tuple[int, ...]:
    """Channels whose bit is set in `mask`, in ascending order."""
    return tuple(n for n in range(MAX_CHANNELS) if mask & (1 << n))
