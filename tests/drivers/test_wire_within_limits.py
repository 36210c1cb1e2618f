"""End to end property: whatever plan and live changes are asked for, nothing outside any layer's
limits ever reaches the device.

Each example opens the simulated device (its own hardware limits drawn too), approves a generated
plan against the standard profile, the device, a site policy and a client prescription, runs it, and
asks for a random sequence of intensity changes, each re-approved. The emulator's log of decoded
commands is then checked against every layer with plain comparisons.
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sessionlog.hal import open_device
from sessionlog.safety import (
    ClientContext,
    LimitsEngine,
    Modality,
    ModalityPolicy,
    Prescription,
    SitePolicy,
    StimulationPlan,
)
from sessionlog_drivers.simulated import protocol as wire

ENGINE = LimitsEngine()
STANDARD_MAX_UA = {Modality.EMS: 120_000, Modality.MICROCURRENT: 999}


def _mostly(
    typical: st.SearchStrategy[int], anything: st.SearchStrategy[int]
) -> st.SearchStrategy[int]:
    """Typical values four times in five, so that many plans are approved and changes are tried."""
    return st.integers(0, 4).flatmap(lambda pick: anything if pick == 0 else typical)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    modality = draw(st.sampled_from([Modality.EMS, Modality.MICROCURRENT]))
    scale = 1000 if modality is Modality.EMS else 1
    top = 140 if modality is Modality.EMS else 1_500
    amplitude = _mostly(st.integers(0, top // 3), st.integers(0, top)).map(lambda v: v * scale)
    ceiling = st.one_of(
        st.none(), _mostly(st.integers(top // 4, top), st.integers(0, top)).map(lambda v: v * scale)
    )
    channels = draw(st.integers(1, 3))
    plan = {
        "modality": modality,
        "duration_s": draw(_mostly(st.integers(60, 3600), st.integers(60, 4000))),
        "electrode": {
            "body_site": draw(
                _mostly(st.just("calf"), st.sampled_from(["face", "lower_back", "eyes"]))
            ),
            "area_cm2": draw(st.sampled_from([2.0, 25.0, 50.0, 80.0])),
        },
        "channels": [
            {
                "channel": number,
                "amplitude_ua": draw(amplitude),
                "pulse_width_us": draw(_mostly(st.integers(20, 400), st.integers(10, 700))),
                "frequency_hz": draw(_mostly(st.integers(1, 100), st.integers(1, 160))),
            }
            for number in range(1, channels + 1)
        ],
    }
    return {
        "plan": plan,
        "device_max_ua": draw(_mostly(st.integers(top // 2, top), st.integers(1, top))) * scale,
        "site_max_ua": draw(ceiling),
        "prescribed_max_ua": draw(ceiling),
        "changes": draw(st.lists(st.tuples(st.integers(1, channels), amplitude), max_size=6)),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_nothing_outside_any_layer_reaches_the_wire(scenario: dict[str, object]) -> None:
    plan = StimulationPlan.model_validate(scenario["plan"])
    modality = plan.modality
    device_max = int(scenario["device_max_ua"])  # type: ignore[call-overload]
    site_max = scenario["site_max_ua"]
    prescribed_max = scenario["prescribed_max_ua"]
    limit_key = "ems_max_ua" if modality is Modality.EMS else "microcurrent_max_ua"
    policy = SitePolicy.model_validate(
        {modality.value: ModalityPolicy.model_validate({"max_amplitude_ua": site_max})}
    )
    client = ClientContext(prescription=Prescription(max_amplitude_ua=prescribed_max))  # type: ignore[arg-type]
    ceiling = min(
        STANDARD_MAX_UA[modality],
        device_max,
        *(v for v in (site_max, prescribed_max) if isinstance(v, int)),
    )

    with open_device(
        f"sim://?channels=3&seed=5&{limit_key}={device_max}", driver="simulated"
    ) as device:
        verdict = ENGINE.approve(
            plan, capabilities=device.capabilities, site_policy=policy, client=client
        )
        emulator = device.transport.port.emulator  # type: ignore[attr-defined]
        if verdict.approved_plan is not None:
            approved = verdict.approved_plan
            device.apply(approved)
            device.start()
            for channel, amplitude_ua in scenario["changes"]:  # type: ignore[attr-defined]
                change = ENGINE.approve_change(approved, channel=channel, amplitude_ua=amplitude_ua)
                if change.approved_plan is not None:
                    device.set_amplitude(change.approved_plan, channel)
                    approved = change.approved_plan
            device.stop()
        log = list(emulator.command_log)
    event("approved" if verdict.approved_plan is not None else "refused")
    event(f"amplitude commands: {sum(isinstance(e.message, wire.SetAmplitude) for e in log) > 0}")

    if verdict.approved_plan is None:
        assert verdict.violations or any(not w.acknowledged for w in verdict.warnings)
    for entry in log:
        message = entry.message
        if isinstance(message, wire.ConfigureChannel | wire.SetAmplitude):
            assert message.amplitude_ua <= ceiling, (message, ceiling)
        if isinstance(message, wire.ConfigureChannel):
            if modality is Modality.EMS:
                assert 20 <= message.pulse_width_us <= 600
                assert 1_000 <= message.frequency_millihz <= 150_000
            assert plan.electrode.body_site != "eyes"
