"""The ScienceMode2 codec against the spec (v1.24): golden packets computed by hand from §2.2 and
§4, round trips, and a decoder that survives any input and counts what it drops.

Each golden packet lists its derivation: the raw packet number, command and data; the stuffed body
(0xF0, 0x0F, 0x81 → 0x81, byte ^ 0x55); the CRC-8 (poly 0x07, init 0) and length of the stuffed
body; and the checksum and length sent stuffed (0x81, value ^ 0x55).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionlog_drivers.rehastim2 import protocol as wire
from sessionlog_drivers.rehastim2.protocol import (
    AckResult,
    ChannelPulse,
    Packet,
    PacketDecoder,
    PulseGroup,
    RejectReason,
    StimulationErrorCode,
    StimulationMode,
    decode_message,
    encode_packet,
)

GOLDEN: list[tuple[str, Packet, str]] = [
    # §4.1 Watchdog: body 00 04; CRC 0x1C (0x1C ^ 0x55 = 0x49); length 2 (0x57).
    ("watchdog", Packet(0, wire.Watchdog()), "F0 81 49 81 57 00 04 0F"),
    # §4.1 Init, version 1, device packet 0: body 00 01 01; CRC 0x12; length 3.
    ("init", Packet(0, wire.Init(1)), "F0 81 47 81 56 00 01 01 0F"),
    # §4.1 InitAck 0 echoing packet 5: body 05 02 00; CRC 0xEA.
    ("init ack ok", Packet(5, wire.InitAck(AckResult.OK)), "F0 81 BF 81 56 05 02 00 0F"),
    # §4.1 InitAck −5 (signed byte 0xFB): body 00 02 FB; CRC 0xC5.
    (
        "init ack incompatible",
        Packet(0, wire.InitAck(AckResult.INCOMPATIBLE_VERSION)),
        "F0 81 90 81 56 00 02 FB 0F",
    ),
    # §4.1 UnknownCommand echoing command 99 (0x63) of packet 7: CRC 0x07.
    ("unknown command", Packet(7, wire.UnknownCommand(99)), "F0 81 52 81 56 07 03 63 0F"),
    # §4.2 GetStimulationMode: body 01 0A; CRC 0x23.
    ("get mode", Packet(1, wire.GetStimulationMode()), "F0 81 76 81 57 01 0A 0F"),
    # §4.2 GetStimulationModeAck 0, mode 2 (started): body 01 0B 00 02; CRC 0xF4; length 4.
    (
        "get mode ack",
        Packet(1, wire.GetStimulationModeAck(AckResult.OK, StimulationMode.STARTED)),
        "F0 81 A1 81 51 01 0B 00 02 0F",
    ),
    # §4.2 with result ≠ 0 the mode byte is absent: −8 busy = 0xF8; CRC 0x1A.
    (
        "get mode ack busy",
        Packet(1, wire.GetStimulationModeAck(AckResult.BUSY)),
        "F0 81 4F 81 56 01 0B F8 0F",
    ),
    # §4.3 InitChannelListMode: factor 0, channels 1+2 (0x03), no low-frequency channels,
    # inter-pulse 8 ms → (8 − 1.5) / 0.5 = 13 (0x0D), main 20 ms (50 Hz) → (20 − 1) / 0.5 = 38
    # = MSB 0x00, LSB 0x26, fixed interval 0. Body 02 1E 00 03 00 0D 00 26 00; CRC 0x62; length 9.
    (
        "init channel list",
        Packet(2, wire.InitChannelListMode(frozenset({1, 2}), 38, 13)),
        "F0 81 37 81 5C 02 1E 00 03 00 0D 00 26 00 0F",
    ),
    # Low-frequency factor 1, channels 1+3 (0x05), channel 3 low (0x04), main 1000 ms → 1998 =
    # MSB 0x07, LSB 0xCE. CRC 0x39.
    (
        "init channel list low frequency",
        Packet(
            2,
            wire.InitChannelListMode(
                frozenset({1, 3}), 1998, 13, frozenset({3}), low_frequency_factor=1
            ),
        ),
        "F0 81 6C 81 5C 02 1E 01 05 04 0D 07 CE 00 0F",
    ),
    # §4.3 StartChannelListMode, 4 bytes per channel: ch1 single 300 µs (01 2C) 30 mA (1E);
    # ch2 single 240 µs (00 F0) 15 mA (0F) — F0 and 0F are stuffed to 81 A5 and 81 5A.
    # Stuffed body has 12 bytes (0x59); CRC 0xB5 over the stuffed bytes.
    (
        "start channel list with stuffing",
        Packet(
            3,
            wire.StartChannelListMode(
                (
                    ChannelPulse(PulseGroup.SINGLE, 300, 30),
                    ChannelPulse(PulseGroup.SINGLE, 240, 15),
                )
            ),
        ),
        "F0 81 E0 81 59 03 20 00 01 2C 1E 00 00 81 A5 81 5A 0F",
    ),
    # §4.3 StopChannelListMode with packet number 0x0F: stuffed body 81 5A 22 (length 3);
    # its CRC happens to be 0x00 (sent 0x55).
    (
        "stop, stuffed number",
        Packet(0x0F, wire.StopChannelListMode()),
        "F0 81 55 81 56 81 5A 22 0F",
    ),
    # §4.3 SinglePulse on channel 8 (wire 7), 20 µs (00 14), 10 mA (0A): CRC 0x18.
    ("single pulse", Packet(4, wire.SinglePulse(8, 20, 10)), "F0 81 4D 81 53 04 24 07 00 14 0A 0F"),
    # §4.3 acks: StartChannelListModeAck −3 (FD), InitChannelListModeAck −2 (FE),
    # StopChannelListModeAck 0 on packet 255, SinglePulseAck −8 (F8).
    (
        "start ack wrong mode",
        Packet(3, wire.StartChannelListModeAck(AckResult.WRONG_MODE)),
        "F0 81 AE 81 56 03 21 FD 0F",
    ),
    (
        "init ack parameter error",
        Packet(2, wire.InitChannelListModeAck(AckResult.PARAMETER_ERROR)),
        "F0 81 E3 81 56 02 1F FE 0F",
    ),
    (
        "stop ack",
        Packet(255, wire.StopChannelListModeAck(AckResult.OK)),
        "F0 81 EF 81 56 FF 23 00 0F",
    ),
    (
        "single pulse ack busy",
        Packet(4, wire.SinglePulseAck(AckResult.BUSY)),
        "F0 81 F7 81 56 04 25 F8 0F",
    ),
    # §4.3 StimulationError −2 (electrode error, FE), command 38 (0x26): CRC 0x24.
    (
        "stimulation error",
        Packet(0, wire.StimulationError(StimulationErrorCode.ELECTRODE_ERROR)),
        "F0 81 71 81 56 00 26 FE 0F",
    ),
    # §2.2 the checksum is always stuffed, so its sent value can itself be a constant: Watchdog
    # with packet 196 (C4) has CRC 0xA5, sent as 81 F0; with packet 220 (DC) CRC 0x5A → 81 0F;
    # with packet 134 (86) CRC 0xD4 → 81 81.
    ("checksum sent as F0", Packet(196, wire.Watchdog()), "F0 81 F0 81 57 C4 04 0F"),
    ("checksum sent as 0F", Packet(220, wire.Watchdog()), "F0 81 0F 81 57 DC 04 0F"),
    ("checksum sent as 81", Packet(134, wire.Watchdog()), "F0 81 81 81 57 86 04 0F"),
]


@pytest.mark.parametrize(
    ("packet", "wire_hex"), [g[1:] for g in GOLDEN], ids=[g[0] for g in GOLDEN]
)
def test_golden_packet_encodes_and_decodes_exactly(packet: Packet, wire_hex: str) -> None:
    data = bytes.fromhex(wire_hex)
    assert encode_packet(packet) == data
    decoder = PacketDecoder()
    assert decoder.feed(data) == [packet]
    assert decoder.counters.malformed == 0
    assert decoder.pending_bytes == 0


def test_crc8_is_the_ccitt_polynomial_0x07_with_init_zero() -> None:
    # The catalogued check value of CRC-8 (poly 0x07, init 0, no reflection) for "123456789".
    assert wire.crc8(b"123456789") == 0xF4
    assert wire.crc8(b"") == 0


def test_golden_packets_split_byte_by_byte_decode_the_same() -> None:
    stream = b"".join(bytes.fromhex(g[2]) for g in GOLDEN)
    decoder = PacketDecoder()
    decoded = [packet for byte in stream for packet in decoder.feed(bytes((byte,)))]
    assert decoded == [g[1] for g in GOLDEN]
    assert decoder.counters.malformed == 0


@pytest.mark.parametrize(
    ("frequency_hz", "coded"),
    [(50, 38), (40, 48), (25, 78), (20, 98), (10, 198), (1, 1998), (125, 14)],
)
def test_frequencies_on_the_half_millisecond_grid_code_exactly(
    frequency_hz: float, coded: int
) -> None:
    assert wire.main_interval_coded_for_frequency(frequency_hz) == coded


@pytest.mark.parametrize("frequency_hz", [35, 30, 45, 15, 33.3])
def test_frequencies_off_the_grid_are_refused_not_rounded(frequency_hz: float) -> None:
    with pytest.raises(ValueError, match="grid"):
        wire.main_interval_coded_for_frequency(frequency_hz)


def test_interval_codings_follow_section_4_3() -> None:
    assert wire.inter_pulse_interval_coded(1.5) == 0
    assert wire.inter_pulse_interval_coded(129) == 255
    assert wire.main_interval_coded(1) == 0
    assert wire.main_interval_coded(1025) == 2048
    with pytest.raises(ValueError, match="outside"):
        wire.main_interval_coded(1025.5)
    with pytest.raises(ValueError, match="outside"):
        wire.inter_pulse_interval_coded(1.0)
    listed = wire.InitChannelListMode(frozenset({1}), 38, 13)
    assert (listed.main_stimulation_interval_ms, listed.inter_pulse_interval_ms) == (20.0, 8.0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ChannelPulse(PulseGroup.SINGLE, 501, 10),
        lambda: ChannelPulse(PulseGroup.SINGLE, 300, 131),
        lambda: wire.SinglePulse(0, 300, 10),
        lambda: wire.SinglePulse(9, 300, 10),
        lambda: wire.InitChannelListMode(frozenset({9}), 38, 13),
        lambda: wire.InitChannelListMode(frozenset({1}), 2049, 13),
        lambda: wire.InitChannelListMode(frozenset({1}), 38, 13, low_frequency_factor=8),
        lambda: wire.InitAck(AckResult.BUSY),
        lambda: wire.GetStimulationModeAck(AckResult.OK),
        lambda: Packet(256, wire.Watchdog()),
    ],
    ids=[
        "pulse width 501",
        "current 131",
        "channel 0",
        "channel 9",
        "mask channel 9",
        "main interval 2049",
        "low frequency factor 8",
        "init ack busy",
        "mode ack without mode",
        "packet number 256",
    ],
)
def test_values_the_wire_cannot_carry_raise_instead_of_truncating(build: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("command", "data"),
    [
        (wire.Command.START_CHANNEL_LIST_MODE, b"\x00\x01\x2c"),
        (wire.Command.START_CHANNEL_LIST_MODE, bytes([0, 1, 0xF5, 10])),
        (wire.Command.START_CHANNEL_LIST_MODE, bytes([3, 1, 0, 10])),
        (wire.Command.INIT_CHANNEL_LIST_MODE, bytes(6)),
        (wire.Command.STOP_CHANNEL_LIST_MODE, b"\x00"),
        (wire.Command.GET_STIMULATION_MODE_ACK, b"\x00"),
        (wire.Command.GET_STIMULATION_MODE_ACK, b"\x00\x03"),
        (wire.Command.STIMULATION_ERROR, b"\xfc"),
        (wire.Command.INIT_CHANNEL_LIST_MODE_ACK, b"\x05"),
    ],
    ids=[
        "3 bytes of a channel",
        "pulse width 501",
        "pulse group 3",
        "short init",
        "stop with data",
        "ok mode ack without mode",
        "mode 3",
        "stimulation error -4",
        "result +5",
    ],
)
def test_data_not_as_documented_is_a_payload_error(command: wire.Command, data: bytes) -> None:
    with pytest.raises(wire.PayloadError):
        decode_message(command, data)


# --------------------------------------------------------------------------- property tests

_results = st.sampled_from(list(AckResult))
_pulses = st.builds(
    ChannelPulse,
    st.sampled_from(list(PulseGroup)),
    st.integers(0, wire.MAX_PULSE_WIDTH_US),
    st.integers(0, wire.MAX_CURRENT_MA),
)
_channel_sets = st.frozensets(st.integers(1, wire.CHANNEL_COUNT))
_messages = st.one_of(
    st.builds(wire.Init, st.integers(0, 255)),
    st.builds(wire.InitAck, st.sampled_from([AckResult.OK, AckResult.INCOMPATIBLE_VERSION])),
    st.builds(wire.UnknownCommand, st.integers(0, 255)),
    st.just(wire.Watchdog()),
    st.just(wire.GetStimulationMode()),
    st.builds(wire.GetStimulationModeAck, st.just(AckResult.OK), st.sampled_from(StimulationMode)),
    st.builds(wire.GetStimulationModeAck, _results.filter(lambda r: r is not AckResult.OK)),
    st.builds(
        wire.InitChannelListMode,
        _channel_sets,
        st.integers(0, wire.MAX_MAIN_STIMULATION_INTERVAL_CODED),
        st.integers(0, wire.MAX_INTER_PULSE_INTERVAL_CODED),
        _channel_sets,
        st.integers(0, wire.MAX_LOW_FREQUENCY_FACTOR),
        st.sampled_from(wire.ChannelExecution),
    ),
    st.builds(wire.InitChannelListModeAck, _results),
    st.builds(wire.StartChannelListMode, st.lists(_pulses, max_size=8).map(tuple)),
    st.builds(wire.StartChannelListModeAck, _results),
    st.just(wire.StopChannelListMode()),
    st.builds(wire.StopChannelListModeAck, _results),
    st.builds(
        wire.SinglePulse,
        st.integers(1, 8),
        st.integers(0, wire.MAX_PULSE_WIDTH_US),
        st.integers(0, wire.MAX_CURRENT_MA),
    ),
    st.builds(wire.SinglePulseAck, _results),
    st.builds(wire.StimulationError, st.sampled_from(StimulationErrorCode)),
)
_packets = st.builds(Packet, st.integers(0, 255), _messages)


@given(st.lists(_packets, min_size=1, max_size=8))
def test_any_packets_round_trip(packets: list[Packet]) -> None:
    stream = b"".join(encode_packet(p) for p in packets)
    decoder = PacketDecoder()
    assert decoder.feed(stream) == packets
    assert decoder.counters.malformed == 0


@given(_packets)
def test_encoded_packets_frame_unambiguously(packet: Packet) -> None:
    data = encode_packet(packet)
    body = data[5:-1]
    assert data[0] == wire.START_BYTE
    assert data[-1] == wire.STOP_BYTE
    assert not {wire.START_BYTE, wire.STOP_BYTE} & set(body)
    assert data[1] == data[3] == wire.STUFFING_BYTE
    assert data[2] ^ wire.STUFFING_KEY == wire.crc8(body)
    assert data[4] ^ wire.STUFFING_KEY == len(body)


@given(st.binary(max_size=400))
def test_garbage_never_raises_and_every_byte_is_accounted_for(garbage: bytes) -> None:
    decoder = PacketDecoder()
    events = decoder.feed_events(garbage)
    rejected = [e for e in events if isinstance(e, wire.Rejection)]
    counted = sum(getattr(decoder.counters, reason.value) for reason in RejectReason)
    assert counted == len(rejected)
    assert decoder.counters.malformed == sum(
        1 for e in rejected if e.reason is not RejectReason.UNKNOWN_COMMAND
    )
    assert decoder.pending_bytes <= len(garbage)


@given(st.binary(max_size=60), _packets, st.binary(max_size=60), _packets)
def test_a_packet_after_garbage_still_decodes(
    garbage: bytes, first: Packet, more_garbage: bytes, second: Packet
) -> None:
    decoder = PacketDecoder()
    decoder.feed(garbage)
    # Whatever the garbage left half-open, a full packet followed by a second start byte is
    # recovered: the decoder backtracks from the start byte of anything that fails.
    decoded = decoder.feed(encode_packet(first) + more_garbage + encode_packet(second))
    assert second in decoded
    if wire.START_BYTE not in garbage:
        assert decoded[0] == first


@given(_packets, st.integers(min_value=1))
def test_a_truncated_packet_is_counted_and_the_next_one_decodes(
    packet: Packet, cut_seed: int
) -> None:
    data = encode_packet(packet)
    cut = 1 + cut_seed % (len(data) - 1)
    decoder = PacketDecoder()
    assert decoder.feed(data[:cut]) == []
    assert decoder.feed(encode_packet(Packet(9, wire.Watchdog()))) == [Packet(9, wire.Watchdog())]
    assert decoder.counters.malformed >= 1


@given(_packets, st.data())
def test_a_corrupted_byte_is_never_taken_for_the_packet_sent(
    packet: Packet, data: st.DataObject
) -> None:
    sent = bytearray(encode_packet(packet))
    index = data.draw(st.integers(1, len(sent) - 2))
    sent[index] ^= data.draw(st.integers(1, 255))
    decoder = PacketDecoder()
    sentinel = Packet(9, wire.Watchdog())
    decoded = decoder.feed(bytes(sent) + encode_packet(sentinel))
    assert decoded[-1] == sentinel
    assert packet not in decoded[:-1]
    assert decoder.counters.malformed >= 1


def test_transfer_errors_keep_the_packet_number_and_command_for_the_error_ack() -> None:
    data = bytearray(encode_packet(Packet(42, wire.GetStimulationMode())))
    data[2] ^= 0x01  # checksum
    decoder = PacketDecoder(accepted=wire.HOST_COMMANDS)
    (event,) = decoder.feed_events(bytes(data))
    assert event == wire.Rejection(RejectReason.BAD_CHECKSUM, 42, wire.Command.GET_STIMULATION_MODE)
    assert event.reason.transfer_error
    data = bytearray(encode_packet(Packet(43, wire.GetStimulationMode())))
    data[4] ^= 0x01  # length
    (event,) = decoder.feed_events(bytes(data))
    assert isinstance(event, wire.Rejection)
    assert event.reason is RejectReason.BAD_LENGTH
    assert event.packet_number == 43
    assert decoder.counters.malformed == 2


def test_a_second_start_byte_is_a_packet_frame_error_and_resynchronises() -> None:
    good = encode_packet(Packet(1, wire.GetStimulationMode()))
    decoder = PacketDecoder()
    assert decoder.feed(good[:6] + good) == [Packet(1, wire.GetStimulationMode())]
    assert decoder.counters.truncated == 1
    assert decoder.counters.malformed == 1


def test_an_intact_packet_with_an_unknown_command_is_not_malformed() -> None:
    body = wire.stuff(bytes((5, 60, 1, 2, 3, 4, 5, 6)))  # ActualValues (Motomed), not emulated
    data = bytes((0xF0, 0x81, wire.crc8(body) ^ 0x55, 0x81, len(body) ^ 0x55)) + body + b"\x0f"
    decoder = PacketDecoder()
    (event,) = decoder.feed_events(data)
    assert event == wire.Rejection(RejectReason.UNKNOWN_COMMAND, 5, 60)
    assert decoder.counters.malformed == 0
    assert decoder.counters.unknown_command == 1


def test_an_overlong_packet_is_dropped_without_waiting_for_a_stop_byte() -> None:
    decoder = PacketDecoder()
    decoder.feed(bytes((0xF0, 0x81, 0x00, 0x81, 0x57)) + bytes(200))
    assert decoder.counters.truncated == 1
    assert decoder.pending_bytes == 0
