"""The contract fails drivers with the defects it exists to catch: each driver below is the
simulated driver with one defect, registered through an entry point of a scratch distribution and
run through the plugin as a third-party driver would be, and the named check fails with a message
that says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.helpers import PLUGIN, run_pytest

DEFECTS = """
import dataclasses

from sessionlog_drivers.simulated.driver import SimulatedDriver


def _renumbered(plan, number):
    channels = [c.model_copy(update={"channel": number(c)}) for c in plan.channels]
    return plan.model_copy(update={"channels": channels})


class SwappedChannels(SimulatedDriver):
    name = "d_swapped"

    def _apply(self, plan):
        super()._apply(_renumbered(plan, lambda c: {1: 2, 2: 1}.get(c.channel, c.channel)))


class FirstChannelCopied(SimulatedDriver):
    name = "d_copied"

    def _apply(self, plan):
        first = plan.channels[0].amplitude_ua
        channels = [c.model_copy(update={"amplitude_ua": first}) for c in plan.channels]
        super()._apply(plan.model_copy(update={"channels": channels}))


class ChangeOnChannelOne(SimulatedDriver):
    name = "d_change_one"

    def _set_amplitude(self, plan, channel, amplitude_ua):
        super()._set_amplitude(plan, 1, amplitude_ua)


class StopNotConfirmed(SimulatedDriver):
    name = "d_stop_unconfirmed"

    def _emergency_stop_reply_key(self):
        return None


class GarbageSwallowed(SimulatedDriver):
    name = "d_swallowed"

    def _decode(self, data):
        try:
            return super()._decode(data)
        except Exception:
            return []
        finally:
            self.counters.malformed_frames = 0


class MicrocurrentHalved(SimulatedDriver):
    name = "d_microcurrent_halved"

    def _apply(self, plan):
        if plan.modality == "microcurrent":
            channels = [c.model_copy(update={"amplitude_ua": c.amplitude_ua // 2}) for c in plan.channels]
            plan = plan.model_copy(update={"channels": channels})
        super()._apply(plan)


def _each_channel(plan, **fields):
    channels = [c.model_copy(update={k: f(c) for k, f in fields.items()}) for c in plan.channels]
    return plan.model_copy(update={"channels": channels})


class HalfPulseWidth(SimulatedDriver):
    name = "d_half_width"

    def _apply(self, plan):
        super()._apply(_each_channel(plan, pulse_width_us=lambda c: c.pulse_width_us // 2))


class DoubleFrequency(SimulatedDriver):
    name = "d_double_frequency"

    def _apply(self, plan):
        super()._apply(_each_channel(plan, frequency_hz=lambda c: c.frequency_hz * 2))


class AsymmetricPhases(SimulatedDriver):
    name = "d_asymmetric"

    def _apply(self, plan):
        super()._apply(_each_channel(plan, phase_type=lambda c: "biphasic_asymmetric"))


class TelemetryIgnored(SimulatedDriver):
    name = "d_telemetry_ignored"

    def _decode(self, data):
        return [m for m in super()._decode(data) if type(m).__name__ != "TelemetryReading"]


class TelemetryZeroBased(SimulatedDriver):
    name = "d_telemetry_zero_based"

    def _decode(self, data):
        return [
            dataclasses.replace(m, channel=m.channel - 1)
            if type(m).__name__ == "TelemetryReading"
            else m
            for m in super()._decode(data)
        ]


class ExtraChannels(SimulatedDriver):
    name = "d_extra_channels"

    def _device_capabilities(self, identity):
        capabilities = super()._device_capabilities(identity)
        return capabilities.model_copy(update={"channel_count": capabilities.channel_count + 2})
"""

ENTRY_POINTS = {
    "d_swapped": "SwappedChannels",
    "d_copied": "FirstChannelCopied",
    "d_change_one": "ChangeOnChannelOne",
    "d_stop_unconfirmed": "StopNotConfirmed",
    "d_swallowed": "GarbageSwallowed",
    "d_extra_channels": "ExtraChannels",
    "d_microcurrent_halved": "MicrocurrentHalved",
    "d_half_width": "HalfPulseWidth",
    "d_double_frequency": "DoubleFrequency",
    "d_asymmetric": "AsymmetricPhases",
    "d_telemetry_ignored": "TelemetryIgnored",
    "d_telemetry_zero_based": "TelemetryZeroBased",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the defective drivers and a distribution registering them."""
    site = tmp_path_factory.mktemp("defects")
    (site / "defective_drivers.py").write_text(DEFECTS)
    dist_info = site / "defective_drivers-0.0.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: defective-drivers\n")
    (dist_info / "entry_points.txt").write_text(
        "[sessionlog.drivers]\n"
        + "".join(f"{name} = defective_drivers:{cls}\n" for name, cls in ENTRY_POINTS.items())
    )
    return site


@pytest.mark.parametrize(
    ("driver", "check", "message"),
    [
        (
            "d_swapped",
            "test_start_delivers_exactly_the_approved_plan",
            "delivered µA per channel {1: 25001, 2: 20001}, planned {1: 20001, 2: 25001}",
        ),
        (
            "d_copied",
            "test_start_delivers_exactly_the_approved_plan",
            "delivered µA per channel {1: 20001, 2: 20001}, planned {1: 20001, 2: 25001}",
        ),
        (
            "d_change_one",
            "test_a_re_approved_live_change_is_delivered",
            "after changing channel 2",
        ),
        (
            "d_stop_unconfirmed",
            "test_an_emergency_stop_is_confirmed_by_the_device",
            "_emergency_stop_reply_key returns None",
        ),
        (
            "d_swallowed",
            "test_a_broken_link_ends_with_output_stopped[garbage]",
            "without counting a single malformed frame",
        ),
        (
            "d_extra_channels",
            "test_start_delivers_exactly_the_approved_plan",
            "the driver declares 4 channels, but the device has no channel 3",
        ),
        (
            "d_microcurrent_halved",
            "test_every_other_declared_modality_is_delivered_exactly",
            "in a microcurrent plan",
        ),
        (
            "d_half_width",
            "test_start_delivers_exactly_the_approved_plan",
            "channel 1: delivered 150 µs at 40 Hz, biphasic_symmetric, planned 300 µs at 40 Hz",
        ),
        (
            "d_double_frequency",
            "test_start_delivers_exactly_the_approved_plan",
            "channel 1: delivered 300 µs at 80 Hz, biphasic_symmetric, planned 300 µs at 40 Hz",
        ),
        (
            "d_asymmetric",
            "test_start_delivers_exactly_the_approved_plan",
            "delivered 300 µs at 40 Hz, biphasic_asymmetric, planned 300 µs at 40 Hz, "
            "biphasic_symmetric",
        ),
        (
            "d_telemetry_ignored",
            "test_the_device_s_measured_current_reaches_the_driver",
            "the driver's latest_telemetry() holds {}",
        ),
        (
            "d_telemetry_zero_based",
            "test_the_device_s_measured_current_reaches_the_driver",
            "the driver's latest_telemetry() holds {0: ",
        ),
    ],
)
def test_the_contract_fails_a_driver_with_the_defect(
    site: Path, tmp_path: Path, driver: str, check: str, message: str
) -> None:
    outcome = run_pytest(
        tmp_path,
        "-p",
        PLUGIN,
        "--sessionlog-driver",
        driver,
        "--tb=short",
        "-k",
        check.removeprefix("test_").split("[")[0],
        python_path=[site],
    )
    assert outcome.returncode == 1, outcome.output
    assert check in outcome.failed, outcome.output
    assert message in outcome.output, outcome.output
