"""The device layer: a plan against what the connected stimulator declares it can deliver.

A value the hardware cannot produce exactly (off its amplitude step, outside its ranges, on a
channel it does not have, in a modality it does not support) is refused here, so no driver or
firmware ever has to round or clamp it. Device-specific density limits from a manufacturer's
instructions are hard limits.
"""

from __future__ import annotations

from sessionlog.safety.capabilities import DeviceCapabilities, ModalityCapabilities
from sessionlog.safety.dose import PlanDose
from sessionlog.safety.findings import (
    AmplitudeChecks,
    Findings,
    checked_channels,
    format_current,
    modality_name,
    unit_formatter,
)
from sessionlog.safety.plan import ChannelPlan, StimulationPlan
from sessionlog.safety.verdict import Layer, ViolationCode

_US = unit_formatter("µs")
_HZ = unit_formatter("Hz")
_MA_CM2 = unit_formatter("mA/cm²")
_W_CM2 = unit_formatter("W/cm²")


def _check_amplitude_range(
    found: Findings, ranges: ModalityCapabilities, channel: ChannelPlan, path: str
) -> None:
    number = channel.channel
    amplitude_ua = channel.amplitude_ua
    subject = f"Channel {number} amplitude"
    field = f"{path}.amplitude_ua"
    below = found.check_min(
        ViolationCode.AMPLITUDE_BELOW_MIN,
        field,
        subject,
        amplitude_ua,
        ranges.amplitude_min_ua,
        format_current,
    )
    above = found.check_max(
        ViolationCode.AMPLITUDE_ABOVE_MAX,
        field,
        subject,
        amplitude_ua,
        ranges.amplitude_max_ua,
        format_current,
    )
    if not (below or above) and amplitude_ua % ranges.amplitude_step_ua:
        found.violation(
            ViolationCode.AMPLITUDE_NOT_ON_STEP,
            field,
            amplitude_ua,
            ranges.amplitude_step_ua,
            f"{subject} {format_current(amplitude_ua)} is not a multiple of the {found.label} "
            f"step of {format_current(ranges.amplitude_step_ua)}; "
            "the value is refused, not rounded.",
        )


def _check_channel_ranges(
    found: Findings, ranges: ModalityCapabilities, channel: ChannelPlan, path: str
) -> None:
    """The ranges of everything but the amplitude: pulse width, waveform and phase type."""
    number = channel.channel
    field = f"{path}.pulse_width_us"
    subject = f"Channel {number} pulse width"
    width_us = channel.pulse_width_us
    below = found.check_min(
        ViolationCode.PULSE_WIDTH_BELOW_MIN,
        field,
        subject,
        width_us,
        ranges.pulse_width_min_us,
        _US,
    )
    above = found.check_max(
        ViolationCode.PULSE_WIDTH_ABOVE_MAX,
        field,
        subject,
        width_us,
        ranges.pulse_width_max_us,
        _US,
    )
    if not (below or above) and width_us % ranges.pulse_width_step_us:
        found.violation(
            ViolationCode.PULSE_WIDTH_NOT_ON_STEP,
            field,
            width_us,
            ranges.pulse_width_step_us,
            f"{subject} {width_us} µs is not a multiple of the {found.label} step of "
            f"{ranges.pulse_width_step_us} µs; the value is refused, not rounded.",
        )

    if ranges.waveforms is not None and channel.waveform not in ranges.waveforms:
        found.violation(
            ViolationCode.WAVEFORM_UNSUPPORTED,
            f"{path}.waveform",
            channel.waveform.value,
            ", ".join(sorted(ranges.waveforms)),
            f"Channel {number} waveform {channel.waveform.value} is not one the {found.label} "
            f"can produce ({', '.join(sorted(ranges.waveforms))}).",
        )
    if ranges.phase_types is not None and channel.phase_type not in ranges.phase_types:
        found.violation(
            ViolationCode.PHASE_TYPE_UNSUPPORTED,
            f"{path}.phase_type",
            channel.phase_type.value,
            ", ".join(sorted(ranges.phase_types)),
            f"Channel {number} phase type {channel.phase_type.value} is not one the {found.label} "
            f"can produce ({', '.join(sorted(ranges.phase_types))}).",
        )


def _check_frequency(
    found: Findings,
    capabilities: DeviceCapabilities,
    ranges: ModalityCapabilities,
    channel: ChannelPlan,
    path: str,
) -> None:
    """The frequency range, with the minimum stimulation interval as a further ceiling if lower."""
    field = f"{path}.frequency_hz"
    subject = f"Channel {channel.channel} frequency"
    found.check_min(
        ViolationCode.FREQUENCY_BELOW_MIN,
        field,
        subject,
        channel.frequency_hz,
        ranges.frequency_min_hz,
        _HZ,
    )
    ceiling_hz = ranges.frequency_max_hz
    note = ""
    interval_ms = capabilities.min_main_stimulation_interval_ms
    if interval_ms is not None and 1000.0 / interval_ms < ceiling_hz:
        ceiling_hz = 1000.0 / interval_ms
        note = f"(The device's minimum stimulation interval is {interval_ms:g} ms.)"
    found.check_max(
        ViolationCode.FREQUENCY_ABOVE_MAX,
        field,
        subject,
        channel.frequency_hz,
        ceiling_hz,
        _HZ,
        note=note,
    )


def _check_channel_exists(
    found: Findings, capabilities: DeviceCapabilities, channel: ChannelPlan, path: str
) -> None:
    if channel.channel > capabilities.channel_count:
        found.violation(
            ViolationCode.CHANNEL_UNAVAILABLE,
            f"{path}.channel",
            channel.channel,
            capabilities.channel_count,
            f"Channel {channel.channel} does not exist on the {found.label}, which has "
            f"{capabilities.channel_count} channel(s).",
        )


def _check_densities(
    found: Findings, capabilities: DeviceCapabilities, dose: PlanDose, index: int
) -> None:
    figures = dose.channels[index]
    path = f"dose.channels[{index}]"
    if capabilities.max_current_density_ma_per_cm2 is not None:
        found.check_max(
            ViolationCode.CURRENT_DENSITY_ABOVE_MAX,
            f"{path}.current_density_ma_per_cm2",
            f"Channel {figures.channel} rms current density",
            figures.current_density_ma_per_cm2,
            capabilities.max_current_density_ma_per_cm2,
            _MA_CM2,
        )
    if capabilities.max_power_density_w_per_cm2 is not None:
        found.check_max(
            ViolationCode.POWER_DENSITY_ABOVE_MAX,
            f"{path}.power_density_w_per_cm2",
            f"Channel {figures.channel} average power density at 500 Ω",
            figures.power_density_w_per_cm2,
            capabilities.max_power_density_w_per_cm2,
            _W_CM2,
        )


def check_device_layer(
    plan: StimulationPlan,
    dose: PlanDose,
    capabilities: DeviceCapabilities,
    *,
    amplitude_checks_for: AmplitudeChecks = None,
) -> Findings:
    """Every capability check. An unsupported modality is one refusal, not a cascade of ranges.

    With ``amplitude_checks_for`` only ``_check_amplitude_range`` and ``_check_densities`` run, for
    those channels, in the same order (see ``check_standard_layer``).
    """
    found = Findings(Layer.DEVICE, f"device ({capabilities.model_name})")
    ranges = capabilities.for_modality(plan.modality)
    every_check = amplitude_checks_for is None
    if ranges is None and every_check:
        supported = ", ".join(modality_name(m) for m in sorted(capabilities.supported_modalities))
        found.violation(
            ViolationCode.MODALITY_UNSUPPORTED,
            "modality",
            plan.modality.value,
            ", ".join(sorted(capabilities.supported_modalities)),
            f"The {capabilities.model_name} does not support {modality_name(plan.modality)} "
            f"stimulation (it supports {supported} only); this plan cannot run on it.",
        )
    for index in checked_channels(len(plan.channels), amplitude_checks_for):
        channel = plan.channels[index]
        path = f"channels[{index}]"
        if every_check:
            _check_channel_exists(found, capabilities, channel, path)
        if ranges is not None:
            _check_amplitude_range(found, ranges, channel, path)
            if every_check:
                _check_channel_ranges(found, ranges, channel, path)
                _check_frequency(found, capabilities, ranges, channel, path)
        _check_densities(found, capabilities, dose, index)
    return found
