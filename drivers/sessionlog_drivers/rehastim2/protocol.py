"""The ScienceMode2 codec of the Hasomed RehaStim 2: typed packets to wire bytes and back, no I/O.

Both the driver (PC side) and the emulator (device side) use this module, so the framing is written
once. A packet is ``0xF0``, the checksum and the data length (each always sent stuffed, two bytes),
the stuffed packet number, command and command data, and ``0x0F`` (ScienceMode2 protocol v1.24,
§2.2, Table 5). Stuffing sends 0xF0, 0x0F and 0x81 as ``0x81, byte XOR 0x55`` (Table 6). The
checksum is CRC-8 (polynomial 0x07, initial value 0, no reflection) and, like the length, covers the
*stuffed* packet number, command and data bytes (§2.2). Payloads are frozen dataclasses that check
the protocol's ranges when built, so a value the wire cannot carry raises ``ValueError`` instead of
being truncated. ``PacketDecoder`` is incremental, never raises on input, resynchronises on the next
start byte and counts every malformed packet.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import ClassVar, Self, TypeVar

START_BYTE = 0xF0
STOP_BYTE = 0x0F
STUFFING_BYTE = 0x81
STUFFING_KEY = 0x55
_SPECIAL_BYTES = frozenset({START_BYTE, STOP_BYTE, STUFFING_BYTE})

MAX_COMMAND_DATA_BYTES = 60
"""Command data is "< 61 Byte" (Table 5), counted before stuffing."""

MAX_STUFFED_BODY_BYTES = 2 * (2 + MAX_COMMAND_DATA_BYTES)
"""Longest stuffed packet number + command + data: every byte stuffed. A longer length is garbage."""

CHANNEL_COUNT = 8
MAX_CURRENT_MA = 130
MAX_PULSE_WIDTH_US = 500
MAX_LOW_FREQUENCY_FACTOR = 7
MAX_INTER_PULSE_INTERVAL_CODED = 255
MAX_MAIN_STIMULATION_INTERVAL_CODED = 2048

MAIN_INTERVAL_OFFSET_MS = 1.0
INTER_PULSE_INTERVAL_OFFSET_MS = 1.5
INTERVAL_STEP_MS = 0.5
"""Both intervals are coded ``x · 0.5 ms + offset`` (§4.3, InitChannelListMode bytes 10-12)."""

_GRID_TOLERANCE = 1e-6
"""How far (in grid steps) a float interval may sit from the 0.5 ms grid and still count as on it:
enough for binary floating point, far too little to hide a rounding (one step is 500 µs)."""


_E = TypeVar("_E", bound=IntEnum)


class Command(IntEnum):
    """Command numbers of the connection, mode and stimulation commands (§3.1-3.3)."""

    INIT = 1
    INIT_ACK = 2
    UNKNOWN_COMMAND = 3
    WATCHDOG = 4
    GET_STIMULATION_MODE = 10
    GET_STIMULATION_MODE_ACK = 11
    INIT_CHANNEL_LIST_MODE = 30
    INIT_CHANNEL_LIST_MODE_ACK = 31
    START_CHANNEL_LIST_MODE = 32
    START_CHANNEL_LIST_MODE_ACK = 33
    STOP_CHANNEL_LIST_MODE = 34
    STOP_CHANNEL_LIST_MODE_ACK = 35
    SINGLE_PULSE = 36
    SINGLE_PULSE_ACK = 37
    STIMULATION_ERROR = 38


HOST_COMMANDS = frozenset(
    {
        Command.INIT_ACK,
        Command.WATCHDOG,
        Command.GET_STIMULATION_MODE,
        Command.INIT_CHANNEL_LIST_MODE,
        Command.START_CHANNEL_LIST_MODE,
        Command.STOP_CHANNEL_LIST_MODE,
        Command.SINGLE_PULSE,
    }
)
"""What the PC sends (§3.5)."""

DEVICE_COMMANDS = frozenset(Command) - HOST_COMMANDS
"""What the RehaStim 2 sends: Init, UnknownCommand, the acks and StimulationError (§3.5)."""

ACK_FOR: dict[Command, Command] = {
    Command.GET_STIMULATION_MODE: Command.GET_STIMULATION_MODE_ACK,
    Command.INIT_CHANNEL_LIST_MODE: Command.INIT_CHANNEL_LIST_MODE_ACK,
    Command.START_CHANNEL_LIST_MODE: Command.START_CHANNEL_LIST_MODE_ACK,
    Command.STOP_CHANNEL_LIST_MODE: Command.STOP_CHANNEL_LIST_MODE_ACK,
    Command.SINGLE_PULSE: Command.SINGLE_PULSE_ACK,
}
"""The acknowledgement of each PC command that has one. InitAck and Watchdog are not answered."""


class AckResult(IntEnum):
    """Result byte of an acknowledgement, a signed byte on the wire (§5.1)."""

    OK = 0
    TRANSFER_ERROR = -1
    PARAMETER_ERROR = -2
    WRONG_MODE = -3
    MOTOMED_CONNECTION_ERROR = -4
    INCOMPATIBLE_VERSION = -5
    INVALID_MOTOMED_TRAINER = -6
    MOTOMED_BUSY = -7
    BUSY = -8

    @property
    def description(self) -> str:
        return self.name.lower().replace("_", " ")


class StimulationErrorCode(IntEnum):
    """Why the device stopped stimulating on its own (§4.3, StimulationError)."""

    EMERGENCY_SWITCH = -1
    ELECTRODE_ERROR = -2
    MODULE_ERROR = -3

    @property
    def description(self) -> str:
        return {
            StimulationErrorCode.EMERGENCY_SWITCH: "emergency switch activated or not connected",
            StimulationErrorCode.ELECTRODE_ERROR: "electrode error",
            StimulationErrorCode.MODULE_ERROR: "stimulation module error",
        }[self]


class StimulationMode(IntEnum):
    """GetStimulationModeAck byte 8 (§4.2, Figure 4)."""

    START = 0
    INITIALISED = 1
    STARTED = 2


class PulseGroup(IntEnum):
    """StartChannelListMode "Mode" byte per channel: single pulses, doublets or triplets."""

    SINGLE = 0
    DOUBLET = 1
    TRIPLET = 2

    @property
    def pulse_count(self) -> int:
        return int(self) + 1


class ChannelExecution(IntEnum):
    """InitChannelListMode byte 13."""

    FIXED_INTERVAL = 0
    AS_FAST_AS_POSSIBLE = 1


class PayloadError(ValueError):
    """Command data that does not match the documented layout or ranges."""


def signed_byte(value: int) -> int:
    """A result or error code (−128..127) as the unsigned byte sent on the wire."""
    if not -128 <= value <= 127:
        raise ValueError(f"{value} does not fit a signed byte")
    return value & 0xFF


def from_signed_byte(byte: int) -> int:
    return byte - 0x100 if byte >= 0x80 else byte


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PayloadError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _enum_value(kind: type[_E], value: int) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise PayloadError(f"{value} is not a valid {kind.__name__}") from None


def _expect_length(data: bytes, size: int, what: str) -> None:
    if len(data) != size:
        raise PayloadError(f"{what} carries {size} data byte(s), got {len(data)}")


def channel_mask(channels: Iterable[int]) -> int:
    """Bit mask of 1-based channel numbers: bit 0 is channel 1 (§4.3, InitChannelListMode)."""
    mask = 0
    for channel in channels:
        _check_range("channel", channel, 1, CHANNEL_COUNT)
        mask |= 1 << (channel - 1)
    return mask


def channels_in_mask(mask: int) -> frozenset[int]:
    return frozenset(bit + 1 for bit in range(CHANNEL_COUNT) if mask >> bit & 1)


def main_interval_coded(interval_ms: float) -> int:
    """Code a main stimulation interval (``x · 0.5 + 1 ms``); off the grid or range → ValueError."""
    return _coded_interval(
        "main stimulation interval",
        interval_ms,
        MAIN_INTERVAL_OFFSET_MS,
        MAX_MAIN_STIMULATION_INTERVAL_CODED,
    )


def inter_pulse_interval_coded(interval_ms: float) -> int:
    """Code an inter-pulse interval (``x · 0.5 + 1.5 ms``); off the grid or range → ValueError."""
    return _coded_interval(
        "inter-pulse interval",
        interval_ms,
        INTER_PULSE_INTERVAL_OFFSET_MS,
        MAX_INTER_PULSE_INTERVAL_CODED,
    )


def main_interval_coded_for_frequency(frequency_hz: float) -> int:
    """The coded main interval whose period is exactly ``1 / frequency_hz``; never rounded."""
    if not (math.isfinite(frequency_hz) and frequency_hz > 0):
        raise ValueError(f"frequency must be a positive number, got {frequency_hz!r}")
    return main_interval_coded(1000.0 / frequency_hz)


def _coded_interval(name: str, interval_ms: float, offset_ms: float, max_coded: int) -> int:
    steps = (interval_ms - offset_ms) / INTERVAL_STEP_MS
    coded = round(steps)
    if not math.isclose(steps, coded, rel_tol=0.0, abs_tol=_GRID_TOLERANCE):
        raise ValueError(
            f"{name} {interval_ms:g} ms is not on the device's grid of {INTERVAL_STEP_MS} ms "
            f"steps from {offset_ms} ms; it would have to be rounded"
        )
    if not 0 <= coded <= max_coded:
        low, high = offset_ms, offset_ms + max_coded * INTERVAL_STEP_MS
        raise ValueError(f"{name} {interval_ms:g} ms is outside [{low:g}, {high:g}] ms")
    return coded


# --------------------------------------------------------------------------------------- payloads


@dataclass(frozen=True, slots=True)
class Init:
    """Device → PC every 500 ms until answered: the protocol version it speaks (§4.1)."""

    COMMAND: ClassVar[Command] = Command.INIT
    protocol_version: int

    def __post_init__(self) -> None:
        _check_range("protocol version", self.protocol_version, 0, 255)

    def encode_data(self) -> bytes:
        return bytes((self.protocol_version,))

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        _expect_length(data, 1, "Init")
        return cls(data[0])


@dataclass(frozen=True, slots=True)
class InitAck:
    """PC → device: 0 accepts the version and establishes the connection, −5 refuses it (§4.1)."""

    COMMAND: ClassVar[Command] = Command.INIT_ACK
    result: AckResult

    def __post_init__(self) -> None:
        if self.result not in (AckResult.OK, AckResult.INCOMPATIBLE_VERSION):
            raise PayloadError(f"InitAck result is 0 or −5, not {int(self.result)}")

    def encode_data(self) -> bytes:
        return bytes((signed_byte(self.result),))

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        _expect_length(data, 1, "InitAck")
        return cls(_enum_value(AckResult, from_signed_byte(data[0])))


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """Device → PC: the command number it did not recognise, echoed (§4.1)."""

    COMMAND: ClassVar[Command] = Command.UNKNOWN_COMMAND
    echoed_command: int

    def __post_init__(self) -> None:
        _check_range("echoed command", self.echoed_command, 0, 255)

    def encode_data(self) -> bytes:
        return bytes((self.echoed_command,))

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        _expect_length(data, 1, "UnknownCommand")
        return cls(data[0])


@dataclass(frozen=True, slots=True)
class _NoData:
    """A command whose packet has no command data."""

    def encode_data(self) -> bytes:
        return b""

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        _expect_length(data, 0, cls.__name__)
        return cls()


@dataclass(frozen=True, slots=True)
class Watchdog(_NoData):
    """PC → device: a valid packet that only feeds the 1200 ms watchdog; never answered (§4.1)."""

    COMMAND: ClassVar[Command] = Command.WATCHDOG


@dataclass(frozen=True, slots=True)
class GetStimulationMode(_NoData):
    COMMAND: ClassVar[Command] = Command.GET_STIMULATION_MODE


@dataclass(frozen=True, slots=True)
class StopChannelListMode(_NoData):
    COMMAND: ClassVar[Command] = Command.STOP_CHANNEL_LIST_MODE


@dataclass(frozen=True, slots=True)
class _Ack:
    """An acknowledgement that carries only its result byte."""

    result: AckResult

    def encode_data(self) -> bytes:
        return bytes((signed_byte(self.result),))

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        _expect_length(data, 1, cls.__name__)
        return cls(_enum_value(AckResult, from_signed_byte(data[0])))


@dataclass(frozen=True, slots=True)
class InitChannelListModeAck(_Ack):
    COMMAND: ClassVar[Command] = Command.INIT_CHANNEL_LIST_MODE_ACK


@dataclass(frozen=True, slots=True)
class StartChannelListModeAck(_Ack):
    COMMAND: ClassVar[Command] = Command.START_CHANNEL_LIST_MODE_ACK


@dataclass(frozen=True, slots=True)
class StopChannelListModeAck(_Ack):
    COMMAND: ClassVar[Command] = Command.STOP_CHANNEL_LIST_MODE_ACK


@dataclass(frozen=True, slots=True)
class SinglePulseAck(_Ack):
    COMMAND: ClassVar[Command] = Command.SINGLE_PULSE_ACK


@dataclass(frozen=True, slots=True)
class GetStimulationModeAck:
    """The device's stimulation mode; when the result is not 0 the mode byte is absent (§4.2)."""

    COMMAND: ClassVar[Command] = Command.GET_STIMULATION_MODE_ACK
    result: AckResult
    mode: StimulationMode | None = None

    def __post_init__(self) -> None:
        if (self.result is AckResult.OK) != (self.mode is not None):
            raise PayloadError("GetStimulationModeAck carries a mode exactly when the result is 0")

    def encode_data(self) -> bytes:
        data = bytes((signed_byte(self.result),))
        return data if self.mode is None else data + bytes((self.mode,))

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        if not data:
            raise PayloadError("GetStimulationModeAck without a result byte")
        result = _enum_value(AckResult, from_signed_byte(data[0]))
        if result is AckResult.OK:
            _expect_length(data, 2, "GetStimulationModeAck")
            return cls(result, _enum_value(StimulationMode, data[1]))
        _expect_length(data, 1, "GetStimulationModeAck with an error")
        return cls(result)


@dataclass(frozen=True, slots=True)
class InitChannelListMode:
    """PC → device: the channel list and its timing (§4.3, bytes 7-13; Table 2).

    The intervals are kept in their coded form, which is what the wire carries exactly; the ``_ms``
    properties give their meaning. The protocol ranges are checked here; the firmware's own minimum
    of 8 ms for both intervals is the device's business (the emulator refuses less).
    """

    COMMAND: ClassVar[Command] = Command.INIT_CHANNEL_LIST_MODE
    active_channels: frozenset[int]
    main_stimulation_interval_coded: int
    inter_pulse_interval_coded: int
    low_frequency_channels: frozenset[int] = frozenset()
    low_frequency_factor: int = 0
    channel_execution: ChannelExecution = ChannelExecution.FIXED_INTERVAL

    def __post_init__(self) -> None:
        channel_mask(self.active_channels)
        channel_mask(self.low_frequency_channels)
        _check_range("low frequency factor", self.low_frequency_factor, 0, MAX_LOW_FREQUENCY_FACTOR)
        _check_range(
            "inter-pulse interval (coded)",
            self.inter_pulse_interval_coded,
            0,
            MAX_INTER_PULSE_INTERVAL_CODED,
        )
        _check_range(
            "main stimulation interval (coded)",
            self.main_stimulation_interval_coded,
            0,
            MAX_MAIN_STIMULATION_INTERVAL_CODED,
        )
        _enum_value(ChannelExecution, self.channel_execution)

    @property
    def one_shot(self) -> bool:
        """Coded main interval 0 selects the one-shot channel list mode."""
        return self.main_stimulation_interval_coded == 0

    @property
    def main_stimulation_interval_ms(self) -> float:
        return self.main_stimulation_interval_coded * INTERVAL_STEP_MS + MAIN_INTERVAL_OFFSET_MS

    @property
    def inter_pulse_interval_ms(self) -> float:
        return self.inter_pulse_interval_coded * INTERVAL_STEP_MS + INTER_PULSE_INTERVAL_OFFSET_MS

    def encode_data(self) -> bytes:
        main = self.main_stimulation_interval_coded
        return bytes(
            (
                self.low_frequency_factor,
                channel_mask(self.active_channels),
                channel_mask(self.low_frequency_channels),
                self.inter_pulse_interval_coded,
                main >> 8,
                main & 0xFF,
                self.channel_execution,
            )
        )

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        _expect_length(data, 7, "InitChannelListMode")
        return cls(
            active_channels=channels_in_mask(data[1]),
            main_stimulation_interval_coded=data[4] << 8 | data[5],
            inter_pulse_interval_coded=data[3],
            low_frequency_channels=channels_in_mask(data[2]),
            low_frequency_factor=data[0],
            channel_execution=_enum_value(ChannelExecution, data[6]),
        )


@dataclass(frozen=True, slots=True)
class ChannelPulse:
    """The four bytes of one active channel in StartChannelListMode: group, width (MSB, LSB), mA."""

    pulse_group: PulseGroup
    pulse_width_us: int
    current_ma: int

    def __post_init__(self) -> None:
        _enum_value(PulseGroup, self.pulse_group)
        _check_range("pulse width (µs)", self.pulse_width_us, 0, MAX_PULSE_WIDTH_US)
        _check_range("current (mA)", self.current_ma, 0, MAX_CURRENT_MA)

    def encode(self) -> bytes:
        width = self.pulse_width_us
        return bytes((self.pulse_group, width >> 8, width & 0xFF, self.current_ma))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        return cls(_enum_value(PulseGroup, data[0]), data[1] << 8 | data[2], data[3])


@dataclass(frozen=True, slots=True)
class StartChannelListMode:
    """PC → device: start, or update, the channel list; one entry per active channel, in increasing
    channel order (§4.3). The channel numbers themselves are not sent."""

    COMMAND: ClassVar[Command] = Command.START_CHANNEL_LIST_MODE
    channels: tuple[ChannelPulse, ...]

    def __post_init__(self) -> None:
        if len(self.channels) > CHANNEL_COUNT:
            raise PayloadError(f"at most {CHANNEL_COUNT} channels, got {len(self.channels)}")

    def encode_data(self) -> bytes:
        return b"".join(channel.encode() for channel in self.channels)

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        if len(data) % 4 or len(data) > 4 * CHANNEL_COUNT:
            raise PayloadError(f"StartChannelListMode data of {len(data)} bytes")
        return cls(tuple(ChannelPulse.decode(data[i : i + 4]) for i in range(0, len(data), 4)))


@dataclass(frozen=True, slots=True)
class SinglePulse:
    """PC → device: one pulse now. ``channel`` is 1-based here; the wire carries 0-7 (§4.3)."""

    COMMAND: ClassVar[Command] = Command.SINGLE_PULSE
    channel: int
    pulse_width_us: int
    current_ma: int

    def __post_init__(self) -> None:
        _check_range("channel", self.channel, 1, CHANNEL_COUNT)
        _check_range("pulse width (µs)", self.pulse_width_us, 0, MAX_PULSE_WIDTH_US)
        _check_range("current (mA)", self.current_ma, 0, MAX_CURRENT_MA)

    def encode_data(self) -> bytes:
        width = self.pulse_width_us
        return bytes((self.channel - 1, width >> 8, width & 0xFF, self.current_ma))

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        _expect_length(data, 4, "SinglePulse")
        return cls(data[0] + 1, data[1] << 8 | data[2], data[3])


@dataclass(frozen=True, slots=True)
class StimulationError:
    """Device → PC, unsolicited: it stopped stimulating and reset to start mode (§1.3, §4.3)."""

    COMMAND: ClassVar[Command] = Command.STIMULATION_ERROR
    error: StimulationErrorCode

    def encode_data(self) -> bytes:
        return bytes((signed_byte(self.error),))

    @classmethod
    def decode_data(cls, data: bytes) -> Self:
        _expect_length(data, 1, "StimulationError")
        return cls(_enum_value(StimulationErrorCode, from_signed_byte(data[0])))


Message = (
    Init
    | InitAck
    | UnknownCommand
    | Watchdog
    | GetStimulationMode
    | GetStimulationModeAck
    | InitChannelListMode
    | InitChannelListModeAck
    | StartChannelListMode
    | StartChannelListModeAck
    | StopChannelListMode
    | StopChannelListModeAck
    | SinglePulse
    | SinglePulseAck
    | StimulationError
)

Ack = (
    GetStimulationModeAck
    | InitChannelListModeAck
    | StartChannelListModeAck
    | StopChannelListModeAck
    | SinglePulseAck
)
"""The replies that answer a PC command (§3.5, "Command / Response Communication")."""

_DECODERS: dict[Command, Callable[[bytes], Message]] = {
    message_type.COMMAND: message_type.decode_data
    for message_type in (
        Init,
        InitAck,
        UnknownCommand,
        Watchdog,
        GetStimulationMode,
        GetStimulationModeAck,
        InitChannelListMode,
        InitChannelListModeAck,
        StartChannelListMode,
        StartChannelListModeAck,
        StopChannelListMode,
        StopChannelListModeAck,
        SinglePulse,
        SinglePulseAck,
        StimulationError,
    )
}


def decode_message(command: Command, data: bytes) -> Message:
    """The payload of ``command``; anything not exactly as documented raises ``PayloadError``."""
    try:
        return _DECODERS[command](data)
    except PayloadError:
        raise
    except (ValueError, IndexError) as error:
        raise PayloadError(str(error)) from error


# ---------------------------------------------------------------------------------------- framing


def crc8(data: bytes) -> int:
    """CRC-8 with polynomial x⁸ + x² + x + 1 (0x07), initial value 0, no reflection, no final XOR."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc << 1 ^ 0x07) & 0xFF if crc & 0x80 else crc << 1 & 0xFF
    return crc


def stuff(data: bytes) -> bytes:
    """Escape 0xF0, 0x0F and 0x81 as ``0x81, byte XOR 0x55`` (§2.2)."""
    out = bytearray()
    for byte in data:
        if byte in _SPECIAL_BYTES:
            out += bytes((STUFFING_BYTE, byte ^ STUFFING_KEY))
        else:
            out.append(byte)
    return bytes(out)


def unstuff(data: bytes) -> bytes:
    """Undo ``stuff``; a dangling 0x81 or an escape of anything but the three constants raises."""
    out = bytearray()
    escaped = False
    for byte in data:
        if escaped:
            value = byte ^ STUFFING_KEY
            if value not in _SPECIAL_BYTES:
                raise PayloadError(f"0x81 0x{byte:02X} is not a stuffed constant")
            out.append(value)
            escaped = False
        elif byte == STUFFING_BYTE:
            escaped = True
        else:
            out.append(byte)
    if escaped:
        raise PayloadError("packet ends inside a stuffing sequence")
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet: a command's packet number (an ack echoes the PC's number) and its payload."""

    packet_number: int
    message: Message

    def __post_init__(self) -> None:
        _check_range("packet number", self.packet_number, 0, 255)

    @property
    def command(self) -> Command:
        return self.message.COMMAND


def encode_packet(packet: Packet) -> bytes:
    """Wire bytes of ``packet``; raises ValueError when its data is too long to send."""
    data = packet.message.encode_data()
    if len(data) > MAX_COMMAND_DATA_BYTES:
        raise ValueError(f"command data of {len(data)} bytes; at most {MAX_COMMAND_DATA_BYTES}")
    body = stuff(bytes((packet.packet_number, packet.command)) + data)
    checksum, length = crc8(body), len(body)
    return (
        bytes(
            (
                START_BYTE,
                STUFFING_BYTE,
                checksum ^ STUFFING_KEY,
                STUFFING_BYTE,
                length ^ STUFFING_KEY,
            )
        )
        + body
        + bytes((STOP_BYTE,))
    )


class RejectReason(Enum):
    """Why a packet was discarded; each has a counter in ``DecoderCounters``."""

    BAD_HEADER = "bad_header"
    """Checksum or length not preceded by the stuffing byte."""
    BAD_LENGTH = "bad_length"
    """The length field does not match the bytes received (a transfer error, §5.2)."""
    BAD_CHECKSUM = "bad_checksum"
    """The CRC does not match (a transfer error, §5.2)."""
    BAD_STUFFING = "bad_stuffing"
    TRUNCATED = "truncated"
    """A second start byte before the stop byte, or more bytes than any packet has (§5.2)."""
    UNKNOWN_COMMAND = "unknown_command"
    """A well-formed packet with a command this side does not handle. Not malformed."""
    BAD_DATA = "bad_data"
    """A well-formed packet whose data has the wrong size or a value out of range."""

    @property
    def transfer_error(self) -> bool:
        return self in (RejectReason.BAD_LENGTH, RejectReason.BAD_CHECKSUM)


_WELL_FORMED = frozenset({RejectReason.UNKNOWN_COMMAND, RejectReason.BAD_DATA})
"""Rejections of intact packets: those are consumed whole rather than scanned again."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A discarded packet with the packet number and command as received (unverified when the
    checksum failed): the device answers some rejections with an error result."""

    reason: RejectReason
    packet_number: int | None
    command: int | None


@dataclass(slots=True)
class DecoderCounters:
    """Running totals. ``malformed`` sums every reason but UNKNOWN_COMMAND."""

    packets: int = 0
    malformed: int = 0
    bad_header: int = 0
    bad_length: int = 0
    bad_checksum: int = 0
    bad_stuffing: int = 0
    truncated: int = 0
    unknown_command: int = 0
    bad_data: int = 0
    discarded_bytes: int = 0


@dataclass(slots=True)
class PacketDecoder:
    """Incremental decoder: feed it any bytes; it never raises and resynchronises on 0xF0.

    The checksum and length bytes after their stuffing bytes are taken by position, because an
    always-stuffed value (``value XOR 0x55``) may itself equal 0xF0, 0x0F or 0x81. A packet that
    fails is dropped by its start byte only and the rest is scanned again, so a start byte that
    garbage made look like a header cannot swallow the genuine packet behind it. ``accepted`` are
    the commands this side receives; others are rejected as UNKNOWN_COMMAND.
    """

    accepted: Collection[Command] = frozenset(Command)
    counters: DecoderCounters = field(default_factory=DecoderCounters)
    _buffer: bytearray = field(default_factory=bytearray)

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete packet held for the next ``feed``."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Packet]:
        return [event for event in self.feed_events(data) if isinstance(event, Packet)]

    def feed_events(self, data: bytes) -> list[Packet | Rejection]:
        """Decoded packets and rejections in stream order; an incomplete packet waits."""
        buffer = self._buffer
        buffer += data
        events: list[Packet | Rejection] = []
        while buffer:
            start = buffer.find(START_BYTE)
            if start < 0:
                self.counters.discarded_bytes += len(buffer)
                buffer.clear()
                break
            if start:
                self.counters.discarded_bytes += start
                del buffer[:start]
            outcome = self._parse_one()
            if outcome is None:
                break
            consumed, event = outcome
            if isinstance(event, Rejection):
                self._count(event.reason)
                if event.reason not in _WELL_FORMED:
                    # Drop only the start byte and scan the rest again (see the class docstring).
                    self.counters.discarded_bytes += 1
                    consumed = 1
            else:
                self.counters.packets += 1
            del buffer[:consumed]
            events.append(event)
        return events

    def _count(self, reason: RejectReason) -> None:
        counters = self.counters
        setattr(counters, reason.value, getattr(counters, reason.value) + 1)
        if reason is not RejectReason.UNKNOWN_COMMAND:
            counters.malformed += 1

    def _parse_one(self) -> tuple[int, Packet | Rejection] | None:
        """Parse the packet at the start of the buffer; None while more bytes are needed."""
        buffer = self._buffer
        for position in (1, 3):
            if len(buffer) > position and buffer[position] != STUFFING_BYTE:
                reason = (
                    RejectReason.TRUNCATED
                    if buffer[position] == START_BYTE
                    else RejectReason.BAD_HEADER
                )
                return 0, Rejection(reason, None, None)
        if len(buffer) < 5:
            return None
        length = buffer[4] ^ STUFFING_KEY
        if length > MAX_STUFFED_BODY_BYTES:
            return 0, Rejection(RejectReason.BAD_LENGTH, None, None)
        for index in range(5, len(buffer)):
            byte = buffer[index]
            if byte == STOP_BYTE:
                return index + 1, self._complete(
                    buffer[2] ^ STUFFING_KEY, length, bytes(buffer[5:index])
                )
            if byte == START_BYTE:
                return 0, self._rejection(RejectReason.TRUNCATED, bytes(buffer[5:index]))
        if len(buffer) - 5 > MAX_STUFFED_BODY_BYTES:
            return 0, self._rejection(RejectReason.TRUNCATED, bytes(buffer[5:]))
        return None

    def _complete(self, checksum: int, length: int, body: bytes) -> Packet | Rejection:
        if len(body) != length:
            return self._rejection(RejectReason.BAD_LENGTH, body)
        if crc8(body) != checksum:
            return self._rejection(RejectReason.BAD_CHECKSUM, body)
        try:
            content = unstuff(body)
        except PayloadError:
            return self._rejection(RejectReason.BAD_STUFFING, body)
        if len(content) < 2:
            return self._rejection(RejectReason.BAD_LENGTH, body)
        number, code, data = content[0], content[1], content[2:]
        try:
            command = Command(code)
        except ValueError:
            return Rejection(RejectReason.UNKNOWN_COMMAND, number, code)
        if command not in self.accepted:
            return Rejection(RejectReason.UNKNOWN_COMMAND, number, code)
        if len(data) > MAX_COMMAND_DATA_BYTES:
            return Rejection(RejectReason.BAD_DATA, number, code)
        try:
            message = decode_message(command, data)
        except PayloadError:
            return Rejection(RejectReason.BAD_DATA, number, code)
        return Packet(number, message)

    @staticmethod
    def _rejection(reason: RejectReason, body: bytes) -> Rejection:
        """A rejection with whatever packet number and command can be read from ``body``."""
        try:
            content = unstuff(body)
        except PayloadError:
            content = bytes(body)
        return Rejection(
            reason,
            content[0] if content else None,
            content[1] if len(content) > 1 else None,
        )
