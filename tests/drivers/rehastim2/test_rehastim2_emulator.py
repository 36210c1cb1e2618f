"""The emulated RehaStim 2 against the ScienceMode2 spec (v1.24), on a hand-driven clock: the Init
handshake (§4.1, §2.3), acknowledgements (§3.5), the 1200 ms watchdog (§2.3, §5.2), the stimulation
modes of Figure 4, the result codes of §5.1 and the stimulation errors of §1.3.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import serial

from sessionlog_drivers.rehastim2 import protocol as wire
from sessionlog_drivers.rehastim2.config import FaultConfig, query_to_settings
from sessionlog_drivers.rehastim2.emulator import DeviceEvent
from sessionlog_drivers.rehastim2.protocol import (
    AckResult,
    ChannelPulse,
    PulseGroup,
    StimulationErrorCode,
    StimulationMode,
)
from tests.drivers.rehastim2.conftest import PcSide

OK = AckResult.OK


def inits(packets: list[wire.Packet]) -> list[wire.Init]:
    return [p.message for p in packets if isinstance(p.message, wire.Init)]


def stimulation_errors(packets: list[wire.Packet]) -> list[StimulationErrorCode]:
    return [p.message.error for p in packets if isinstance(p.message, wire.StimulationError)]


# ------------------------------------------------------------------------------ connection


def test_init_is_sent_at_power_on_and_every_500_ms_until_init_ack(
    make_pc: Callable[..., PcSide],
) -> None:
    pc = make_pc(protocol_version=1)
    assert inits(pc.collect()) == [wire.Init(1)]
    assert inits(pc.advance(0.499)) == []
    assert inits(pc.advance(0.001)) == [wire.Init(1)]
    assert len(inits(pc.advance(1.0))) == 2
    numbers = [p.packet_number for p in pc.received]
    assert numbers == [0, 1, 2, 3], "Init carries the device's own increasing packet counter"
    pc.send(wire.InitAck(OK), numbers[-1])
    assert pc.emulator.connected
    assert inits(pc.advance(1.1)) == [], "connected: no more Init (until the watchdog expires)"


def test_commands_before_init_ack_are_not_answered(make_pc: Callable[..., PcSide]) -> None:
    pc = make_pc()
    pc.collect()
    assert pc.send(wire.GetStimulationMode()) == []
    assert [entry.command for entry in pc.emulator.command_log] == [
        wire.Command.GET_STIMULATION_MODE
    ]
    assert not pc.emulator.connected


def test_init_ack_incompatible_version_leaves_the_device_waiting(
    make_pc: Callable[..., PcSide],
) -> None:
    pc = make_pc(protocol_version=7)
    assert inits(pc.collect()) == [wire.Init(7)]
    pc.send(wire.InitAck(AckResult.INCOMPATIBLE_VERSION), 0)
    assert not pc.emulator.connected
    assert pc.emulator.rejected_init_acks == 1
    assert inits(pc.advance(0.5)) == [wire.Init(7)]


def test_every_command_is_acknowledged_with_its_packet_number(pc: PcSide) -> None:
    answers = pc.send(wire.GetStimulationMode(), number=0x81)
    assert answers == [wire.Packet(0x81, wire.GetStimulationModeAck(OK, StimulationMode.START))]


def test_answers_come_within_the_100_ms_max_response_time(make_pc: Callable[..., PcSide]) -> None:
    pc = make_pc(FaultConfig(latency_ms=60))
    pc.advance(0.06)
    pc.connect()
    assert pc.send(wire.GetStimulationMode()) == []
    assert pc.advance(0.059) == []
    (answer,) = pc.advance(0.001)
    assert isinstance(answer.message, wire.GetStimulationModeAck)


def test_watchdog_is_a_valid_packet_and_is_not_answered(pc: PcSide) -> None:
    for _ in range(5):
        pc.advance(1.1)
        assert pc.send(wire.Watchdog()) == []
    assert pc.emulator.connected


# ------------------------------------------------------------------------------ watchdog


def test_watchdog_of_1200_ms_stops_output_and_drops_the_connection(pc: PcSide) -> None:
    pc.start_channel_list(channels=(1, 5), current_ma=40)
    assert pc.emulator.output_current_ma(5) == 40
    pc.advance(1.199)
    assert pc.emulator.output_active
    sent = pc.advance(0.001)
    assert not pc.emulator.output_active
    assert pc.emulator.output_current_ma(5) == 0
    assert pc.emulator.stimulation_mode is StimulationMode.START
    assert not pc.emulator.connected
    assert inits(sent) == [wire.Init(1)], "the device starts sending Init again at once"
    assert [e.event for e in pc.emulator.event_log] == [DeviceEvent.WATCHDOG_EXPIRED]
    # A late command does not revive it: it is ignored until the next InitAck.
    assert pc.send(wire.GetStimulationMode()) == []


def test_a_packet_with_a_transfer_error_does_not_feed_the_watchdog(pc: PcSide) -> None:
    pc.start_channel_list()
    pc.advance(1.0)
    data = bytearray(wire.encode_packet(wire.Packet(9, wire.GetStimulationMode())))
    data[2] ^= 0x01
    (answer,) = pc.send_raw(bytes(data))
    assert answer == wire.Packet(9, wire.GetStimulationModeAck(AckResult.TRANSFER_ERROR))
    pc.advance(0.2)
    assert not pc.emulator.output_active


def test_commands_keep_the_connection_alive(pc: PcSide) -> None:
    pc.start_channel_list()
    for _ in range(10):
        pc.advance(1.0)
        pc.reply(wire.GetStimulationMode())
    assert pc.emulator.output_active


# ------------------------------------------------------------------------------ modes


def test_channel_list_modes_follow_figure_4(pc: PcSide) -> None:
    emulator = pc.emulator
    assert emulator.stimulation_mode == StimulationMode.START
    init = wire.InitChannelListMode(frozenset({2, 7}), 78, 13)
    assert pc.reply(init) == wire.InitChannelListModeAck(OK)
    assert emulator.stimulation_mode is StimulationMode.INITIALISED
    assert not emulator.output_active
    pulses = (ChannelPulse(PulseGroup.SINGLE, 250, 12), ChannelPulse(PulseGroup.SINGLE, 400, 25))
    assert pc.reply(wire.StartChannelListMode(pulses)) == wire.StartChannelListModeAck(OK)
    assert emulator.stimulation_mode is StimulationMode.STARTED
    assert (emulator.output_current_ma(2), emulator.output_current_ma(7)) == (12, 25)
    assert emulator.output_pulse(7) == ChannelPulse(PulseGroup.SINGLE, 400, 25)
    update = (ChannelPulse(PulseGroup.SINGLE, 250, 14), pulses[1])
    assert pc.reply(wire.StartChannelListMode(update)) == wire.StartChannelListModeAck(OK)
    assert emulator.output_current_ma(2) == 14
    assert pc.reply(wire.GetStimulationMode()) == wire.GetStimulationModeAck(
        OK, StimulationMode.STARTED
    )
    assert pc.reply(wire.StopChannelListMode()) == wire.StopChannelListModeAck(OK)
    assert emulator.stimulation_mode is StimulationMode.START
    assert not emulator.output_active
    assert emulator.output_current_ma(2) == 0


@pytest.mark.parametrize(
    ("setup", "command"),
    [
        ("start", wire.StartChannelListMode((ChannelPulse(PulseGroup.SINGLE, 300, 10),))),
        ("started", wire.InitChannelListMode(frozenset({1}), 38, 13)),
        ("initialised", wire.InitChannelListMode(frozenset({1}), 38, 13)),
        ("started", wire.SinglePulse(1, 300, 10)),
        ("initialised", wire.SinglePulse(1, 300, 10)),
    ],
    ids=[
        "start before init",
        "init while started",
        "init while initialised",
        "single pulse while started",
        "single pulse while initialised",
    ],
)
def test_commands_in_the_wrong_mode_get_minus_3(
    pc: PcSide, setup: str, command: wire.Message
) -> None:
    if setup != "start":
        pc.reply(wire.InitChannelListMode(frozenset({1}), 38, 13))
    if setup == "started":
        pc.reply(wire.StartChannelListMode((ChannelPulse(PulseGroup.SINGLE, 300, 10),)))
    mode = pc.emulator.stimulation_mode
    answer = pc.reply(command)
    assert answer.result is AckResult.WRONG_MODE  # type: ignore[union-attr]
    assert pc.emulator.stimulation_mode is mode


def test_stop_is_acknowledged_in_every_mode(pc: PcSide) -> None:
    assert pc.reply(wire.StopChannelListMode()) == wire.StopChannelListModeAck(OK)


@pytest.mark.parametrize(
    ("init", "pulses"),
    [
        (wire.InitChannelListMode(frozenset({1}), 13, 13), None),
        (wire.InitChannelListMode(frozenset({1}), 38, 12), None),
        (
            wire.InitChannelListMode(frozenset({1, 2}), 38, 13),
            (ChannelPulse(PulseGroup.SINGLE, 300, 10),),
        ),
        (
            wire.InitChannelListMode(frozenset({1}), 38, 13),
            (ChannelPulse(PulseGroup.SINGLE, 300, 10),) * 2,
        ),
        (
            wire.InitChannelListMode(frozenset({1}), 14, 13),
            (ChannelPulse(PulseGroup.DOUBLET, 300, 10),),
        ),
    ],
    ids=[
        "main interval 7.5 ms",
        "inter-pulse interval 7.5 ms",
        "too few channels",
        "too many channels",
        "doublet longer than the main interval",
    ],
)
def test_bad_parameters_get_minus_2_and_change_nothing(
    pc: PcSide, init: wire.InitChannelListMode, pulses: tuple[ChannelPulse, ...] | None
) -> None:
    if pulses is None:
        assert pc.reply(init) == wire.InitChannelListModeAck(AckResult.PARAMETER_ERROR)
        assert pc.emulator.stimulation_mode is StimulationMode.START
        return
    assert pc.reply(init) == wire.InitChannelListModeAck(OK)
    answer = pc.reply(wire.StartChannelListMode(pulses))
    assert answer == wire.StartChannelListModeAck(AckResult.PARAMETER_ERROR)
    assert not pc.emulator.output_active


@pytest.mark.parametrize(
    "data",
    [bytes([0, 0x01, 0xF5, 10]), bytes([0, 0x01, 0x2C, 131]), bytes([0, 0x01, 0x2C])],
    ids=["pulse width 501", "current 131 mA", "three bytes"],
)
def test_out_of_range_values_on_the_wire_get_minus_2(pc: PcSide, data: bytes) -> None:
    pc.reply(wire.InitChannelListMode(frozenset({1}), 38, 13))
    body = wire.stuff(bytes((0x33, wire.Command.START_CHANNEL_LIST_MODE)) + data)
    raw = bytes((0xF0, 0x81, wire.crc8(body) ^ 0x55, 0x81, len(body) ^ 0x55)) + body + b"\x0f"
    (answer,) = pc.send_raw(raw)
    assert answer == wire.Packet(0x33, wire.StartChannelListModeAck(AckResult.PARAMETER_ERROR))
    assert not pc.emulator.output_active


def test_an_unknown_command_is_echoed_in_unknown_command(pc: PcSide) -> None:
    body = bytes((0x44, 12))  # GetMotomedMode: not emulated
    raw = bytes((0xF0, 0x81, wire.crc8(body) ^ 0x55, 0x81, len(body) ^ 0x55)) + body + b"\x0f"
    assert pc.send_raw(raw) == [wire.Packet(0x44, wire.UnknownCommand(12))]


def test_pulse_width_below_20_us_is_raised_to_20_as_the_firmware_does(pc: PcSide) -> None:
    pc.reply(wire.InitChannelListMode(frozenset({3}), 38, 13))
    pc.reply(wire.StartChannelListMode((ChannelPulse(PulseGroup.SINGLE, 5, 10),)))
    assert pc.emulator.output_pulse(3) == ChannelPulse(PulseGroup.SINGLE, 20, 10)


def test_single_pulse_in_start_mode(pc: PcSide) -> None:
    assert pc.reply(wire.SinglePulse(8, 200, 30)) == wire.SinglePulseAck(OK)
    assert pc.emulator.single_pulses == (wire.SinglePulse(8, 200, 30),)
    assert not pc.emulator.output_active


def test_one_shot_mode_runs_one_pass_per_start(pc: PcSide) -> None:
    pc.reply(wire.InitChannelListMode(frozenset({1}), 0, 13))
    for _ in range(3):
        pc.reply(wire.StartChannelListMode((ChannelPulse(PulseGroup.TRIPLET, 300, 10),)))
    assert pc.emulator.one_shot_passes == 3
    assert not pc.emulator.output_active


def test_busy_is_answered_with_minus_8_but_never_to_a_stop(make_pc: Callable[..., PcSide]) -> None:
    pc = make_pc(FaultConfig(busy_next=1))
    pc.connect()
    assert pc.reply(wire.StopChannelListMode()) == wire.StopChannelListModeAck(OK)
    assert pc.reply(wire.GetStimulationMode()) == wire.GetStimulationModeAck(AckResult.BUSY)
    assert pc.reply(wire.GetStimulationMode()) == wire.GetStimulationModeAck(
        OK, StimulationMode.START
    )


# ------------------------------------------------------------------------------ stimulation errors


@pytest.mark.parametrize(
    ("switch", "error"),
    [
        ({"emergency_switch": True}, StimulationErrorCode.EMERGENCY_SWITCH),
        ({"electrode_error": frozenset({5})}, StimulationErrorCode.ELECTRODE_ERROR),
        ({"module_error": True}, StimulationErrorCode.MODULE_ERROR),
    ],
    ids=["emergency switch", "electrode error", "module error"],
)
def test_a_stimulation_error_stops_output_resets_the_mode_and_is_reported(
    pc: PcSide, switch: dict[str, object], error: StimulationErrorCode
) -> None:
    pc.start_channel_list(channels=(1, 5))
    for name, value in switch.items():
        setattr(pc.emulator.faults, name, value)
    sent = pc.advance(0.002)
    assert stimulation_errors(sent) == [error]
    assert not pc.emulator.output_active
    assert pc.emulator.stimulation_mode is StimulationMode.START
    assert pc.emulator.connected, "a stimulation error does not drop the connection"


def test_an_electrode_error_on_an_unused_channel_does_not_stop_output(pc: PcSide) -> None:
    pc.emulator.faults.electrode_error = frozenset({8})
    pc.start_channel_list(channels=(1,))
    assert stimulation_errors(pc.advance(0.01)) == []
    assert pc.emulator.output_active


def test_starting_with_the_emergency_switch_pressed_fails_at_once(
    make_pc: Callable[..., PcSide],
) -> None:
    pc = make_pc(FaultConfig(emergency_switch=True))
    pc.connect()
    pc.reply(wire.InitChannelListMode(frozenset({1}), 38, 13))
    sent = pc.send(wire.StartChannelListMode((ChannelPulse(PulseGroup.SINGLE, 300, 10),)))
    assert [type(p.message) for p in sent] == [
        wire.StartChannelListModeAck,
        wire.StimulationError,
    ]
    assert not pc.emulator.output_active


def test_unplug_stops_output_and_silences_the_device(make_pc: Callable[..., PcSide]) -> None:
    pc = make_pc(FaultConfig(unplug_after_s=2.0))
    pc.connect()
    pc.start_channel_list()
    pc.advance(1.0)
    pc.send(wire.Watchdog())
    pc.advance(1.0)
    assert pc.emulator.unplugged
    assert not pc.emulator.output_active
    assert pc.send(wire.GetStimulationMode()) == []


def test_dropped_and_corrupted_answers_are_counted(make_pc: Callable[..., PcSide]) -> None:
    pc = make_pc(FaultConfig(drop_rate=1.0))
    pc.advance(1.0)
    assert pc.received == []
    assert pc.emulator.injection_counters.packets_dropped == 3
    pc = make_pc(FaultConfig(corrupt_rate=1.0))
    pc.advance(1.0)
    assert pc.received == []
    assert pc.decoder.counters.malformed >= 1
    assert pc.emulator.injection_counters.packets_corrupted == 3


# ------------------------------------------------------------------------------ URL options


def test_url_options_configure_the_emulator() -> None:
    config, faults = query_to_settings("version=2&watchdog_ms=900&electrode_error=1,3&busy_next=2")
    assert (config.protocol_version, config.watchdog_timeout_ms) == (2, 900)
    assert (faults.electrode_error, faults.busy_next) == (frozenset({1, 3}), 2)


@pytest.mark.parametrize(
    "query", ["latnecy_ms=5", "electrode_error=9", "corrupt_rate=2", "emergency_switch=maybe"]
)
def test_a_bad_url_option_refuses_to_open_the_port(query: str) -> None:
    with pytest.raises(serial.SerialException, match="invalid rehastim2:// URL"):
        serial.serial_for_url(f"rehastim2://?{query}")
