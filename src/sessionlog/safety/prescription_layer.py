"""The prescription layer: a plan against one client's prescription and screening.

The innermost layer. A prescription narrows modality, maxima and body sites for this client; a
contraindication refuses the plan unless an authorised override (who and why) is on record, and the
overrides the approval relied on are returned so the session can record them.
"""

from __future__ import annotations

from sessionlog.safety.findings import (
    AmplitudeChecks,
    Findings,
    checked_channels,
    format_current,
    modality_name,
    unit_formatter,
)
from sessionlog.safety.plan import StimulationPlan
from sessionlog.safety.screening import ClientContext, ContraindicationOverride
from sessionlog.safety.verdict import Layer, ViolationCode

_US = unit_formatter("µs")
_HZ = unit_formatter("Hz")
_S = unit_formatter("s")


def _check_prescription(
    found: Findings,
    plan: StimulationPlan,
    client: ClientContext,
    amplitude_checks_for: AmplitudeChecks,
) -> None:
    prescription = client.prescription
    if prescription is None:
        return
    every_check = amplitude_checks_for is None
    allowed = prescription.modalities
    if allowed is not None and plan.modality not in allowed and every_check:
        found.violation(
            ViolationCode.MODALITY_NOT_PRESCRIBED,
            "modality",
            plan.modality.value,
            ", ".join(sorted(allowed)),
            f"{modality_name(plan.modality).capitalize()} stimulation is not in this client's "
            f"prescription ({', '.join(modality_name(m) for m in sorted(allowed)) or 'none'}).",
        )
    for index in checked_channels(len(plan.channels), amplitude_checks_for):
        channel = plan.channels[index]
        path = f"channels[{index}]"
        number = channel.channel
        if prescription.max_amplitude_ua is not None:
            found.check_max(
                ViolationCode.AMPLITUDE_ABOVE_MAX,
                f"{path}.amplitude_ua",
                f"Channel {number} amplitude",
                channel.amplitude_ua,
                prescription.max_amplitude_ua,
                format_current,
            )
        if not every_check:
            continue
        if prescription.max_pulse_width_us is not None:
            found.check_max(
                ViolationCode.PULSE_WIDTH_ABOVE_MAX,
                f"{path}.pulse_width_us",
                f"Channel {number} pulse width",
                channel.pulse_width_us,
                prescription.max_pulse_width_us,
                _US,
            )
        if prescription.max_frequency_hz is not None:
            found.check_max(
                ViolationCode.FREQUENCY_ABOVE_MAX,
                f"{path}.frequency_hz",
                f"Channel {number} frequency",
                channel.frequency_hz,
                prescription.max_frequency_hz,
                _HZ,
            )
    if not every_check:
        return
    if prescription.max_duration_s is not None:
        found.check_max(
            ViolationCode.DURATION_ABOVE_MAX,
            "duration_s",
            "Session duration",
            plan.duration_s,
            prescription.max_duration_s,
            _S,
        )
    sites = prescription.allowed_body_sites
    if sites is not None and plan.electrode.body_site not in sites:
        site = plan.electrode.body_site.value
        found.violation(
            ViolationCode.BODY_SITE_NOT_PRESCRIBED,
            "electrode.body_site",
            site,
            ", ".join(sorted(sites)),
            f"Body site {site} is not among the prescribed sites "
            f"({', '.join(sorted(sites)) or 'none'}).",
        )


def _check_screening(found: Findings, client: ClientContext) -> list[ContraindicationOverride]:
    applied: list[ContraindicationOverride] = []
    for contraindication in sorted(client.contraindications):
        override = client.override_for(contraindication)
        if override is not None:
            applied.append(override)
            continue
        found.violation(
            ViolationCode.CONTRAINDICATION,
            "client.contraindications",
            contraindication.value,
            "an authorised override",
            f"The client has a contraindication ({contraindication.value}) and no authorised "
            "override with a reason is recorded.",
        )
    return applied


def check_prescription_layer(
    plan: StimulationPlan, client: ClientContext, *, amplitude_checks_for: AmplitudeChecks = None
) -> tuple[Findings, list[ContraindicationOverride]]:
    """Prescription and screening checks, and the overrides that let a contraindication pass.

    With ``amplitude_checks_for`` only the amplitude maximum of those channels is checked (see
    ``check_standard_layer``); screening always runs, since the verdict records the overrides it
    relies on.
    """
    found = Findings(Layer.PRESCRIPTION, "prescription")
    _check_prescription(found, plan, client, amplitude_checks_for)
    applied = _check_screening(found, client)
    return found, applied
