"""Plans for the conformance contract, chosen from what a device declares it can do.

The contract cannot know a device's sweet spot, so it searches a short list of ordinary
treatment values for a plan that the limits engine approves against the device's own capabilities
and that the driver can encode exactly; the first one found is the reference plan every check
runs. On hardware the search starts from the gentlest currents. A driver whose device accepts
none of these overrides ``DriverContract.reference_plan`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sessionlog.hal.driver import Driver
from sessionlog.hal.errors import PlanNotEncodableError
from sessionlog.safety.capabilities import DeviceCapabilities, ModalityCapabilities
from sessionlog.safety.limits import LimitsEngine
from sessionlog.safety.plan import Modality, PhaseType, StimulationPlan, Waveform
from sessionlog.safety.verdict import ApprovedPlan

ENGINE = LimitsEngine()

ELECTRODE_AREA_CM2 = 50.0
"""A large electrode keeps every density figure far from its limit, so ranges decide, not area."""

_FREQUENCIES_HZ = (40.0, 50.0, 20.0, 25.0, 10.0, 100.0, 30.0, 35.0, 5.0, 2.0, 1.0, 0.5)
_PULSE_WIDTHS_US = {
    Modality.EMS: (300, 250, 200, 400, 100, 500, 50),
    Modality.MICROCURRENT: (300, 1000, 500, 100, 10_000, 100_000),
}
_AMPLITUDES_UA = {
    # Ordinary treatment currents first; gentle ones (hardware runs, into a test load) below.
    (Modality.EMS, False): (20_000, 10_000, 30_000, 15_000, 5_000, 40_000),
    (Modality.EMS, True): (1_000, 2_000, 3_000, 5_000, 10_000),
    (Modality.MICROCURRENT, False): (200, 100, 300, 500, 50),
    (Modality.MICROCURRENT, True): (10, 20, 50, 100, 200),
}


@dataclass(frozen=True)
class ChannelSetting:
    """One channel's values in a plan the contract builds."""

    channel: int
    amplitude_ua: int
    pulse_width_us: int
    frequency_hz: float


def plan_for(
    modality: Modality,
    channels: Sequence[int],
    amplitude_ua: int,
    pulse_width_us: int,
    frequency_hz: float,
    ranges: ModalityCapabilities | None = None,
) -> StimulationPlan | None:
    """A plan with the same parameters on every channel, in a waveform the device can produce;
    None when the values are not even a valid plan."""
    settings = [ChannelSetting(n, amplitude_ua, pulse_width_us, frequency_hz) for n in channels]
    return plan_of(modality, settings, ranges)


def plan_of(
    modality: Modality,
    settings: Sequence[ChannelSetting],
    ranges: ModalityCapabilities | None = None,
) -> StimulationPlan | None:
    """A plan with each channel's own parameters, in a waveform the device can produce; None
    when the values are not even a valid plan."""
    waveform = Waveform.RECTANGULAR
    phase_type = PhaseType.BIPHASIC_SYMMETRIC
    if ranges is not None and ranges.waveforms and waveform not in ranges.waveforms:
        waveform = sorted(ranges.waveforms)[0]
    if ranges is not None and ranges.phase_types and phase_type not in ranges.phase_types:
        phase_type = sorted(ranges.phase_types)[0]
    data: dict[str, Any] = {
        "modality": modality,
        "duration_s": 600,
        "program_name": "conformance",
        "electrode": {"body_site": "thigh_anterior", "area_cm2": ELECTRODE_AREA_CM2},
        "channels": [
            {
                "channel": setting.channel,
                "amplitude_ua": setting.amplitude_ua,
                "pulse_width_us": setting.pulse_width_us,
                "frequency_hz": setting.frequency_hz,
                "waveform": waveform,
                "phase_type": phase_type,
            }
            for setting in settings
        ],
    }
    try:
        return StimulationPlan.model_validate(data)
    except ValidationError:
        return None


def _at_least_a_step(value: int, step: int) -> int:
    """``value`` rounded down to a multiple of ``step``, but at least one step."""
    return max(step, value // step * step)


def distinct_settings(
    channels: Sequence[int],
    amplitude_ua: int,
    pulse_width_us: int,
    frequency_hz: float,
    ranges: ModalityCapabilities,
    *,
    timing: bool,
    frequencies: bool,
) -> list[ChannelSetting]:
    """Each channel its own amplitude, one device step above an ordinary value (so not a whole
    mA where the step allows) and a quarter of it apart from the next channel's: a channel swap, a
    copy of one channel's values to another, or a rounding to whole mA shows in what is delivered.
    With ``timing`` the pulse widths differ too, and with ``frequencies`` the frequencies (the
    later channels at a whole fraction of the first, which devices with one main interval can
    also produce)."""
    step = ranges.amplitude_step_ua
    spread = _at_least_a_step(amplitude_ua // 4, step)
    width_spread = _at_least_a_step(pulse_width_us // 5, ranges.pulse_width_step_us)
    return [
        ChannelSetting(
            channel=number,
            amplitude_ua=amplitude_ua + step + index * spread,
            pulse_width_us=pulse_width_us + (index * width_spread if timing else 0),
            frequency_hz=frequency_hz / (index + 1) if frequencies else frequency_hz,
        )
        for index, number in enumerate(channels)
    ]


def approve_for(driver: Driver, plan: StimulationPlan) -> ApprovedPlan | None:
    """The plan approved against the driver's capabilities and encodable by it, or None."""
    approved = ENGINE.approve(plan, capabilities=driver.capabilities).approved_plan
    if approved is None:
        return None
    try:
        driver._check_encodable(plan)
    except PlanNotEncodableError:
        return None
    return approved


def preferred_modality(capabilities: DeviceCapabilities) -> Modality:
    """EMS when the device has it (the larger currents make unit mistakes visible)."""
    if Modality.EMS in capabilities.modalities:
        return Modality.EMS
    return sorted(capabilities.modalities)[0]


def reference_channels(capabilities: DeviceCapabilities) -> tuple[int, ...]:
    """Two channels when there are two, so per-channel mix-ups show; one otherwise."""
    return (1, 2) if capabilities.channel_count >= 2 else (1,)


def find_reference_plan(
    driver: Driver, *, gentle: bool, modality: Modality | None = None
) -> StimulationPlan | None:
    """The first ordinary plan this device accepts exactly (see the module docstring), with
    different values on each channel as far as the device accepts them; in ``modality``, or the
    preferred one."""
    capabilities = driver.capabilities
    modality = modality or preferred_modality(capabilities)
    ranges = capabilities.modalities[modality]
    channels = reference_channels(capabilities)
    for frequency_hz in _FREQUENCIES_HZ:
        for pulse_width_us in _PULSE_WIDTHS_US[modality]:
            for amplitude_ua in _AMPLITUDES_UA[(modality, gentle)]:
                for timing, frequencies in ((True, True), (True, False), (False, False)):
                    settings = distinct_settings(
                        channels,
                        amplitude_ua,
                        pulse_width_us,
                        frequency_hz,
                        ranges,
                        timing=timing,
                        frequencies=frequencies,
                    )
                    plan = plan_of(modality, settings, ranges)
                    if plan is not None and approve_for(driver, plan) is not None:
                        return plan
                plan = plan_for(
                    modality, channels, amplitude_ua, pulse_width_us, frequency_hz, ranges
                )
                if plan is not None and approve_for(driver, plan) is not None:
                    return plan
    return None


def other_amplitudes(modality: Modality, gentle: bool) -> Iterable[int]:
    """Candidate amplitudes for a live change."""
    return _AMPLITUDES_UA[(modality, gentle)]
