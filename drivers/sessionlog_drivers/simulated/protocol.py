"""Framing of the simulated reference stimulator's wire protocol: bytes in, typed frames out.

A frame is `0x7E` followed by the byte-stuffed body `length, seq, command, payload, crc16`, where the
CRC is CRC-16/CCITT-FALSE over the unstuffed `length, seq, command, payload` and is sent
little-endian. Stuffing (`0x7E`/`0x7D` sent as `0x7D, byte ^ 0x20`) guarantees that `0x7E` only ever
marks the start of a frame, so a receiver that lost its place resynchronises on the next one. Both
the driver (host side) and the emulator (device side) use this module; it does no I/O. The payload
types live in `messages` and are re-exported here so callers need one import.
"""

from __future__ import annotations

import binascii
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

from sessionlog_drivers.simulated.messages import (
    DEVICE_COMMANDS,
    DEVICE_WIDE_CHANNEL,
    HOST_COMMANDS,
    MAX_CHANNELS,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Ack,
    ChannelFlags,
    ChannelState,
    ChannelStatus,
    Command,
    ConfigureChannel,
    DeviceFlags,
    EmergencyStop,
    ErrorCode,
    Fault,
    GetStatus,
    Heartbeat,
    Identify,
    Identity,
    Message,
    Modality,
    ModalityLimit,
    Nak,
    Pause,
    PayloadError,
    PhaseType,
    Polarity,
    Resume,
    SetAmplitude,
    Start,
    Status,
    Stop,
    Telemetry,
    TelemetrySample,
    channel_mask,
    channels_in_mask,
)

__all__ = [
    "CRC_INIT",
    "DEVICE_COMMANDS",
    "DEVICE_WIDE_CHANNEL",
    "ESCAPE_BYTE",
    "ESCAPE_XOR",
    "HOST_COMMANDS",
    "MAX_CHANNELS",
    "MAX_PAYLOAD_BYTES",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "START_BYTE",
    "Ack",
    "ChannelFlags",
    "ChannelState",
    "ChannelStatus",
    "Command",
    "ConfigureChannel",
    "DecoderCounters",
    "DeviceFlags",
    "EmergencyStop",
    "ErrorCode",
    "Fault",
    "Frame",
    "FrameDecoder",
    "GetStatus",
    "Heartbeat",
    "Identify",
    "Identity",
    "Message",
    "Modality",
    "ModalityLimit",
    "Nak",
    "Pause",
    "PayloadError",
    "PhaseType",
    "Polarity",
    "RejectReason",
    "Rejection",
    "Resume",
    "SetAmplitude",
    "Start",
    "Status",
    "Stop",
    "Telemetry",
    "TelemetrySample",
    "channel_mask",
    "channels_in_mask",
    "crc16",
    "encode_frame",
]

START_BYTE = 0x7E
ESCAPE_BYTE = 0x7D
ESCAPE_XOR = 0x20
CRC_INIT = 0xFFFF
MAX_PAYLOAD_BYTES = 200
"""Longest payload; a length byte above this is rejected at once instead of waiting for bytes."""

_HEADER_BYTES = 3  # length, seq, command
_CRC_BYTES = 2
_STUFFED = frozenset({START_BYTE, ESCAPE_BYTE})
_START = bytes((START_BYTE,))
_ESCAPE = bytes((ESCAPE_BYTE,))
_ESCAPED_START = bytes((ESCAPE_BYTE, START_BYTE ^ ESCAPE_XOR))
_ESCAPED_ESCAPE = bytes((ESCAPE_BYTE, ESCAPE_BYTE ^ ESCAPE_XOR))


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR)."""
    return binascii.crc_hqx(data, CRC_INIT)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. Replies carry the sequence number of the command they answer."""

    seq: int
    message: Message

    @property
    def command(self) -> Command:
        return self.message.COMMAND


def encode_frame(frame: Frame) -> bytes:
    """Wire bytes of `frame`, ready to write; raises ValueError for a field that cannot be sent."""
    if not 0 <= frame.seq <= 0xFF:
        raise ValueError(f"sequence number {frame.seq} outside 0..255")
    payload = frame.message.encode_payload()
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    body = bytes((len(payload), frame.seq, frame.command)) + payload
    body += crc16(body).to_bytes(_CRC_BYTES, "little")
    # The escape byte is stuffed first, so the escapes added for start bytes stay as they are.
    return _START + body.replace(_ESCAPE, _ESCAPED_ESCAPE).replace(_START, _ESCAPED_START)


class RejectReason(Enum):
    """Why a frame was discarded; each reason has its own counter in `DecoderCounters`."""

    BAD_CRC = "bad_crc"
    BAD_LENGTH = "bad_length"
    TRUNCATED = "truncated"
    BAD_ESCAPE = "bad_escape"
    UNKNOWN_COMMAND = "unknown_command"
    BAD_PAYLOAD = "bad_payload"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A discarded frame with whatever header bytes were received (unverified if the CRC failed)."""

    reason: RejectReason
    seq: int | None
    command: int | None


@dataclass(slots=True)
class DecoderCounters:
    """Running totals; `malformed` is the sum of the per-reason counters."""

    frames: int = 0
    malformed: int = 0
    bad_crc: int = 0
    bad_length: int = 0
    truncated: int = 0
    bad_escape: int = 0
    unknown_command: int = 0
    bad_payload: int = 0
    discarded_bytes: int = 0


class FrameDecoder:
    """Incremental decoder that never raises on input and always resynchronises on `START_BYTE`.

    `accepted` limits which command codes count as valid (a device decoder accepts host commands
    only); anything else is rejected as UNKNOWN_COMMAND. Bytes between frames are counted in
    `counters.discarded_bytes`. A start byte immediately followed by another is allowed as filler.
    """

    def __init__(self, accepted: Collection[Command] = frozenset(Command)) -> None:
        self.counters = DecoderCounters()
        self._accepted = frozenset(accepted)
        self._body = bytearray()
        self._in_frame = False
        self._escaped = False

    @property
    def in_frame(self) -> bool:
        """True while part of a frame has been received and the rest is awaited."""
        return self._in_frame and bool(self._body or self._escaped)

    def feed(self, data: bytes) -> list[Frame]:
        """Decode what `data` completes; partial frames are kept for the next call."""
        return [event for event in self.feed_events(data) if isinstance(event, Frame)]

    def feed_events(self, data: bytes) -> list[Frame | Rejection]:
        """Like `feed`, but also returns each rejection in stream order (a device NAKs some)."""
        events: list[Frame | Rejection] = []
        for byte in data:
            if byte == START_BYTE:
                if self.in_frame:
                    events.append(self._reject(RejectReason.TRUNCATED))
                self._begin()
                continue
            if not self._in_frame:
                self.counters.discarded_bytes += 1
                continue
            if self._escaped:
                self._escaped = False
                byte ^= ESCAPE_XOR
                if byte not in _STUFFED:
                    events.append(self._reject(RejectReason.BAD_ESCAPE))
                    continue
            elif byte == ESCAPE_BYTE:
                self._escaped = True
                continue
            event = self._append(byte)
            if event is not None:
                events.append(event)
        return events

    def _begin(self) -> None:
        self._body.clear()
        self._in_frame = True
        self._escaped = False

    def _append(self, byte: int) -> Frame | Rejection | None:
        body = self._body
        body.append(byte)
        if len(body) == 1 and byte > MAX_PAYLOAD_BYTES:
            return self._reject(RejectReason.BAD_LENGTH)
        if len(body) < _HEADER_BYTES + body[0] + _CRC_BYTES:
            return None
        return self._complete(bytes(body))

    def _complete(self, body: bytes) -> Frame | Rejection:
        content, received_crc = body[:-_CRC_BYTES], int.from_bytes(body[-_CRC_BYTES:], "little")
        if crc16(content) != received_crc:
            return self._reject(RejectReason.BAD_CRC)
        try:
            command = Command(content[2])
        except ValueError:
            return self._reject(RejectReason.UNKNOWN_COMMAND)
        if command not in self._accepted:
            return self._reject(RejectReason.UNKNOWN_COMMAND)
        try:
            message = MESSAGE_TYPES[command].decode_payload(content[_HEADER_BYTES:])
        except PayloadError:
            return self._reject(RejectReason.BAD_PAYLOAD)
        self._in_frame = False
        self._body.clear()
        self.counters.frames += 1
        return Frame(seq=content[1], message=message)

    def _reject(self, reason: RejectReason) -> Rejection:
        body = self._body
        rejection = Rejection(
            reason=reason,
            seq=body[1] if len(body) > 1 else None,
            command=body[2] if len(body) > 2 else None,
        )
        counters = self.counters
        counters.malformed += 1
        setattr(counters, reason.value, getattr(counters, reason.value) + 1)
        self._in_frame = False
        self._escaped = False
        body.clear()
        return rejection
