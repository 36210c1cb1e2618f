"""Per-modality hardware limits of the simulated stimulator, spoken over the raw wire.

The EMS output stage accepts a narrower timing range than the microcurrent stage and caps its rms
current, so a driver bug that sends a microcurrent-style timing at EMS currents meets a device-side
NAK(PARAMETER) instead of being delivered. The device is the last line behind the host's limits
engine, not a copy of it: every plan the host's standard profile approves within the capabilities
the driver reads from IDENTITY must still be accepted, which the last tests check.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sessionlog.hal import open_device
from sessionlog.safety import DeviceCapabilities, LimitsEngine, StimulationPlan
from sessionlog.safety import Modality as PlanModality
from sessionlog_drivers.simulated.config import EmulatorConfig, HardwareLimits, query_to_settings
from sessionlog_drivers.simulated.driver import millihertz
from sessionlog_drivers.simulated.protocol import (
    Ack,
    ChannelState,
    Command,
    ConfigureChannel,
    ErrorCode,
    Identify,
    Identity,
    Modality,
    Nak,
    PhaseType,
    SetAmplitude,
    Start,
)
from tests.drivers.simulated.conftest import HostSide

ENGINE = LimitsEngine()
CONFIGURE_ACK = Ack(Command.CONFIGURE_CHANNEL)
CONFIGURE_NAK = Nak(int(Command.CONFIGURE_CHANNEL), ErrorCode.PARAMETER)
AMPLITUDE_NAK = Nak(int(Command.SET_AMPLITUDE), ErrorCode.PARAMETER)

EMS_RMS_EDGE_UA = 113_137
"""The largest amplitude within 80 mA rms for 2 x 1000 µs at 250 Hz: 80 mA / sqrt(0.5) = 113 137.08 µA."""


def configure(
    modality: Modality,
    amplitude_ua: int,
    pulse_width_us: int,
    frequency_millihz: int,
    phase_type: PhaseType = PhaseType.BIPHASIC_SYMMETRIC,
) -> ConfigureChannel:
    return ConfigureChannel(
        0, modality, amplitude_ua, pulse_width_us, frequency_millihz, phase_type=phase_type
    )


def assert_nothing_delivered(host: HostSide) -> None:
    assert host.emulator.channel_state(0) is ChannelState.UNCONFIGURED
    assert host.reply(Start(1)) == Nak(int(Command.START), ErrorCode.WRONG_STATE)
    assert not host.emulator.output_active
    assert host.emulator.output_amplitude_ua(0) == 0


# --- the review finding: an EMS timing bug meets a device-side refusal ----------------------------


def test_ems_5000_us_pulses_at_120_ma_are_refused_and_nothing_is_delivered(host) -> None:
    assert host.reply(configure(Modality.EMS, 120_000, 5000, 50_000)) == CONFIGURE_NAK
    assert_nothing_delivered(host)


def test_the_same_5000_us_timing_is_accepted_and_delivered_for_microcurrent(host) -> None:
    """5 ms phases are ordinary microcurrent (0.01–1000 ms); only the EMS stage refuses them."""
    assert host.reply(configure(Modality.MICROCURRENT, 500, 5000, 50_000)) == CONFIGURE_ACK
    assert host.reply(Start(1)) == Ack(Command.START)
    assert host.emulator.output_amplitude_ua(0) == 500


@pytest.mark.parametrize(
    ("pulse_width_us", "frequency_millihz"),
    [(5000, 50_000), (1001, 50_000), (300, 1_000_000), (300, 100), (300, 250_001), (300, 499)],
    ids=["5ms", "just-over-1ms", "1kHz", "0.1Hz", "just-over-250Hz", "just-under-0.5Hz"],
)
def test_microcurrent_timings_refused_for_ems_are_accepted_for_microcurrent(
    make_host: Callable[..., HostSide], pulse_width_us: int, frequency_millihz: int
) -> None:
    ems_host, micro_host = make_host(), make_host()
    ems = configure(Modality.EMS, 1000, pulse_width_us, frequency_millihz)
    micro = configure(Modality.MICROCURRENT, 1000, pulse_width_us, frequency_millihz)
    assert ems_host.reply(ems) == CONFIGURE_NAK
    assert_nothing_delivered(ems_host)
    assert micro_host.reply(micro) == CONFIGURE_ACK


# --- every per-modality bound at, just inside and just outside -----------------------------------

# (modality, pulse width µs, frequency mHz, phase type, accepted)
BOUNDS = {
    # EMS pulse width 20–1000 µs
    "ems-pw-min-outside": (Modality.EMS, 19, 50_000, PhaseType.BIPHASIC_SYMMETRIC, False),
    "ems-pw-min-at": (Modality.EMS, 20, 50_000, PhaseType.BIPHASIC_SYMMETRIC, True),
    "ems-pw-min-inside": (Modality.EMS, 21, 50_000, PhaseType.BIPHASIC_SYMMETRIC, True),
    "ems-pw-max-inside": (Modality.EMS, 999, 50_000, PhaseType.BIPHASIC_SYMMETRIC, True),
    "ems-pw-max-at": (Modality.EMS, 1000, 50_000, PhaseType.BIPHASIC_SYMMETRIC, True),
    "ems-pw-max-outside": (Modality.EMS, 1001, 50_000, PhaseType.BIPHASIC_SYMMETRIC, False),
    # EMS frequency 0.5–250 Hz
    "ems-f-min-outside": (Modality.EMS, 300, 499, PhaseType.BIPHASIC_SYMMETRIC, False),
    "ems-f-min-at": (Modality.EMS, 300, 500, PhaseType.BIPHASIC_SYMMETRIC, True),
    "ems-f-min-inside": (Modality.EMS, 300, 501, PhaseType.BIPHASIC_SYMMETRIC, True),
    "ems-f-max-inside": (Modality.EMS, 300, 249_999, PhaseType.BIPHASIC_SYMMETRIC, True),
    "ems-f-max-at": (Modality.EMS, 300, 250_000, PhaseType.BIPHASIC_SYMMETRIC, True),
    "ems-f-max-outside": (Modality.EMS, 300, 250_001, PhaseType.BIPHASIC_SYMMETRIC, False),
    # microcurrent pulse width 20 µs – 1 s
    "micro-pw-min-outside": (
        Modality.MICROCURRENT,
        19,
        50_000,
        PhaseType.BIPHASIC_SYMMETRIC,
        False,
    ),
    "micro-pw-min-at": (Modality.MICROCURRENT, 20, 50_000, PhaseType.BIPHASIC_SYMMETRIC, True),
    "micro-pw-min-inside": (Modality.MICROCURRENT, 21, 50_000, PhaseType.BIPHASIC_SYMMETRIC, True),
    "micro-pw-max-inside": (
        Modality.MICROCURRENT,
        999_999,
        100,
        PhaseType.BIPHASIC_SYMMETRIC,
        True,
    ),
    "micro-pw-max-at": (Modality.MICROCURRENT, 1_000_000, 100, PhaseType.BIPHASIC_SYMMETRIC, True),
    "micro-pw-max-outside": (
        Modality.MICROCURRENT,
        1_000_001,
        100,
        PhaseType.BIPHASIC_SYMMETRIC,
        False,
    ),
    # microcurrent frequency 0.1–1000 Hz
    "micro-f-min-outside": (Modality.MICROCURRENT, 300, 99, PhaseType.BIPHASIC_SYMMETRIC, False),
    "micro-f-min-at": (Modality.MICROCURRENT, 300, 100, PhaseType.BIPHASIC_SYMMETRIC, True),
    "micro-f-min-inside": (Modality.MICROCURRENT, 300, 101, PhaseType.BIPHASIC_SYMMETRIC, True),
    "micro-f-max-inside": (Modality.MICROCURRENT, 20, 999_999, PhaseType.MONOPHASIC, True),
    "micro-f-max-at": (Modality.MICROCURRENT, 20, 1_000_000, PhaseType.MONOPHASIC, True),
    "micro-f-max-outside": (Modality.MICROCURRENT, 20, 1_000_001, PhaseType.MONOPHASIC, False),
}


@pytest.mark.parametrize("case", BOUNDS.values(), ids=BOUNDS.keys())
def test_each_per_modality_timing_bound(
    host: HostSide, case: tuple[Modality, int, int, PhaseType, bool]
) -> None:
    modality, pulse_width_us, frequency_millihz, phase_type, accepted = case
    amplitude_ua = 20_000 if modality is Modality.EMS else 500
    message = configure(modality, amplitude_ua, pulse_width_us, frequency_millihz, phase_type)
    if accepted:
        assert host.reply(message) == CONFIGURE_ACK
        assert host.emulator.channel_state(0) is ChannelState.IDLE
    else:
        assert host.reply(message) == CONFIGURE_NAK
        assert_nothing_delivered(host)


# --- the EMS rms ceiling (80 mA rms) -------------------------------------------------------------


def test_rms_edge_constant_is_the_largest_amplitude_within_80_ma_rms() -> None:
    duty = 2 * 1000 * 250 / 1_000_000
    assert EMS_RMS_EDGE_UA * math.sqrt(duty) <= 80_000 < (EMS_RMS_EDGE_UA + 1) * math.sqrt(duty)


@pytest.mark.parametrize(
    ("amplitude_ua", "accepted"),
    [(EMS_RMS_EDGE_UA - 1, True), (EMS_RMS_EDGE_UA, True), (EMS_RMS_EDGE_UA + 1, False)],
    ids=["inside", "at", "outside"],
)
def test_ems_rms_ceiling_on_configure(host: HostSide, amplitude_ua: int, accepted: bool) -> None:
    """2 x 1000 µs at 250 Hz is a 50 % duty: each bound alone passes, the rms ceiling decides."""
    message = configure(Modality.EMS, amplitude_ua, 1000, 250_000)
    if accepted:
        assert host.reply(message) == CONFIGURE_ACK
    else:
        assert host.reply(message) == CONFIGURE_NAK
        assert_nothing_delivered(host)


def test_ems_rms_counts_one_phase_for_monophasic_pulses(host: HostSide) -> None:
    """120 mA at 1000 µs and 250 Hz: 60 mA rms monophasic, 84.9 mA rms biphasic."""
    assert host.reply(configure(Modality.EMS, 120_000, 1000, 250_000)) == CONFIGURE_NAK
    mono = configure(Modality.EMS, 120_000, 1000, 250_000, PhaseType.MONOPHASIC)
    assert host.reply(mono) == CONFIGURE_ACK


def test_set_amplitude_that_would_break_the_rms_ceiling_is_refused(host: HostSide) -> None:
    assert host.reply(configure(Modality.EMS, 100_000, 1000, 250_000)) == CONFIGURE_ACK
    assert host.reply(Start(1)) == Ack(Command.START)
    assert host.reply(SetAmplitude(0, EMS_RMS_EDGE_UA + 1)) == AMPLITUDE_NAK
    assert host.emulator.output_amplitude_ua(0) == 100_000
    assert host.reply(SetAmplitude(0, EMS_RMS_EDGE_UA)) == Ack(Command.SET_AMPLITUDE)
    assert host.emulator.output_amplitude_ua(0) == EMS_RMS_EDGE_UA


def test_microcurrent_has_no_rms_ceiling_beyond_its_peak(host: HostSide) -> None:
    """A microcurrent duty of 100 % (monophasic, 1 ms at 1 kHz) is fine at its 1000 µA peak."""
    full = configure(Modality.MICROCURRENT, 900, 1000, 1_000_000, PhaseType.MONOPHASIC)
    assert host.reply(full) == CONFIGURE_ACK
    assert host.reply(Start(1)) == Ack(Command.START)
    assert host.reply(SetAmplitude(0, 1000)) == Ack(Command.SET_AMPLITUDE)


def test_ems_rms_ceiling_is_configurable(make_host: Callable[..., HostSide]) -> None:
    host = make_host(limits=HardwareLimits(ems_max_rms_ua=10_000))
    # 40 mA at 2 x 300 µs and 50 Hz is 40 mA x sqrt(0.03) = 6.9 mA rms; 60 mA is 10.4 mA rms.
    assert host.reply(configure(Modality.EMS, 40_000, 300, 50_000)) == CONFIGURE_ACK
    assert host.reply(configure(Modality.EMS, 60_000, 300, 50_000)) == CONFIGURE_NAK


# --- settings ---------------------------------------------------------------------------------------


def test_ems_stage_options_map_to_limits() -> None:
    config, _ = query_to_settings(
        "ems_pulse_width_max_us=500&ems_frequency_min_hz=1&ems_frequency_max_hz=150"
        "&ems_max_rms_ua=50000"
    )
    limits = config.limits
    assert (limits.ems_pulse_width_max_us, limits.ems_max_rms_ua) == (500, 50_000)
    assert (limits.ems_frequency_min_millihz, limits.ems_frequency_max_millihz) == (1000, 150_000)


def test_device_wide_limits_narrow_the_ems_stage_too(make_host: Callable[..., HostSide]) -> None:
    host = make_host(limits=HardwareLimits(pulse_width_max_us=400))
    assert host.reply(configure(Modality.EMS, 20_000, 401, 50_000)) == CONFIGURE_NAK
    identity = host.reply(Identify())
    assert isinstance(identity, Identity)
    assert identity.pulse_width_max_us == 400


@pytest.mark.parametrize(
    "limits",
    [
        HardwareLimits(pulse_width_min_us=2000),
        HardwareLimits(frequency_max_millihz=400),
        HardwareLimits(frequency_min_millihz=300_000),
    ],
    ids=["pw", "f-above", "f-below"],
)
def test_a_supported_modality_left_without_any_timing_is_a_configuration_error(
    limits: HardwareLimits,
) -> None:
    with pytest.raises(ValueError, match="EMS"):
        EmulatorConfig(limits=limits)
    EmulatorConfig(limits=limits, modalities=frozenset({Modality.MICROCURRENT}))


@pytest.mark.parametrize(
    "fields",
    [
        {"ems_pulse_width_max_us": 0},
        {"ems_frequency_min_millihz": 0},
        {"ems_frequency_min_millihz": 2000, "ems_frequency_max_millihz": 1000},
        {"ems_max_rms_ua": 0},
    ],
)
def test_ems_stage_limits_are_validated(fields: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="EMS"):
        HardwareLimits(**fields)


# --- the host's standard profiles stay inside the device's limits ------------------------------


@pytest.fixture(scope="module")
def reported_capabilities() -> Iterator[DeviceCapabilities]:
    """The capabilities the real driver builds from the default device's IDENTITY."""
    with open_device("sim://?channels=1&seed=3", driver="simulated") as device:
        yield device.capabilities


def wire_configure(plan: StimulationPlan) -> ConfigureChannel:
    """The CONFIGURE_CHANNEL the simulated driver sends for channel 1 of `plan`."""
    channel = plan.channel(1)
    return ConfigureChannel(
        0,
        Modality[plan.modality.name],
        channel.amplitude_ua,
        channel.pulse_width_us,
        millihertz(channel.frequency_hz),
        phase_type=PhaseType[channel.phase_type.name],
    )


def make_plan(
    modality: PlanModality,
    amplitude_ua: int,
    pulse_width_us: int,
    frequency_millihz: int,
    phase_type: str = "biphasic_symmetric",
) -> StimulationPlan:
    return StimulationPlan.model_validate(
        {
            "modality": modality,
            "duration_s": 600,
            "electrode": {"body_site": "thigh_anterior", "area_cm2": 100.0},
            "channels": [
                {
                    "channel": 1,
                    "amplitude_ua": amplitude_ua,
                    "pulse_width_us": pulse_width_us,
                    "frequency_hz": frequency_millihz / 1000,
                    "phase_type": phase_type,
                    "polarity": "positive",
                }
            ],
        }
    )


def test_the_device_accepts_the_host_profile_extremes(
    make_host: Callable[..., HostSide], reported_capabilities: DeviceCapabilities
) -> None:
    """The corners of the standard profiles, each approved by the host, are each ACKed."""
    corners = [
        make_plan(PlanModality.EMS, 120_000, 600, 144_000),  # 49.9 mA rms
        make_plan(PlanModality.EMS, 120_000, 600, 150_000, "monophasic"),
        make_plan(PlanModality.EMS, 1000, 20, 1000),
        make_plan(PlanModality.EMS, 1000, 20, 150_000),
        make_plan(PlanModality.EMS, 120_000, 20, 1000, "biphasic_asymmetric"),
        make_plan(PlanModality.MICROCURRENT, 999, 20, 100),
        make_plan(PlanModality.MICROCURRENT, 999, 1_000_000, 100),
        make_plan(PlanModality.MICROCURRENT, 999, 20, 1_000_000, "monophasic"),
        make_plan(PlanModality.MICROCURRENT, 999, 500, 1_000_000),
    ]
    for plan in corners:
        verdict = ENGINE.approve(
            plan,
            capabilities=reported_capabilities,
            acknowledged_warnings={"current_density_high"},
        )
        assert verdict.approved_plan is not None, (plan, verdict.violations)
        assert make_host().reply(wire_configure(plan)) == CONFIGURE_ACK, plan


def test_the_host_refuses_the_review_case_too(reported_capabilities: DeviceCapabilities) -> None:
    """Both layers refuse 120 mA at 5000 µs: the device's refusal is the backstop, not the rule."""
    plan = make_plan(PlanModality.EMS, 120_000, 5000, 50_000)
    assert ENGINE.approve(plan, capabilities=reported_capabilities).approved_plan is None


def below(edge: int) -> st.SearchStrategy[int]:
    """At an upper edge of the host's profile or just inside it."""
    return st.integers(edge - 2, edge)


def above(edge: int) -> st.SearchStrategy[int]:
    """At a lower edge of the host's profile or just inside it."""
    return st.integers(edge, edge + 2)


@st.composite
def host_plans(draw: st.DrawFn) -> tuple[StimulationPlan, list[int]]:
    """Plans around and beyond the standard profiles, often right at one of their edges (the
    widest plan the host approves is the one a too-tight device limit would refuse), with later
    live amplitudes to ask for."""
    modality = draw(st.sampled_from([PlanModality.EMS, PlanModality.MICROCURRENT]))
    phase_type = draw(st.sampled_from(["biphasic_symmetric", "biphasic_asymmetric", "monophasic"]))
    phases = 1 if phase_type == "monophasic" else 2
    if modality is PlanModality.EMS:
        amplitude = st.one_of(st.integers(1000, 125_000), below(120_000))
        if phases == 2 and draw(st.booleans()):
            # The 50 mA rms edge lies below the 120 mA peak only for the longest, fastest pulses.
            pulse_width_us = draw(st.integers(590, 600))
            frequency_millihz = draw(st.integers(147_500, 150_000))
            duty = phases * pulse_width_us * frequency_millihz / 1e9
            amplitude_ua = draw(below(math.floor(50_000 / math.sqrt(duty))))
        else:
            pulse_width_us = draw(st.one_of(st.integers(15, 700), below(600), above(20)))
            frequency_millihz = draw(
                st.one_of(st.integers(500, 160_000), below(150_000), above(1000))
            )
            amplitude_ua = draw(amplitude)
    else:
        amplitude = st.one_of(st.integers(0, 1100), below(999))
        amplitude_ua = draw(amplitude)
        pulse_width_us = draw(
            st.one_of(st.integers(10, 2000), st.integers(2000, 1_100_000), below(1_000_000))
        )
        frequency_millihz = draw(
            st.one_of(
                st.integers(90, 10_000),
                st.integers(10_000, 1_050_000),
                above(100),
                below(1_000_000),
            )
        )
    plan = make_plan(modality, amplitude_ua, pulse_width_us, frequency_millihz, phase_type)
    return plan, draw(st.lists(amplitude, max_size=4))


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(host_plans())
def test_every_plan_the_host_approves_is_accepted_by_the_device(
    make_host: Callable[..., HostSide],
    reported_capabilities: DeviceCapabilities,
    case: tuple[StimulationPlan, list[int]],
) -> None:
    """Standard profile plus the capabilities reported in IDENTITY approve it, so the device must
    accept it and every re-approved live change: the device limits never refuse an approved plan."""
    plan, amplitudes = case
    verdict = ENGINE.approve(
        plan, capabilities=reported_capabilities, acknowledged_warnings={"current_density_high"}
    )
    event("approved" if verdict.approved_plan is not None else "refused by the host")
    approved = verdict.approved_plan
    if approved is None:
        return
    host = make_host()
    assert host.reply(wire_configure(approved.plan)) == CONFIGURE_ACK
    assert host.reply(Start(1)) == Ack(Command.START)
    for amplitude_ua in amplitudes:
        change = ENGINE.approve_change(
            approved,
            channel=1,
            amplitude_ua=amplitude_ua,
            acknowledged_warnings={"current_density_high"},
        )
        if change.approved_plan is not None:
            assert host.reply(SetAmplitude(0, amplitude_ua)) == Ack(Command.SET_AMPLITUDE)
            approved = change.approved_plan
