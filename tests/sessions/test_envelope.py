"""Ramps and duty cycles as one envelope over the session's running time."""

from __future__ import annotations

import pytest

from sessionlog.safety import ChannelPlan
from sessionlog.sessions.runner import envelope


def channel(**fields: float) -> ChannelPlan:
    return ChannelPlan.model_validate(
        {"channel": 1, "amplitude_ma": 20, "pulse_width_us": 300, "frequency_hz": 35, **fields}
    )


@pytest.mark.parametrize(
    ("elapsed_s", "level"),
    [(0.0, 0.0), (1.0, 0.5), (2.0, 1.0), (50.0, 1.0), (58.0, 0.5), (59.0, 0.25), (60.0, 0.0)],
)
def test_continuous_output_ramps_up_at_start_and_down_before_the_end(
    elapsed_s: float, level: float
) -> None:
    assert envelope(channel(ramp_up_s=2, ramp_down_s=4), elapsed_s, 60) == pytest.approx(level)


@pytest.mark.parametrize(
    ("elapsed_s", "level"),
    [
        (0.0, 0.0),
        (0.5, 0.5),
        (1.0, 1.0),
        (4.5, 0.5),
        (5.0, 0.0),
        (7.9, 0.0),
        (8.5, 0.5),
        (9.0, 1.0),
    ],
)
def test_duty_cycle_ramps_within_each_on_period_and_is_silent_when_off(
    elapsed_s: float, level: float
) -> None:
    duty = channel(on_time_s=5, off_time_s=3, ramp_up_s=1, ramp_down_s=1)
    assert envelope(duty, elapsed_s, 600) == pytest.approx(level)


def test_without_ramps_output_is_full_until_the_planned_end() -> None:
    assert envelope(channel(), 0.0, 10) == 1.0
    assert envelope(channel(), 9.99, 10) == 1.0
    assert envelope(channel(), 10.0, 10) == 0.0
