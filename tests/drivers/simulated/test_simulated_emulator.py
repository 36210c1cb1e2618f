"""The simulated stimulator's firmware on a hand-driven clock: what it answers, what it refuses,
when it stops by itself, what it measures, and each injected fault."""

from __future__ import annotations

import pytest

from sessionlog_drivers.simulated.config import FaultConfig, HardwareLimits
from sessionlog_drivers.simulated.emulator import FaultKind, StimulatorEmulator
from sessionlog_drivers.simulated.protocol import (
    DEVICE_WIDE_CHANNEL,
    Ack,
    ChannelFlags,
    ChannelState,
    Command,
    ConfigureChannel,
    DeviceFlags,
    EmergencyStop,
    ErrorCode,
    Fault,
    Frame,
    GetStatus,
    Heartbeat,
    Identify,
    Identity,
    Modality,
    ModalityLimit,
    Nak,
    Pause,
    PhaseType,
    Resume,
    SetAmplitude,
    Start,
    Status,
    Stop,
    crc16,
    encode_frame,
)


def nak(command: Command, error: ErrorCode) -> Nak:
    return Nak(int(command), error)


def ems(channel: int = 0, amplitude_ua: int = 20_000, **overrides: object) -> ConfigureChannel:
    fields: dict[str, object] = {
        "channel": channel,
        "modality": Modality.EMS,
        "amplitude_ua": amplitude_ua,
        "pulse_width_us": 300,
        "frequency_millihz": 50_000,
    }
    fields.update(overrides)
    return ConfigureChannel(**fields)  # type: ignore[arg-type]


# --- answers --------------------------------------------------------------------------------------


def test_identify_reports_identity_and_hardware_limits(make_host) -> None:
    """An EMS-only device reports the EMS output stage's timing range as its device-wide one."""
    host = make_host(channel_count=4, modalities=frozenset({Modality.EMS}), watchdog_timeout_ms=800)
    identity = host.reply(Identify())
    assert isinstance(identity, Identity)
    assert identity.channel_count == 4
    assert identity.amplitude_limits == (ModalityLimit(Modality.EMS, 120_000),)
    assert (identity.pulse_width_min_us, identity.pulse_width_max_us) == (20, 1000)
    assert (identity.frequency_min_millihz, identity.frequency_max_millihz) == (500, 250_000)
    assert identity.watchdog_timeout_ms == 800
    assert identity.telemetry_interval_ms == 50


def test_identify_of_a_dual_modality_device_reports_the_union_of_its_timing_ranges(host) -> None:
    identity = host.reply(Identify())
    assert isinstance(identity, Identity)
    assert identity.amplitude_limits == (
        ModalityLimit(Modality.EMS, 120_000),
        ModalityLimit(Modality.MICROCURRENT, 1000),
    )
    assert (identity.pulse_width_min_us, identity.pulse_width_max_us) == (20, 1_000_000)
    assert (identity.frequency_min_millihz, identity.frequency_max_millihz) == (100, 1_000_000)


def test_reply_echoes_the_sequence_number_and_command(host) -> None:
    reply = host.send(Heartbeat(), seq=0x7E)
    assert reply == Frame(0x7E, Ack(Command.HEARTBEAT))


def test_configure_and_start_turn_output_on_at_the_configured_amplitude(host) -> None:
    assert not host.emulator.output_active
    host.configure_and_start(channel=1, amplitude_ua=35_000)
    assert host.emulator.output_active
    assert host.emulator.output_amplitude_ua(1) == 35_000
    assert host.emulator.output_amplitude_ua(0) == 0
    status = host.reply(GetStatus())
    assert isinstance(status, Status)
    assert [ch.state for ch in status.channels] == [ChannelState.UNCONFIGURED, ChannelState.RUNNING]
    assert status.channels[1].output_amplitude_ua == 35_000


def test_command_log_records_every_decoded_command_with_time_and_seq(host, clock) -> None:
    host.send(ems(), seq=10)
    host.clock.advance(0.25)
    host.send(SetAmplitude(0, 10_000), seq=11)  # refused (not started) but still logged
    host.send_raw(b"\x7e\x00\x01\x02\x00\x00")  # bad CRC: not a decoded command
    log = host.emulator.command_log
    assert [(e.seq, e.command, e.message) for e in log] == [
        (10, Command.CONFIGURE_CHANNEL, ems()),
        (11, Command.SET_AMPLITUDE, SetAmplitude(0, 10_000)),
    ]
    assert log[1].timestamp_s - log[0].timestamp_s == pytest.approx(0.25)


# --- hardware limits --------------------------------------------------------------------------------


def test_ems_amplitude_above_hardware_limit_is_refused_and_channel_stays_unconfigured(host) -> None:
    assert host.reply(ems(amplitude_ua=120_001)) == nak(
        Command.CONFIGURE_CHANNEL, ErrorCode.PARAMETER
    )
    assert host.emulator.channel_state(0) is ChannelState.UNCONFIGURED
    assert host.reply(ems(amplitude_ua=120_000)) == Ack(Command.CONFIGURE_CHANNEL)


def test_microcurrent_amplitude_over_1000_ua_is_refused(host) -> None:
    configure = ConfigureChannel(0, Modality.MICROCURRENT, 1001, 100_000, 500)
    assert host.reply(configure) == nak(Command.CONFIGURE_CHANNEL, ErrorCode.PARAMETER)


def test_ma_value_sent_as_ua_for_microcurrent_is_refused_by_the_device(host) -> None:
    """20 mA EMS intent mistakenly sent on a microcurrent channel is 20x its ceiling."""
    configure = ConfigureChannel(0, Modality.MICROCURRENT, 20_000, 100_000, 500)
    assert host.reply(configure) == nak(Command.CONFIGURE_CHANNEL, ErrorCode.PARAMETER)


def micro(channel: int = 0, amplitude_ua: int = 500, **overrides: object) -> ConfigureChannel:
    return ems(channel, amplitude_ua, modality=Modality.MICROCURRENT, **overrides)


@pytest.mark.parametrize(
    "configure",
    [
        micro(pulse_width_us=19),
        micro(pulse_width_us=1_000_001, frequency_millihz=100),
        micro(frequency_millihz=99),
        micro(frequency_millihz=1_000_001, pulse_width_us=20, phase_type=PhaseType.MONOPHASIC),
        micro(pulse_width_us=600, frequency_millihz=1_000_000),  # 2 x 600 µs > 1 ms period
        ems(channel=2),  # the device has channels 0 and 1
    ],
    ids=["pw-low", "pw-high", "f-low", "f-high", "pulse-longer-than-period", "no-such-channel"],
)
def test_parameters_outside_the_hardware_are_refused(host, configure: ConfigureChannel) -> None:
    assert host.reply(configure) == nak(Command.CONFIGURE_CHANNEL, ErrorCode.PARAMETER)
    assert host.emulator.channel_state(0) is ChannelState.UNCONFIGURED


def test_monophasic_pulse_fills_the_period_that_biphasic_cannot(host) -> None:
    mono = micro(pulse_width_us=1000, frequency_millihz=1_000_000, phase_type=PhaseType.MONOPHASIC)
    assert host.reply(mono) == Ack(Command.CONFIGURE_CHANNEL)


def test_modality_the_device_lacks_is_refused(make_host) -> None:
    host = make_host(modalities=frozenset({Modality.EMS}))
    configure = ConfigureChannel(0, Modality.MICROCURRENT, 100, 100_000, 500)
    assert host.reply(configure) == nak(Command.CONFIGURE_CHANNEL, ErrorCode.PARAMETER)


def test_device_limits_are_configurable(make_host) -> None:
    host = make_host(limits=HardwareLimits(ems_max_amplitude_ua=50_000))
    assert host.reply(ems(amplitude_ua=50_001)) == nak(
        Command.CONFIGURE_CHANNEL, ErrorCode.PARAMETER
    )


def test_live_amplitude_above_limit_is_refused_and_output_unchanged(host) -> None:
    host.configure_and_start(amplitude_ua=30_000)
    assert host.reply(SetAmplitude(0, 120_001)) == nak(Command.SET_AMPLITUDE, ErrorCode.PARAMETER)
    assert host.emulator.output_amplitude_ua(0) == 30_000
    assert host.reply(SetAmplitude(0, 40_000)) == Ack(Command.SET_AMPLITUDE)
    assert host.emulator.output_amplitude_ua(0) == 40_000


# --- state rules ------------------------------------------------------------------------------------


def test_set_amplitude_before_start_is_wrong_state(host) -> None:
    host.reply(ems())
    assert host.reply(SetAmplitude(0, 10_000)) == nak(Command.SET_AMPLITUDE, ErrorCode.WRONG_STATE)
    assert not host.emulator.output_active


def test_start_of_unconfigured_channel_is_wrong_state(host) -> None:
    assert host.reply(Start(0b01)) == nak(Command.START, ErrorCode.WRONG_STATE)
    assert not host.emulator.output_active


def test_start_is_all_or_nothing(host) -> None:
    host.reply(ems(channel=0))
    assert host.reply(Start(0b11)) == nak(Command.START, ErrorCode.WRONG_STATE)
    assert not host.emulator.output_active


@pytest.mark.parametrize("mask", [0, 0b100, 0x80])
def test_start_mask_naming_no_or_missing_channels_is_a_parameter_error(host, mask: int) -> None:
    host.reply(ems())
    assert host.reply(Start(mask)) == nak(Command.START, ErrorCode.PARAMETER)


def test_running_channel_cannot_be_reconfigured_or_started_again(host) -> None:
    host.configure_and_start()
    assert host.reply(ems(amplitude_ua=1)) == nak(Command.CONFIGURE_CHANNEL, ErrorCode.WRONG_STATE)
    assert host.reply(Start(1)) == nak(Command.START, ErrorCode.WRONG_STATE)
    assert host.emulator.output_amplitude_ua(0) == 20_000


def test_pause_brings_output_to_zero_and_resume_restores_it(host) -> None:
    host.configure_and_start(amplitude_ua=25_000)
    assert host.reply(Pause(1)) == Ack(Command.PAUSE)
    assert host.emulator.channel_state(0) is ChannelState.PAUSED
    assert host.emulator.output_amplitude_ua(0) == 0
    assert host.reply(SetAmplitude(0, 15_000)) == Ack(Command.SET_AMPLITUDE)
    assert host.emulator.output_amplitude_ua(0) == 0
    assert host.reply(Resume(1)) == Ack(Command.RESUME)
    assert host.emulator.output_amplitude_ua(0) == 15_000


def test_pausing_a_paused_channel_is_accepted_and_changes_nothing(host) -> None:
    host.reply(ems())
    host.reply(Start(1))
    assert host.reply(Pause(1)) == Ack(Command.PAUSE)
    assert host.reply(Pause(1)) == Ack(Command.PAUSE)
    assert host.emulator.channel_state(0) is ChannelState.PAUSED


def test_pause_of_idle_and_resume_of_running_are_wrong_state(host) -> None:
    host.reply(ems())
    assert host.reply(Pause(1)) == nak(Command.PAUSE, ErrorCode.WRONG_STATE)
    host.reply(Start(1))
    assert host.reply(Resume(1)) == nak(Command.RESUME, ErrorCode.WRONG_STATE)


def test_stop_ends_output_keeps_configuration_and_is_never_refused(host) -> None:
    assert host.reply(Stop()) == Ack(Command.STOP)  # idle: still acknowledged
    host.configure_and_start(amplitude_ua=20_000)
    host.reply(SetAmplitude(0, 30_000))
    assert host.reply(Stop()) == Ack(Command.STOP)
    assert not host.emulator.output_active
    assert host.emulator.channel_state(0) is ChannelState.IDLE
    assert host.reply(Start(1)) == Ack(Command.START)
    assert host.emulator.output_amplitude_ua(0) == 20_000  # back to the configured amplitude


def test_emergency_stop_ends_output_and_forgets_configuration(host) -> None:
    host.configure_and_start(channel=0)
    host.configure_and_start(channel=1)
    assert host.reply(EmergencyStop()) == Ack(Command.EMERGENCY_STOP)
    assert not host.emulator.output_active
    status = host.reply(GetStatus())
    assert isinstance(status, Status)
    assert DeviceFlags.EMERGENCY_STOPPED in status.flags
    assert {ch.state for ch in status.channels} == {ChannelState.UNCONFIGURED}
    assert host.reply(Start(1)) == nak(Command.START, ErrorCode.WRONG_STATE)
    host.configure_and_start()
    status = host.reply(GetStatus())
    assert isinstance(status, Status)
    assert DeviceFlags.EMERGENCY_STOPPED not in status.flags


def test_emergency_stop_in_the_same_write_as_other_commands_is_executed(host) -> None:
    host.configure_and_start()
    burst = encode_frame(Frame(50, Heartbeat())) + encode_frame(Frame(51, EmergencyStop()))
    frames = host.send_raw(burst)
    assert Frame(51, Ack(Command.EMERGENCY_STOP)) in frames
    assert not host.emulator.output_active


# --- malformed input ------------------------------------------------------------------------------


def test_unknown_command_is_nakked_with_its_seq(host) -> None:
    body = bytes((0, 33, 0x55))
    frames = host.send_raw(b"\x7e" + body + crc16(body).to_bytes(2, "little"))
    assert frames == [Frame(33, Nak(0x55, ErrorCode.UNKNOWN_COMMAND))]


def test_device_to_host_command_sent_by_a_host_is_unknown(host) -> None:
    frames = host.send_raw(encode_frame(Frame(9, Ack(Command.START))))
    assert frames == [Frame(9, Nak(int(Command.ACK), ErrorCode.UNKNOWN_COMMAND))]
    assert host.emulator.command_log == ()


def test_bad_crc_is_nakked_as_transfer_error_and_changes_nothing(host) -> None:
    host.reply(ems())
    raw = bytearray(encode_frame(Frame(12, Start(1))))
    raw[-1] ^= 0x01
    frames = host.send_raw(bytes(raw))
    assert frames == [Frame(12, Nak(int(Command.START), ErrorCode.TRANSFER))]
    assert not host.emulator.output_active
    assert host.emulator.decoder_counters.bad_crc == 1


def test_payload_of_wrong_size_is_a_parameter_error(host) -> None:
    body = bytes((2, 14, Command.START, 1, 1))
    frames = host.send_raw(b"\x7e" + body + crc16(body).to_bytes(2, "little"))
    assert frames == [Frame(14, Nak(int(Command.START), ErrorCode.PARAMETER))]


# --- watchdog ----------------------------------------------------------------------------------------


def test_watchdog_stops_output_when_the_host_falls_silent(host) -> None:
    host.configure_and_start()
    host.advance(0.999)
    assert host.emulator.output_active
    frames = host.advance(0.001)
    assert not host.emulator.output_active
    faults = host.of_kind(frames, Command.FAULT)
    assert faults == [Fault(ErrorCode.WATCHDOG_EXPIRED, DEVICE_WIDE_CHANNEL, 1000)]
    assert [r.kind for r in host.emulator.fault_log] == [FaultKind.WATCHDOG_EXPIRED]
    status = host.reply(GetStatus())
    assert isinstance(status, Status)
    assert DeviceFlags.WATCHDOG_EXPIRED in status.flags
    assert host.emulator.channel_state(0) is ChannelState.IDLE


def test_heartbeats_keep_output_running_past_many_watchdog_periods(host) -> None:
    host.configure_and_start()
    for _ in range(10):
        host.advance(0.9)
        assert host.reply(Heartbeat()) == Ack(Command.HEARTBEAT)
    assert host.emulator.output_active
    assert host.emulator.fault_log == ()


def test_heartbeat_arriving_after_the_deadline_does_not_revive_output(host) -> None:
    host.configure_and_start()
    host.clock.advance(1.5)  # nobody ticked the emulator meanwhile
    frames = host.send_raw(encode_frame(Frame(99, Heartbeat())))
    assert [f.command for f in frames if f.command is not Command.TELEMETRY] == [
        Command.FAULT,
        Command.ACK,
    ]
    assert not host.emulator.output_active


def test_malformed_frames_do_not_feed_the_watchdog(host) -> None:
    host.configure_and_start()
    broken = bytearray(encode_frame(Frame(1, Heartbeat())))
    broken[-1] ^= 0xFF
    for _ in range(5):
        host.advance(0.3)
        host.send_raw(bytes(broken))
    assert not host.emulator.output_active


def test_watchdog_does_not_fire_while_nothing_runs(host) -> None:
    host.reply(ems())
    frames = host.advance(10.0)
    assert frames == []
    assert host.emulator.fault_log == ()


def test_watchdog_timeout_is_configurable(make_host) -> None:
    host = make_host(watchdog_timeout_ms=200)
    host.configure_and_start()
    host.advance(0.2)
    assert not host.emulator.output_active


# --- telemetry ---------------------------------------------------------------------------------------


def test_telemetry_streams_at_20_hz_for_running_channels(host) -> None:
    host.configure_and_start(channel=1, amplitude_ua=40_000)
    frames: list[Frame] = []
    for _ in range(10):
        frames += host.advance(0.05)
        host.send(Heartbeat())
    telemetry = host.of_kind(frames, Command.TELEMETRY)
    assert len(telemetry) == 10
    assert [t.device_time_ms for t in telemetry] == list(range(50, 501, 50))
    for message in telemetry:
        (sample,) = message.samples
        assert sample.channel == 1
        assert 40_000 * 0.97 <= sample.measured_current_ua <= 40_000 * 1.03
        assert 500 <= sample.impedance_ohm <= 1500
    assert len({t.samples[0].measured_current_ua for t in telemetry}) > 1  # it is measured, noisy


def test_a_clock_jump_yields_every_telemetry_frame_that_fell_due(host) -> None:
    host.configure_and_start()
    frames = host.advance(0.5)
    assert len(host.of_kind(frames, Command.TELEMETRY)) == 10


def test_no_telemetry_while_idle_and_zero_current_while_paused(host) -> None:
    assert host.advance(1.0) == []
    host.configure_and_start(amplitude_ua=10_000)
    host.reply(Pause(1))
    telemetry = host.of_kind(host.advance(0.1), Command.TELEMETRY)
    assert telemetry
    assert {t.samples[0].measured_current_ua for t in telemetry} == {0}


def test_telemetry_rate_is_configurable(make_host) -> None:
    host = make_host(telemetry_rate_hz=100.0)
    host.configure_and_start()
    assert len(host.of_kind(host.advance(0.1), Command.TELEMETRY)) == 10


def test_same_seed_gives_identical_device_output(clock) -> None:
    outputs = []
    for _ in range(2):
        emulator = StimulatorEmulator(clock=clock, faults=FaultConfig(corrupt_rate=0.3))
        emulator.receive(encode_frame(Frame(1, ems())) + encode_frame(Frame(2, Start(1))))
        clock.advance(0.5)
        outputs.append(emulator.read_output())
        clock.advance(5.0)  # let the watchdog of this instance expire before the next
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) > 100


# --- injected faults ----------------------------------------------------------------------------------


def test_corrupt_rate_one_corrupts_every_reply(make_host) -> None:
    host = make_host(faults=FaultConfig(corrupt_rate=1.0))
    for _ in range(20):
        host.send(Heartbeat())
    assert host.received == []
    assert host.decoder.counters.malformed + host.decoder.counters.discarded_bytes > 0
    assert host.emulator.injection_counters.frames_corrupted == 20


def test_corrupt_rate_corrupts_about_that_share_of_replies(make_host) -> None:
    host = make_host(faults=FaultConfig(corrupt_rate=0.25), seed=3)
    for _ in range(200):
        host.send(Heartbeat())
    corrupted = host.emulator.injection_counters.frames_corrupted
    assert 25 <= corrupted <= 75
    assert len(host.received) == 200 - corrupted


def test_dropped_reply_still_executes_the_command(make_host) -> None:
    host = make_host(faults=FaultConfig(drop_rate=1.0))
    assert host.send(ems()) is None
    assert host.send(Start(1)) is None
    assert host.emulator.output_active
    assert host.emulator.injection_counters.frames_dropped == 2


def test_latency_delays_replies_without_delaying_their_effect(make_host) -> None:
    host = make_host(faults=FaultConfig(latency_ms=30))
    assert host.send(ems()) is None
    assert host.emulator.channel_state(0) is ChannelState.IDLE
    assert host.advance(0.029) == []
    assert host.advance(0.001) == [Frame(1, Ack(Command.CONFIGURE_CHANNEL))]


def test_nak_next_refuses_that_many_commands_without_executing_them(make_host) -> None:
    host = make_host(faults=FaultConfig(nak_next=2, nak_code=ErrorCode.BUSY))
    assert host.reply(ems()) == nak(Command.CONFIGURE_CHANNEL, ErrorCode.BUSY)
    assert host.reply(ems()) == nak(Command.CONFIGURE_CHANNEL, ErrorCode.BUSY)
    assert host.emulator.channel_state(0) is ChannelState.UNCONFIGURED
    assert host.reply(ems()) == Ack(Command.CONFIGURE_CHANNEL)


def test_injected_nak_never_prevents_a_stop(host) -> None:
    host.configure_and_start()
    host.emulator.faults.nak_rate = 1.0
    host.emulator.faults.nak_code = ErrorCode.BUSY
    assert host.reply(Stop()) == nak(Command.STOP, ErrorCode.BUSY)
    assert not host.emulator.output_active
    assert host.reply(Start(1)) == nak(Command.START, ErrorCode.BUSY)
    assert not host.emulator.output_active


def test_electrode_off_pauses_the_channel_and_reports_high_impedance(host) -> None:
    host.configure_and_start(channel=0)
    host.configure_and_start(channel=1)
    host.emulator.set_electrode_off(1)
    frames = host.collect() + host.advance(0.1)
    assert host.of_kind(frames, Command.FAULT) == [Fault(ErrorCode.ELECTRODE_OFF, 1, 0)]
    assert host.emulator.channel_state(1) is ChannelState.PAUSED
    assert host.emulator.output_amplitude_ua(1) == 0
    assert host.emulator.output_amplitude_ua(0) == 20_000  # the other channel goes on
    for telemetry in host.of_kind(frames, Command.TELEMETRY):
        by_channel = {s.channel: s for s in telemetry.samples}
        assert by_channel[1].impedance_ohm > 10_000
        assert by_channel[1].measured_current_ua == 0
        assert by_channel[0].impedance_ohm <= 1500
    status = host.reply(GetStatus())
    assert isinstance(status, Status)
    assert DeviceFlags.ELECTRODE_OFF in status.flags
    assert status.channels[1].flags == ChannelFlags.ELECTRODE_OFF
    assert host.reply(Resume(0b10)) == nak(Command.RESUME, ErrorCode.ELECTRODE_OFF)
    host.emulator.set_electrode_off(1, off=False)
    assert host.reply(Resume(0b10)) == Ack(Command.RESUME)
    assert host.emulator.output_amplitude_ua(1) == 20_000


def test_electrode_off_from_construction_refuses_start(make_host) -> None:
    host = make_host(faults=FaultConfig(electrode_off=frozenset({0})))
    host.reply(ems())
    assert host.reply(Start(1)) == nak(Command.START, ErrorCode.ELECTRODE_OFF)


def test_electrode_off_switched_through_the_fault_config_applies_at_the_next_step(host) -> None:
    host.configure_and_start()
    host.emulator.faults.electrode_off = frozenset({0})
    host.advance(0.001)
    assert host.emulator.channel_state(0) is ChannelState.PAUSED


def test_electrode_off_on_a_missing_channel_is_refused(make_host) -> None:
    with pytest.raises(ValueError, match="electrode_off"):
        make_host(faults=FaultConfig(electrode_off=frozenset({5})))


def test_device_error_stops_output_and_refuses_output_until_cleared(host) -> None:
    host.configure_and_start()
    host.emulator.set_device_error()
    frames = host.collect()
    assert host.of_kind(frames, Command.FAULT) == [
        Fault(ErrorCode.HARDWARE_FAULT, DEVICE_WIDE_CHANNEL, 0)
    ]
    assert not host.emulator.output_active
    assert host.reply(Start(1)) == nak(Command.START, ErrorCode.HARDWARE_FAULT)
    assert host.reply(Heartbeat()) == Ack(Command.HEARTBEAT)  # still talks
    host.emulator.set_device_error(False)
    assert host.reply(Start(1)) == Ack(Command.START)


def test_device_error_at_power_on_is_reported_once(make_host) -> None:
    host = make_host(faults=FaultConfig(device_error=True))
    frames = host.collect() + host.advance(1.0)
    assert host.of_kind(frames, Command.FAULT) == [
        Fault(ErrorCode.HARDWARE_FAULT, DEVICE_WIDE_CHANNEL, 0)
    ]


def test_unplug_after_stops_output_and_all_communication(make_host) -> None:
    host = make_host(faults=FaultConfig(unplug_after_s=2.0))
    host.configure_and_start()
    host.advance(0.9)
    host.send(Heartbeat())
    host.advance(0.9)
    host.send(Heartbeat())
    assert host.emulator.output_active
    logged = len(host.emulator.command_log)
    host.advance(0.2)
    assert host.emulator.unplugged
    assert not host.emulator.output_active
    assert host.send(Heartbeat()) is None
    assert len(host.emulator.command_log) == logged
    assert host.advance(1.0) == []
    assert host.emulator.fault_log[-1].kind is FaultKind.UNPLUGGED
