"""End to end property: whatever plan and live changes are asked for, nothing outside any layer's
limits ever reaches the device.

Each example opens the simulated device (its own hardware limits drawn too), approves a generated
plan against the standard profile, the device, a site policy and a client prescription, runs it, and
asks for a random sequence of intensity changes, each re-approved. The emulator's log of decoded
commands is then replayed into every state each channel was put in, and every state is checked
against every bound of every layer by an oracle written apart from the engine (``wire_dose``): the
engine is not trusted to judge itself, so the dose figures are recomputed there from the wire's own
numbers.

The site policy and the prescription are drawn with amplitude, pulse width, frequency (and, for the
site, current density) ceilings placed on, above or below the plan's own largest values, so that
requested values fall on both sides of each (``--hypothesis-show-statistics`` lists, per bound, how
often a request was within or beyond). The current density warning is exercised by explicit
examples too, since few random plans are above it and otherwise approvable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from sessionlog.hal import open_device
from sessionlog.safety import (
    ChannelPlan,
    ClientContext,
    LimitsEngine,
    Modality,
    PhaseType,
    Polarity,
    Prescription,
    SitePolicy,
    StimulationPlan,
    WarningCode,
    Waveform,
    standard_profile,
)
from sessionlog.safety.plan import UA_PER_MA
from sessionlog_drivers.simulated import protocol as wire
from tests.drivers.wire_dose import (
    PLAN_MODALITY,
    Layers,
    WireChannel,
    above_warning_threshold,
    checks,
    replay,
)

ENGINE = LimitsEngine()
STANDARD = {modality: standard_profile(modality) for modality in Modality}
"""The standard profiles' limit values: the specification the wire is held to."""

_T = TypeVar("_T")
_N = TypeVar("_N", int, float)


def _mostly(
    typical: st.SearchStrategy[_T], anything: st.SearchStrategy[_T]
) -> st.SearchStrategy[_T]:
    """Typical values four times in five, so that many plans are approved and changes are tried."""
    return st.integers(0, 4).flatmap(lambda pick: anything if pick == 0 else typical)


NEAR = (1.0, 1.0, 1.25, 2.0, 0.8)
"""Where a plan-relative bound sits against the plan's largest value: on it (the boundary case),
above it, or, one time in five, below it."""


def _bound(
    draw: st.DrawFn, largest: float, kind: Callable[[float], _N], lowest: _N, highest: _N
) -> _N | None:
    """A site or prescription ceiling near the plan's largest value, or unset in two examples of
    three: a layer that sets every bound would refuse most plans.

    The value is kept within ``lowest`` and ``highest``, the range the field accepts.
    """
    if draw(st.sampled_from([False, False, True])):
        return min(max(kind(largest * draw(st.sampled_from(NEAR))), lowest), highest)
    return None


@dataclass(frozen=True)
class _Ranges:
    """Where one modality's channel parameters are drawn from, per tier.

    ``typical`` values sit inside the standard ranges with modest doses; ``warm`` ones put the
    EMS current density around the 2 mA/cm² acknowledgement threshold on small electrodes;
    ``intense`` values are inside the ranges too but high enough that the dose bounds (power and
    DC density) decide; ``extreme`` values lie just either side of the edges of the standard
    ranges (EMS 120 mA, 600 µs, 150 Hz; microcurrent 999 µA, 10 µs and 1 s phases, 0.1 and
    1000 Hz), where a loosened bound would let them through; ``rms`` values put the EMS rms
    current on both sides of its 50 mA limit, reachable only at 117–120 mA, 590–600 µs and
    147–150 Hz together (microcurrent has no rms limit: there it is a second intense tier);
    ``anything`` reaches past the standard and device ranges.
    """

    amplitude_ua: dict[str, st.SearchStrategy[int]]
    pulse_width_us: dict[str, st.SearchStrategy[int]]
    frequency_millihz: dict[str, st.SearchStrategy[int]]


def _in_ma(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high).map(lambda ma: ma * 1000)


def _in_hz(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high).map(lambda hz: hz * 1000)


RANGES = {
    Modality.EMS: _Ranges(
        amplitude_ua={
            "typical": _in_ma(0, 46),
            "warm": _in_ma(20, 60),
            "intense": _in_ma(40, 120),
            "extreme": _in_ma(118, 122),
            "rms": _in_ma(117, 120),
            # Whole mA beyond the ceilings, a few µA (the µA/mA mix-up guard), up to 1 A.
            "anything": st.one_of(_in_ma(0, 140), st.integers(1, 999), st.integers(0, 1_000_000)),
        },
        pulse_width_us={
            "typical": st.integers(20, 400),
            "warm": st.integers(100, 300),
            "intense": st.integers(200, 600),
            "extreme": st.integers(598, 602),
            "rms": st.integers(590, 600),
            "anything": st.integers(5, 700),
        },
        frequency_millihz={
            "typical": _in_hz(1, 100),
            "warm": _in_hz(20, 80),
            "intense": _in_hz(50, 150),
            "extreme": st.integers(149_000, 151_000),
            "rms": _in_hz(147, 150),
            "anything": st.integers(500, 160_000),
        },
    ),
    Modality.MICROCURRENT: _Ranges(
        amplitude_ua={
            "typical": st.integers(0, 500),
            "warm": st.integers(200, 700),
            "intense": st.integers(300, 999),
            "extreme": st.integers(995, 1_003),
            "rms": st.integers(300, 999),
            "anything": st.integers(0, 1_500),
        },
        pulse_width_us={
            "typical": st.integers(20, 2_000),
            "warm": st.integers(500, 5_000),
            "intense": st.integers(2_000, 200_000),
            "extreme": st.one_of(st.integers(8, 12), st.integers(999_990, 1_000_010)),
            "rms": st.integers(2_000, 200_000),
            "anything": st.one_of(st.integers(5, 30), st.integers(2_000, 1_100_000)),
        },
        frequency_millihz={
            "typical": _in_hz(1, 300),
            "warm": _in_hz(10, 100),
            "intense": st.integers(100, 10_000),
            "extreme": st.one_of(st.integers(98, 102), st.integers(999_000, 1_001_000)),
            "rms": st.integers(100, 10_000),
            "anything": st.one_of(st.integers(50, 1_000), st.integers(1_000, 1_200_000)),
        },
    ),
}


MICROCURRENT_CORNERS = (
    (st.integers(8, 12), st.integers(999_000, 1_001_000)),
    (st.integers(999_990, 1_000_010), st.integers(98, 102)),
)
"""Phase widths and frequencies (mHz) just either side of the microcurrent standard's edges, in
the only pairings that fit a pulse in its period: the shortest phases at the highest frequency,
the longest at the lowest. Drawn with a typical amplitude, so that timing alone decides."""


def _channel(draw: st.DrawFn, modality: Modality, number: int, wild: bool) -> dict[str, Any]:
    """One channel: half the time all parameters from one tier (a dose profile), else each from its
    own (one parameter at a standard edge while the others keep the dose low enough to pass). A
    wild example strays past the ranges."""
    ranges = RANGES[modality]
    tiers = st.sampled_from(
        ["typical", "warm", "warm", "intense", "extreme", "extreme", "rms", "rms"]
    )
    coherent = draw(st.booleans())
    channel_tier = draw(tiers)

    def pick(strategies: dict[str, st.SearchStrategy[int]]) -> int:
        tier = channel_tier if coherent else draw(tiers)
        if wild:
            return draw(_mostly(strategies[tier], strategies["anything"]))
        return draw(strategies[tier])

    phase_types = [*[PhaseType.BIPHASIC_SYMMETRIC] * 3, *PhaseType]
    phase_type = draw(st.sampled_from(phase_types))
    amplitude_ua = pick(ranges.amplitude_ua)
    width_us, frequency_millihz = pick(ranges.pulse_width_us), pick(ranges.frequency_millihz)
    if modality is Modality.MICROCURRENT and coherent and channel_tier == "extreme":
        widths, frequencies = draw(st.sampled_from(MICROCURRENT_CORNERS))
        width_us, frequency_millihz = draw(widths), draw(frequencies)
        amplitude_ua = draw(ranges.amplitude_ua["typical"])
    channel: dict[str, Any] = {
        "channel": number,
        "amplitude_ua": amplitude_ua,
        "pulse_width_us": width_us,
        "frequency_hz": frequency_millihz / 1000,
        "phase_type": phase_type,
        "waveform": (
            draw(_mostly(st.just(Waveform.RECTANGULAR), st.sampled_from(Waveform)))
            if wild
            else Waveform.RECTANGULAR
        ),
    }
    if phase_type is PhaseType.MONOPHASIC:
        # The device cannot alternate monophasic pulses and refuses such a plan (not the engine).
        channel["polarity"] = draw(st.sampled_from([Polarity.POSITIVE, Polarity.NEGATIVE]))
    return channel


@dataclass(frozen=True)
class Scenario:
    """One example: the plan, every layer's context, the live changes and the acknowledgement."""

    plan: StimulationPlan
    device_query: str
    site_policy: SitePolicy
    prescription: Prescription
    acknowledge: bool
    """Whether the practitioner acknowledges the current density warning (plan and changes)."""
    changes: Sequence[tuple[int, int]]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """One example. Three in four are tame: channel parameters inside the standard ranges or just
    at their edges, so that enough plans are approved for live changes to run and it is the edges,
    the site, the prescription and the dose bounds that decide. Wild examples stray past every
    range, waveform, body site and duration included.
    """
    modality = draw(st.sampled_from([Modality.EMS, Modality.MICROCURRENT]))
    wild = draw(st.sampled_from([False, False, False, True]))
    ems = modality is Modality.EMS
    channels = draw(st.integers(1, 3))
    plan = StimulationPlan.model_validate(
        {
            "modality": modality,
            "duration_s": draw(
                _mostly(st.integers(60, 3600), st.integers(60, 4000)) if wild else st.just(1800)
            ),
            "electrode": {
                "body_site": draw(
                    _mostly(st.just("calf"), st.sampled_from(["face", "lower_back", "eyes"]))
                    if wild
                    else st.just("calf")
                ),
                "area_cm2": draw(st.sampled_from([1.0, 2.0, 4.0, 25.0, 80.0])),
            },
            "channels": [
                _channel(draw, modality, number, wild) for number in range(1, channels + 1)
            ],
        }
    )
    # The device's ranges: now and then narrower than the standard's, now and then wider (so that
    # the standard's bounds, microcurrent's timing included, are the ones that bind).
    device_max_ua = draw(
        st.sampled_from([120_000, 130_000, 140_000, 90_000] if ems else [1_000, 1_500, 750])
    )
    widths = [1_000_000, 1_000_000, 500, 800] if ems else [1_000_000, 2_000_000, 100_000]
    highest_hz = [1_000, 1_000, 120] if ems else [1_000, 2_000, 500]
    device_query = "&".join(
        (
            "channels=3",
            "seed=5",
            f"{'ems' if ems else 'microcurrent'}_max_ua={device_max_ua}",
            f"pulse_width_min_us={draw(st.sampled_from([20, 20, 10, 5, 50]))}",
            f"pulse_width_max_us={draw(st.sampled_from(widths))}",
            f"frequency_min_hz={draw(st.sampled_from([0.1, 0.1, 0.05, 2]))}",
            f"frequency_max_hz={draw(st.sampled_from(highest_hz))}",
        )
    )
    requested = [_as_on_the_wire(channel, modality) for channel in plan.channels]
    area = plan.electrode.area_cm2
    amplitude = max(c.amplitude_ua for c in requested)
    width = max(c.pulse_width_us for c in requested)
    frequency = max(c.frequency_hz for c in requested)
    density = max(c.current_density_ma_per_cm2(area) for c in requested)

    def ceilings(microcurrent_only: bool) -> dict[str, float | None]:
        """Amplitude, pulse width and frequency ceilings, as both the site and the prescription
        may set them (each layer draws its own). A ceiling for microcurrent alone is below 1 mA:
        a higher one is refused as a unit mix-up."""
        highest_ua = UA_PER_MA - 1 if microcurrent_only else 1_000_000
        return {
            "max_amplitude_ua": _bound(draw, amplitude, round, 0, highest_ua),
            "max_pulse_width_us": _bound(draw, width, round, 1, 10_000_000),
            "max_frequency_hz": _bound(draw, frequency, float, 0.001, 100_000.0),
        }

    site_policy = SitePolicy.model_validate(
        {
            modality.value: {
                **ceilings(modality is Modality.MICROCURRENT),
                "max_current_density_ma_per_cm2": _bound(draw, density, float, 0.001, 1e6),
            },
            "forbidden_body_sites": draw(_mostly(st.just([]), st.just(["lower_back"]))),
            "warnings_acknowledgeable": draw(_mostly(st.just(True), st.booleans())),
        }
    )
    prescribed = draw(
        st.sampled_from([None, ["ems"], ["microcurrent"], ["ems", "microcurrent"]])
        if wild
        else st.none()
    )
    prescription = Prescription.model_validate(
        {
            "modalities": prescribed,
            **ceilings(modality is Modality.MICROCURRENT or prescribed == ["microcurrent"]),
        }
    )
    amplitudes = RANGES[modality].amplitude_ua
    change = _mostly(
        st.one_of(amplitudes["typical"], amplitudes["intense"]), amplitudes["anything"]
    )
    return Scenario(
        plan=plan,
        device_query=device_query,
        site_policy=site_policy,
        prescription=prescription,
        acknowledge=draw(st.sampled_from([True, True, False])),
        changes=draw(st.lists(st.tuples(st.integers(1, channels), change), min_size=1, max_size=6)),
    )


def _as_on_the_wire(channel: ChannelPlan, modality: Modality) -> WireChannel:
    """What a plan's channel would put on the wire, to classify requests against the same oracle."""
    return WireChannel(
        channel=channel.channel - 1,
        modality=wire.Modality[modality.name],
        amplitude_ua=channel.amplitude_ua,
        pulse_width_us=channel.pulse_width_us,
        frequency_millihz=round(channel.frequency_hz * 1000),
        phase_type=wire.PhaseType[channel.phase_type.name],
    )


def _count_request(requested: WireChannel, layers: Layers) -> None:
    """Record which side of each bound a request fell on: the evidence that both sides are drawn."""
    for check in checks(requested, layers):
        event(f"requested {'within' if check.ok else 'beyond'} {check.bound}")
    if above_warning_threshold(requested, layers):
        event("requested above the current density warning threshold")


def _warm_scenario(
    amplitude_ua: int, *, acknowledge: bool, acknowledgeable: bool = True
) -> Scenario:
    """An EMS plan on a 1 cm² electrode at 200 µs, 50 Hz (duty 0.02): 30 mA gives 4.2 mA/cm² rms,
    above the 2 mA/cm² threshold and far below every other bound; 10 mA gives 1.4 mA/cm². The
    changes go to 40 mA (above) and back to 10 mA (below)."""
    channel = {
        "channel": 1,
        "amplitude_ua": amplitude_ua,
        "pulse_width_us": 200,
        "frequency_hz": 50.0,
    }
    return Scenario(
        plan=StimulationPlan.model_validate(
            {
                "modality": "ems",
                "duration_s": 1800,
                "electrode": {"body_site": "calf", "area_cm2": 1.0},
                "channels": [channel],
            }
        ),
        device_query="channels=3&seed=5",
        site_policy=SitePolicy(warnings_acknowledgeable=acknowledgeable),
        prescription=Prescription(),
        acknowledge=acknowledge,
        changes=[(1, 40_000), (1, 10_000)],
    )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
@example(_warm_scenario(30_000, acknowledge=True))
@example(_warm_scenario(30_000, acknowledge=False))
@example(_warm_scenario(30_000, acknowledge=True, acknowledgeable=False))
@example(_warm_scenario(10_000, acknowledge=False))
def test_nothing_outside_any_layer_reaches_the_wire(scenario: Scenario) -> None:
    plan = scenario.plan
    modality = plan.modality
    acknowledged = (
        frozenset({WarningCode.CURRENT_DENSITY_HIGH}) if scenario.acknowledge else frozenset()
    )
    client = ClientContext(prescription=scenario.prescription)

    with open_device(f"sim://?{scenario.device_query}", driver="simulated") as device:
        layers = Layers(
            standard=STANDARD,
            capabilities=device.capabilities,
            site_policy=scenario.site_policy,
            prescription=scenario.prescription,
            area_cm2=plan.electrode.area_cm2,
        )
        for channel in plan.channels:
            _count_request(_as_on_the_wire(channel, modality), layers)
        verdict = ENGINE.approve(
            plan,
            capabilities=device.capabilities,
            site_policy=scenario.site_policy,
            client=client,
            acknowledged_warnings=acknowledged,
        )
        emulator = device.transport.port.emulator  # type: ignore[attr-defined]
        approved = verdict.approved_plan
        if approved is not None:
            device.apply(approved)
            device.start()
            for number, amplitude_ua in scenario.changes:
                changed = approved.plan.channel(number).model_copy(
                    update={"amplitude_ua": amplitude_ua}
                )
                _count_request(_as_on_the_wire(changed, modality), layers)
                change = ENGINE.approve_change(
                    approved,
                    channel=number,
                    amplitude_ua=amplitude_ua,
                    acknowledged_warnings=acknowledged,
                )
                if change.approved_plan is not None:
                    device.set_amplitude(change.approved_plan, number)
                    approved = change.approved_plan
            device.stop()
        log = list(emulator.command_log)
    event("approved" if verdict.approved_plan is not None else "refused")
    for violation in verdict.violations:
        event(f"refused by {violation.layer}: {violation.code}")
    if any(not warning.acknowledged for warning in verdict.warnings):
        event("refused: warning not acknowledged")
    event(f"amplitude commands: {sum(isinstance(e.message, wire.SetAmplitude) for e in log) > 0}")

    states = list(replay(log))
    if approved is None:
        assert verdict.violations or any(not w.acknowledged for w in verdict.warnings)
        assert not states, states

    # Every state the device was put in, against every bound of every layer.
    warning_clearable = scenario.acknowledge and scenario.site_policy.warnings_acknowledgeable
    for state in states:
        broken = [check for check in checks(state.channel, layers) if not check.ok]
        assert not broken, (state, broken)
        if above_warning_threshold(state.channel, layers):
            assert warning_clearable, (state, "current density above 2 mA/cm² not acknowledged")
            event("wire: above the current density warning threshold, acknowledged")

    # What the wire does not carry, checked on the plan that reached it.
    if states:
        assert all(PLAN_MODALITY[state.channel.modality] is modality for state in states)
        site = plan.electrode.body_site
        assert site not in STANDARD[modality].forbidden_body_sites, site
        assert site not in scenario.site_policy.forbidden_sites_for(modality), site
        assert plan.duration_s <= STANDARD[modality].max_duration_s.value, plan.duration_s
        ranges = device.capabilities.for_modality(modality)
        assert ranges is not None
        assert ranges.waveforms is None or all(
            c.waveform in ranges.waveforms for c in plan.channels
        )

    # The device ends up holding exactly the last approved plan: nothing rounded, clamped or lost.
    if approved is not None:
        held = {state.channel.channel: state.channel for state in states}
        expected = {c.channel - 1: _as_on_the_wire(c, modality) for c in approved.plan.channels}
        assert held == expected
