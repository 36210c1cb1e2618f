"""The limits engine: the one gate every stimulation parameter passes, at start and on every change.

It applies the layers in order (standard profile, device capabilities, site policy, client
prescription), collects every violation of every layer, settles warnings against the practitioner's
acknowledgements, and only when nothing is left issues an ``ApprovedPlan``. It never alters a value:
a plan is approved as written or refused with reasons, so what reaches a device is exactly what was
checked.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Set

from sessionlog.safety.amplitude_range import AmplitudeRange, LiveChangeContext, search_range
from sessionlog.safety.capabilities import DeviceCapabilities
from sessionlog.safety.device_layer import check_device_layer
from sessionlog.safety.dose import PlanDose, channel_dose, plan_dose, summarise_dose
from sessionlog.safety.findings import AmplitudeChecks, Findings
from sessionlog.safety.plan import MAX_REPRESENTABLE_AMPLITUDE_UA, ChannelPlan, StimulationPlan
from sessionlog.safety.prescription_layer import check_prescription_layer
from sessionlog.safety.profiles import standard_profile
from sessionlog.safety.screening import ClientContext, ContraindicationOverride
from sessionlog.safety.site_layer import check_site_layer
from sessionlog.safety.site_policy import SitePolicy
from sessionlog.safety.standard_layer import check_standard_layer
from sessionlog.safety.verdict import (
    _ENGINE_TOKEN,
    ApprovedPlan,
    SafetyWarning,
    Verdict,
    Violation,
    WarningCode,
)

_CHANNEL_VALIDATOR = ChannelPlan.__pydantic_validator__

_NOT_ACKNOWLEDGEABLE = " The site policy does not allow warnings to be acknowledged."


def _settle_warnings(
    raised: list[SafetyWarning],
    acknowledged: Set[str],
    site_policy: SitePolicy | None,
    carried: frozenset[tuple[WarningCode, str]] = frozenset(),
) -> tuple[SafetyWarning, ...]:
    """Mark each raised warning acknowledged if its code was acknowledged, or it was
    acknowledged on the same field for the plan a live change changes (``carried``), and the
    site allows it."""
    allowed = site_policy is None or site_policy.warnings_acknowledgeable
    settled: list[SafetyWarning] = []
    for warning in raised:
        if allowed and (warning.code in acknowledged or (warning.code, warning.field) in carried):
            settled.append(warning.model_copy(update={"acknowledged": True}))
        elif warning.code in acknowledged:
            settled.append(
                warning.model_copy(update={"message": warning.message + _NOT_ACKNOWLEDGEABLE})
            )
        else:
            settled.append(warning)
    return tuple(settled)


class LimitsEngine:
    """Approves stimulation plans against every applicable limits layer. Stateless, thread-safe."""

    def approve(
        self,
        plan: StimulationPlan,
        *,
        capabilities: DeviceCapabilities | None = None,
        site_policy: SitePolicy | None = None,
        client: ClientContext | None = None,
        acknowledged_warnings: Set[str] = frozenset(),
    ) -> Verdict:
        """Check ``plan`` against the standard layer and each layer whose context is given.

        ``acknowledged_warnings`` holds warning codes (e.g. ``current_density_high``) the
        practitioner has acknowledged; the caller logs them. Every violation of every layer is
        reported, so a practitioner sees all reasons at once. Never raises for a valid
        StimulationPlan.
        """
        return self._judge(
            plan,
            plan_dose(plan),
            capabilities=capabilities,
            site_policy=site_policy,
            client=client,
            acknowledged_warnings=acknowledged_warnings,
            amplitude_checks_for=None,
        )

    def approve_change(
        self,
        approved: ApprovedPlan,
        *,
        channel: int,
        amplitude_ua: int,
        acknowledged_warnings: Set[str] = frozenset(),
    ) -> Verdict:
        """Re-approve a live intensity change on one channel with the context of the first approval.

        The verdict is the one ``approve`` gives for the changed plan in that context (property
        tests compare the two field by field), computed with less work because live changes come
        many times a second. When the approval raised no warning, the channel's amplitude
        range (``sessionlog.safety.amplitude_range``), found by these very checks on the channel's
        first change, says at once whether the new amplitude passes every layer with no finding;
        if it does, the changed plan is approved with its dose computed when first read. Any
        other change is judged by the checks (``_judge_change``), which word every refusal.

        Warnings acknowledged for the running plan stay acknowledged on the fields they were
        raised on (they were logged once for this session); a warning that the change raises on
        another field, even of an acknowledged code (a second channel's current density), needs
        its own acknowledgement in ``acknowledged_warnings``.
        Raises ValueError if ``channel`` is not in the plan or the amplitude is not a valid plan
        value (negative, beyond the representable range), TypeError if it is not an int.
        """
        if isinstance(amplitude_ua, bool) or not isinstance(amplitude_ua, int):
            raise TypeError("amplitude_ua must be an int number of microamperes")
        index = _channel_index(approved.plan, channel)
        live = approved._live_changes
        if (
            live is not None
            and type(amplitude_ua) is int
            and live.range_of(approved, index).admits(amplitude_ua)
        ):
            return _approved_inside_range(approved, index, amplitude_ua, live)
        return self._judge_change(approved, index, amplitude_ua, frozenset(acknowledged_warnings))

    def amplitude_range(self, approved: ApprovedPlan, *, channel: int) -> AmplitudeRange | None:
        """The amplitudes a live change of ``channel`` may take without a violation or a warning
        in the context of ``approved`` (the range of an intensity control), or None when that
        approval raised a warning (each change is then judged by the checks alone). Raises
        ValueError if ``channel`` is not in the plan."""
        index = _channel_index(approved.plan, channel)
        live = approved._live_changes
        if live is None:
            return None
        return live.range_of(approved, index)

    def _judge_change(
        self,
        approved: ApprovedPlan,
        index: int,
        amplitude_ua: int,
        acknowledged_warnings: frozenset[str],
    ) -> Verdict:
        """A live change judged by the checks: only the changed channel is validated and has its
        dose figures recomputed, and the layers run only their checks that read an amplitude or a
        dose figure (``amplitude_checks_for``). That is sound because ``approved`` passed every
        check in this very context: a check that reads neither reads only fields a change cannot
        alter, and it found nothing then (an approved plan has no violation, and only
        amplitude-dependent checks raise warnings), so it finds nothing now. Likewise the
        amplitude-dependent checks of the other channels read only their unchanged amplitudes and
        figures; they are left out when the first approval raised no warning at all (so they
        found nothing) and run again otherwise, to reproduce their warnings."""
        plan = approved.plan
        # A copy of the channel with the amplitude validated by ChannelPlan's own schema, field and
        # model validators included: the channel a full parse of the changed plan would give,
        # without re-parsing every other field. The copy is new, so no approved plan changes.
        changed_channel = copy.copy(plan.channels[index])
        _CHANNEL_VALIDATOR.validate_assignment(changed_channel, "amplitude_ua", amplitude_ua)
        channels = (*plan.channels[:index], changed_channel, *plan.channels[index + 1 :])
        # Only the channels differ, and their number and channel numbers (all the plan's own
        # validation looks at) are unchanged, so the validated channel makes a valid plan.
        changed = plan.model_copy(update={"channels": channels})
        figures = list(approved.dose.channels)
        figures[index] = channel_dose(
            changed_channel, area_cm2=plan.electrode.area_cm2, duration_s=plan.duration_s
        )
        return self._judge(
            changed,
            summarise_dose(tuple(figures)),
            capabilities=approved.capabilities,
            site_policy=approved.site_policy,
            client=approved.client,
            acknowledged_warnings=acknowledged_warnings,
            carried_acknowledgements=approved.acknowledged_fields,
            # ``acknowledged_warnings`` of an ApprovedPlan holds the code of every warning its
            # approval raised (all of them acknowledged), so it is empty only if none was raised.
            amplitude_checks_for=(
                range(len(channels)) if approved.acknowledged_warnings else (index,)
            ),
        )

    def amplitude_ranges(self, approved: ApprovedPlan) -> dict[int, AmplitudeRange] | None:
        """``amplitude_range`` of every channel of ``approved``, by channel number; None when the
        approval raised a warning."""
        ranges = {}
        for channel in approved.plan.channels:
            allowed = self.amplitude_range(approved, channel=channel.channel)
            if allowed is None:
                return None
            ranges[channel.channel] = allowed
        return ranges

    def _search(self, approved: ApprovedPlan, index: int) -> AmplitudeRange:
        """Channel ``index``'s range, found by ``_judge_change`` around its approved amplitude
        (see ``search_range``); only called for an approval that raised no warning."""
        live = approved._live_changes
        assert live is not None  # only a context searches, for its own approvals

        def passes(amplitude_ua: int) -> bool:
            verdict = self._judge_change(approved, index, amplitude_ua, frozenset())
            return verdict.approved and not verdict.warnings

        return search_range(
            passes,
            anchor_ua=approved.plan.channels[index].amplitude_ua
            or _lowest_nonzero_candidate(approved, live.step_ua),
            step_ua=live.step_ua,
            max_ua=MAX_REPRESENTABLE_AMPLITUDE_UA,
        )

    def _judge(
        self,
        plan: StimulationPlan,
        dose: PlanDose,
        *,
        capabilities: DeviceCapabilities | None,
        site_policy: SitePolicy | None,
        client: ClientContext | None,
        acknowledged_warnings: Set[str],
        amplitude_checks_for: AmplitudeChecks,
        carried_acknowledgements: frozenset[tuple[WarningCode, str]] = frozenset(),
    ) -> Verdict:
        """Run the layers on ``plan`` and its ``dose`` and turn their findings into a verdict.

        ``amplitude_checks_for`` is ``None`` (every check) except on ``approve_change``'s path.
        """
        only = amplitude_checks_for
        findings: list[Findings] = [check_standard_layer(plan, dose, amplitude_checks_for=only)]
        if capabilities is not None:
            findings.append(check_device_layer(plan, dose, capabilities, amplitude_checks_for=only))
        if site_policy is not None:
            findings.append(check_site_layer(plan, dose, site_policy, amplitude_checks_for=only))
        overrides: list[ContraindicationOverride] = []
        if client is not None:
            prescription_findings, overrides = check_prescription_layer(
                plan, client, amplitude_checks_for=only
            )
            findings.append(prescription_findings)

        layers = tuple(found.layer for found in findings)
        violations = tuple(v for found in findings for v in found.violations)
        warnings = _settle_warnings(
            [w for found in findings for w in found.warnings],
            acknowledged_warnings,
            site_policy,
            carried_acknowledgements,
        )
        approved = not violations and all(w.acknowledged for w in warnings)
        approved_plan = None
        if approved:
            acknowledged = frozenset(WarningCode(w.code) for w in warnings)
            approved_plan = ApprovedPlan(
                _ENGINE_TOKEN,
                plan=plan,
                dose=dose,
                layers=layers,
                capabilities=capabilities,
                site_policy=site_policy,
                client=client,
                acknowledged_warnings=acknowledged,
                acknowledged_fields=frozenset((WarningCode(w.code), w.field) for w in warnings),
                # Ranges are found only where no warning was raised: a change inside one
                # then raises none either, so its verdict needs no warning reproduced.
                live_changes=None
                if acknowledged
                else LiveChangeContext(
                    tuple(overrides), _amplitude_step_ua(plan, capabilities), self._search
                ),
            )
        return Verdict(
            approved=approved,
            violations=violations,
            warnings=warnings,
            computed_dose=dose,
            layers=layers,
            overrides_applied=tuple(overrides),
            approved_plan=approved_plan,
        )


def _channel_index(plan: StimulationPlan, channel: int) -> int:
    for index, planned in enumerate(plan.channels):
        if planned.channel == channel:
            return index
    numbers = [c.channel for c in plan.channels]
    raise ValueError(f"channel {channel} is not in the approved plan (channels {numbers})")


def _amplitude_step_ua(plan: StimulationPlan, capabilities: DeviceCapabilities | None) -> int:
    """The step every amplitude of the plan must be a multiple of: the device's, or 1 µA."""
    ranges = None if capabilities is None else capabilities.for_modality(plan.modality)
    return 1 if ranges is None else ranges.amplitude_step_ua


def _lowest_nonzero_candidate(approved: ApprovedPlan, step_ua: int) -> int:
    """Where to look for an amplitude above zero that passes, for a channel approved at zero (a
    practitioner who starts at zero and turns it up): the first multiple of the step at or above
    the lower bounds the layers state. The search checks that it passes; if it does not, the
    channel's range holds zero alone and every other change is judged by the checks."""
    plan = approved.plan
    lowest = step_ua
    guard = standard_profile(plan.modality).min_nonzero_amplitude_ua
    if guard is not None:
        lowest = max(lowest, math.ceil(guard.value))
    ranges = (
        None if approved.capabilities is None else approved.capabilities.for_modality(plan.modality)
    )
    if ranges is not None:
        lowest = max(lowest, ranges.amplitude_min_ua)
    return -(-lowest // step_ua) * step_ua


def _approved_inside_range(
    approved: ApprovedPlan, index: int, amplitude_ua: int, live: LiveChangeContext
) -> Verdict:
    """The verdict ``_judge_change`` gives for an amplitude inside the channel's range: approved
    in the same context with no finding, and the dose computed when first read.

    The channel is copied without validation: the range holds only multiples of the step
    within the representable range, so the int is a valid ``amplitude_ua``, and no other field
    of the channel or the plan changes."""
    plan = approved.plan
    channels = plan.channels
    changed = plan.model_copy(
        update={
            "channels": (
                *channels[:index],
                channels[index].model_copy(update={"amplitude_ua": amplitude_ua}),
                *channels[index + 1 :],
            )
        }
    )
    layers = approved.layers
    approved_plan = ApprovedPlan(
        _ENGINE_TOKEN,
        plan=changed,
        dose=None,
        layers=layers,
        capabilities=approved.capabilities,
        site_policy=approved.site_policy,
        client=approved.client,
        acknowledged_warnings=frozenset(),
        live_changes=live,
    )
    return Verdict(
        approved=True,
        violations=(),
        warnings=(),
        layers=layers,
        overrides_applied=live.overrides,
        approved_plan=approved_plan,
    )


def check_standard(plan: StimulationPlan) -> list[Violation]:
    """Standard-layer violations only: flags records of sessions delivered on standalone devices."""
    return check_standard_layer(plan, plan_dose(plan)).violations
