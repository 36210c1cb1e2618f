"""The site layer: a plan against the clinic's own policy, which can only narrow the outer layers.

Site maxima are per modality; forbidden body sites add to the standard ones. Whether warnings may be
acknowledged at all is a site decision too, applied by the engine when it settles warnings.
"""

from __future__ import annotations

from sessionlog.safety.dose import PlanDose
from sessionlog.safety.findings import (
    AmplitudeChecks,
    Findings,
    checked_channels,
    format_current,
    modality_name,
    unit_formatter,
)
from sessionlog.safety.plan import StimulationPlan
from sessionlog.safety.site_policy import SitePolicy
from sessionlog.safety.verdict import Layer, ViolationCode

_US = unit_formatter("µs")
_HZ = unit_formatter("Hz")
_S = unit_formatter("s")
_MA_CM2 = unit_formatter("mA/cm²")


def check_site_layer(
    plan: StimulationPlan,
    dose: PlanDose,
    policy: SitePolicy,
    *,
    amplitude_checks_for: AmplitudeChecks = None,
) -> Findings:
    """Every site-policy check for the plan's modality.

    With ``amplitude_checks_for`` only the amplitude and current-density maxima run, for those
    channels, in the same order (see ``check_standard_layer``).
    """
    found = Findings(Layer.SITE, f"site policy ({policy.name})" if policy.name else "site policy")
    rules = policy.for_modality(plan.modality)
    every_check = amplitude_checks_for is None
    for index in checked_channels(len(plan.channels), amplitude_checks_for):
        channel = plan.channels[index]
        path = f"channels[{index}]"
        number = channel.channel
        if rules.max_amplitude_ua is not None:
            found.check_max(
                ViolationCode.AMPLITUDE_ABOVE_MAX,
                f"{path}.amplitude_ua",
                f"Channel {number} amplitude",
                channel.amplitude_ua,
                rules.max_amplitude_ua,
                format_current,
            )
        if rules.max_pulse_width_us is not None and every_check:
            found.check_max(
                ViolationCode.PULSE_WIDTH_ABOVE_MAX,
                f"{path}.pulse_width_us",
                f"Channel {number} pulse width",
                channel.pulse_width_us,
                rules.max_pulse_width_us,
                _US,
            )
        if rules.max_frequency_hz is not None and every_check:
            found.check_max(
                ViolationCode.FREQUENCY_ABOVE_MAX,
                f"{path}.frequency_hz",
                f"Channel {number} frequency",
                channel.frequency_hz,
                rules.max_frequency_hz,
                _HZ,
            )
        if rules.max_current_density_ma_per_cm2 is not None:
            found.check_max(
                ViolationCode.CURRENT_DENSITY_ABOVE_MAX,
                f"dose.channels[{index}].current_density_ma_per_cm2",
                f"Channel {number} rms current density",
                dose.channels[index].current_density_ma_per_cm2,
                rules.max_current_density_ma_per_cm2,
                _MA_CM2,
            )
    if not every_check:
        return found
    if rules.max_duration_s is not None:
        found.check_max(
            ViolationCode.DURATION_ABOVE_MAX,
            "duration_s",
            "Session duration",
            plan.duration_s,
            rules.max_duration_s,
            _S,
        )
    site = plan.electrode.body_site
    if site in policy.forbidden_sites_for(plan.modality):
        found.violation(
            ViolationCode.BODY_SITE_FORBIDDEN,
            "electrode.body_site",
            site.value,
            None,
            f"Body site {site.value} is forbidden for {modality_name(plan.modality)} stimulation "
            f"by the {found.label}.",
        )
    return found
