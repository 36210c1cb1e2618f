"""The wire codec of the simulated stimulator: round trips, golden bytes from the protocol document,
and a decoder that survives any input and resynchronises on the next start byte."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionlog_drivers.simulated.protocol import (
    DEVICE_COMMANDS,
    HOST_COMMANDS,
    MAX_PAYLOAD_BYTES,
    MESSAGE_TYPES,
    START_BYTE,
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
    Frame,
    FrameDecoder,
    GetStatus,
    Heartbeat,
    Identify,
    Identity,
    Modality,
    ModalityLimit,
    Nak,
    Pause,
    PayloadError,
    PhaseType,
    Polarity,
    Rejection,
    RejectReason,
    Resume,
    SetAmplitude,
    Start,
    Status,
    Stop,
    Telemetry,
    TelemetrySample,
    channel_mask,
    channels_in_mask,
    crc16,
    encode_frame,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=32)
channel = st.integers(0, 7)

messages = st.one_of(
    st.just(Identify()),
    st.just(Heartbeat()),
    st.just(GetStatus()),
    st.just(Stop()),
    st.just(EmergencyStop()),
    st.builds(
        ConfigureChannel,
        channel=u8,
        modality=st.sampled_from(Modality),
        amplitude_ua=u32,
        pulse_width_us=u32,
        frequency_millihz=u32,
        phase_type=st.sampled_from(PhaseType),
        polarity=st.sampled_from(Polarity),
    ),
    st.builds(Start, channel_mask=u8),
    st.builds(Pause, channel_mask=u8),
    st.builds(Resume, channel_mask=u8),
    st.builds(SetAmplitude, channel=u8, amplitude_ua=u32),
    st.builds(
        Identity,
        protocol_version=u8,
        model=text,
        firmware_version=text,
        serial_number=text,
        channel_count=u8,
        amplitude_limits=st.lists(
            st.builds(ModalityLimit, modality=st.sampled_from(Modality), max_amplitude_ua=u32),
            max_size=2,
        ).map(tuple),
        pulse_width_min_us=u32,
        pulse_width_max_us=u32,
        frequency_min_millihz=u32,
        frequency_max_millihz=u32,
        watchdog_timeout_ms=u32,
        telemetry_interval_ms=u16,
    ),
    st.builds(Ack, command=st.sampled_from(Command)),
    st.builds(Nak, command=u8, error=st.sampled_from(ErrorCode)),
    st.builds(
        Status,
        device_time_ms=u32,
        flags=u16.map(DeviceFlags),
        channels=st.lists(
            st.builds(
                ChannelStatus,
                state=st.sampled_from(ChannelState),
                flags=u8.map(ChannelFlags),
                output_amplitude_ua=u32,
            ),
            max_size=8,
        ).map(tuple),
    ),
    st.builds(
        Telemetry,
        device_time_ms=u32,
        samples=st.lists(
            st.builds(TelemetrySample, channel=channel, measured_current_ua=u32, impedance_ohm=u32),
            max_size=8,
        ).map(tuple),
    ),
    st.builds(Fault, error=st.sampled_from(ErrorCode), channel=u8, device_time_ms=u32),
)
frames = st.builds(Frame, seq=u8, message=messages)


def reference_crc16_ccitt_false(data: bytes) -> int:
    """Bit-by-bit CRC-16/CCITT-FALSE, independent of binascii, to check the codec against."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_every_command_code_has_a_payload_type() -> None:
    assert set(MESSAGE_TYPES) == set(Command)
    assert set(Command) == HOST_COMMANDS | DEVICE_COMMANDS
    assert not HOST_COMMANDS & DEVICE_COMMANDS


def test_crc_is_ccitt_false_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1 == reference_crc16_ccitt_false(b"123456789")


@given(st.binary(max_size=300))
def test_crc_matches_bitwise_reference(data: bytes) -> None:
    assert crc16(data) == reference_crc16_ccitt_false(data)


@given(frames)
@settings(max_examples=400)
def test_every_frame_round_trips(frame: Frame) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(frame)) == [frame]
    assert decoder.counters.malformed == 0


@given(frames)
def test_start_byte_appears_only_at_the_start_of_an_encoded_frame(frame: Frame) -> None:
    encoded = encode_frame(frame)
    assert encoded[0] == START_BYTE
    assert START_BYTE not in encoded[1:]


@given(st.lists(frames, max_size=6), st.data())
def test_frames_split_at_arbitrary_points_decode_in_order(
    frame_list: list[Frame], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(f) for f in frame_list)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoded += decoder.feed(stream[start:end])
    assert decoded == frame_list


@given(garbage=st.binary(max_size=400), frame=frames)
@settings(max_examples=300)
def test_garbage_never_raises_and_the_next_frame_is_still_decoded(
    garbage: bytes, frame: Frame
) -> None:
    decoder = FrameDecoder()
    decoder.feed(garbage)
    assert decoder.feed(encode_frame(frame)) == [frame]
    counters = decoder.counters
    per_reason = (
        counters.bad_crc
        + counters.bad_length
        + counters.truncated
        + counters.bad_escape
        + counters.unknown_command
        + counters.bad_payload
    )
    assert counters.malformed == per_reason


@given(frame=frames, data=st.data())
@settings(max_examples=300)
def test_a_flipped_bit_is_detected_and_the_following_frame_survives(
    frame: Frame, data: st.DataObject
) -> None:
    encoded = bytearray(encode_frame(frame))
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] ^= 1 << data.draw(st.integers(0, 7))
    follower = Frame(0x42, Heartbeat())
    decoder = FrameDecoder()
    decoded = decoder.feed(bytes(encoded) + encode_frame(follower))
    assert decoded == [follower]
    assert decoder.counters.malformed >= 1 or decoder.counters.discarded_bytes > 0


@given(frame=frames, data=st.data())
def test_a_truncated_frame_is_counted_once_the_next_frame_starts(
    frame: Frame, data: st.DataObject
) -> None:
    encoded = encode_frame(frame)
    cut = data.draw(st.integers(2, len(encoded) - 1))
    decoder = FrameDecoder()
    assert decoder.feed(encoded[:cut]) == []
    assert decoder.in_frame
    assert decoder.feed(encode_frame(frame)) == [frame]
    assert decoder.counters.truncated == 1
    assert decoder.counters.malformed == 1


# Golden frames, written out by hand from docs/protocols/simulated.md ("Worked examples").
GOLDEN = [
    (Frame(1, Heartbeat()), "7e 00 01 02 ef df"),
    (
        Frame(0x7E, SetAmplitude(channel=1, amplitude_ua=20_000)),
        "7e 05 7d 5e 12 01 20 4e 00 00 1e c5",
    ),
    (Frame(0x7E, Nak(command=0x12, error=ErrorCode.PARAMETER)), "7e 02 7d 5e 83 12 03 d8 82"),
    (
        Frame(
            5,
            ConfigureChannel(
                channel=0,
                modality=Modality.MICROCURRENT,
                amplitude_ua=500,
                pulse_width_us=100_000,
                frequency_millihz=500,
                phase_type=PhaseType.MONOPHASIC,
                polarity=Polarity.NEGATIVE_FIRST,
            ),
        ),
        "7e 10 05 10 00 02 02 01 f4 01 00 00 a0 86 01 00 f4 01 00 00 46 33",
    ),
]


@pytest.mark.parametrize(("frame", "wire"), GOLDEN)
def test_golden_frame_bytes(frame: Frame, wire: str) -> None:
    raw = bytes.fromhex(wire)
    assert encode_frame(frame) == raw
    assert FrameDecoder().feed(raw) == [frame]


@pytest.mark.parametrize(("frame", "wire"), GOLDEN)
def test_golden_crc_agrees_with_bitwise_reference(frame: Frame, wire: str) -> None:
    unstuffed = bytes.fromhex(wire)[1:].replace(b"\x7d\x5e", b"\x7e").replace(b"\x7d\x5d", b"\x7d")
    body, crc = unstuffed[:-2], int.from_bytes(unstuffed[-2:], "little")
    assert body[0] == len(frame.message.encode_payload())
    assert crc == reference_crc16_ccitt_false(body)


def _raw_frame(seq: int, command: int, payload: bytes) -> bytes:
    """A frame built without the codec's checks, for feeding the decoder bad content."""
    body = bytes((len(payload), seq, command)) + payload
    body += crc16(body).to_bytes(2, "little")
    stuffed = body.replace(b"\x7d", b"\x7d\x5d").replace(b"\x7e", b"\x7d\x5e")
    return b"\x7e" + stuffed


def test_unknown_command_code_is_counted_and_resync_follows() -> None:
    decoder = FrameDecoder()
    events = decoder.feed_events(_raw_frame(9, 0x55, b"") + encode_frame(Frame(10, Heartbeat())))
    assert [e.reason if isinstance(e, Rejection) else e for e in events] == [
        RejectReason.UNKNOWN_COMMAND,
        Frame(10, Heartbeat()),
    ]
    assert decoder.counters.unknown_command == 1
    assert decoder.counters.frames == 1


def test_device_decoder_rejects_host_commands_as_unknown() -> None:
    decoder = FrameDecoder(accepted=DEVICE_COMMANDS)
    assert decoder.feed(encode_frame(Frame(3, Start(1)))) == []
    assert decoder.counters.unknown_command == 1


def test_payload_of_wrong_size_is_counted_as_bad_payload() -> None:
    decoder = FrameDecoder()
    events = decoder.feed_events(_raw_frame(4, Command.START, b"\x01\x02"))
    assert decoder.counters.bad_payload == 1
    assert len(events) == 1
    rejection = events[0]
    assert not isinstance(rejection, Frame)
    assert (rejection.seq, rejection.command) == (4, Command.START)


def test_invalid_enum_value_is_bad_payload() -> None:
    payload = bytes((0, 9, 0, 0)) + bytes(12)  # modality 9 does not exist
    decoder = FrameDecoder()
    assert decoder.feed(_raw_frame(1, Command.CONFIGURE_CHANNEL, payload)) == []
    assert decoder.counters.bad_payload == 1


def test_oversized_length_is_rejected_without_waiting_for_the_body() -> None:
    decoder = FrameDecoder()
    decoder.feed(bytes((START_BYTE, MAX_PAYLOAD_BYTES + 1)))
    assert decoder.counters.bad_length == 1
    assert not decoder.in_frame


def test_bad_crc_is_counted_and_reports_the_received_header() -> None:
    frame = bytearray(encode_frame(Frame(7, Start(1))))
    frame[-1] ^= 0xFF
    decoder = FrameDecoder()
    events = decoder.feed_events(bytes(frame))
    assert decoder.counters.bad_crc == 1
    assert [(e.seq, e.command) for e in events if not isinstance(e, Frame)] == [(7, Command.START)]


def test_invalid_escape_sequence_is_rejected() -> None:
    decoder = FrameDecoder()
    decoder.feed(bytes((START_BYTE, 0x7D, 0x00)))
    assert decoder.counters.bad_escape == 1


def test_repeated_start_bytes_are_filler_not_errors() -> None:
    decoder = FrameDecoder()
    frame = Frame(1, Heartbeat())
    assert decoder.feed(bytes((START_BYTE, START_BYTE)) + encode_frame(frame)) == [frame]
    assert decoder.counters.malformed == 0


def test_bytes_between_frames_are_counted_as_discarded() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x01\x02" + encode_frame(Frame(1, Heartbeat())))
    assert decoder.counters.discarded_bytes == 3


@pytest.mark.parametrize(
    "frame",
    [
        Frame(256, Heartbeat()),
        Frame(-1, Heartbeat()),
        Frame(1, SetAmplitude(channel=0, amplitude_ua=2**32)),
        Frame(1, SetAmplitude(channel=0, amplitude_ua=-1)),
        Frame(1, Fault(ErrorCode.BUSY, channel=256, device_time_ms=0)),
    ],
)
def test_fields_that_do_not_fit_the_wire_are_refused_at_encode(frame: Frame) -> None:
    with pytest.raises(ValueError, match=r"range|outside"):
        encode_frame(frame)


def test_identity_text_longer_than_32_bytes_is_refused() -> None:
    identity = Identity(1, "M" * 33, "1", "S", 1, (), 20, 500, 1000, 150_000, 1000, 50)
    with pytest.raises(ValueError, match="longer than 32"):
        identity.encode_payload()


def test_identity_with_non_ascii_text_does_not_decode() -> None:
    good = Identity(1, "MODEL", "1", "S", 1, (), 20, 500, 1000, 150_000, 1000, 50)
    payload = bytearray(good.encode_payload())
    payload[2] = 0xC3  # first byte of "MODEL"
    with pytest.raises(PayloadError, match="ASCII"):
        Identity.decode_payload(bytes(payload))


def test_identity_answers_limits_per_modality() -> None:
    identity = Identity(
        1,
        "M",
        "1",
        "S",
        2,
        (ModalityLimit(Modality.EMS, 120_000),),
        20,
        500,
        1000,
        150_000,
        1000,
        50,
    )
    assert identity.modalities == {Modality.EMS}
    assert identity.max_amplitude_ua(Modality.EMS) == 120_000
    with pytest.raises(KeyError):
        identity.max_amplitude_ua(Modality.MICROCURRENT)


def test_channel_masks_map_channel_n_to_bit_n() -> None:
    assert channel_mask([0, 3]) == 0b1001
    assert channels_in_mask(0b1001) == (0, 3)
    with pytest.raises(ValueError, match="outside"):
        channel_mask([8])


def test_frequency_is_carried_in_millihertz() -> None:
    configure = ConfigureChannel(0, Modality.MICROCURRENT, 100, 1000, 300)
    assert configure.frequency_hz == pytest.approx(0.3)
