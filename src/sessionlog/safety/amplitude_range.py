"""Amplitude ranges: which amplitudes of one channel every layer accepts, found by the layers.

A live change alters one channel's amplitude and nothing else, and comes many times a second.
Every check that reads an amplitude is a bound that the amplitude (or a dose figure growing with
it) must stay on one side of, plus the device's amplitude step. So with the rest of the plan and
its context fixed, the amplitudes of a channel that pass every layer without a finding are zero
(or not), and the multiples of the step between a floor and a ceiling. The engine finds that floor
and ceiling once per channel by asking its own checks (a binary search either side of an amplitude
known to pass), and a live change inside them is then known to pass without running the checks
again; one outside them is judged by the checks, which also word the refusal. A check that broke
this shape (a window in the middle of the range, a second step) would make the search wrong, so
``tests/safety/test_amplitude_range.py`` holds ranges to full approvals on both sides of each edge
and at random amplitudes, over generated plans and every combination of layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sessionlog.safety.screening import ContraindicationOverride

if TYPE_CHECKING:
    from sessionlog.safety.verdict import ApprovedPlan


@dataclass(frozen=True, slots=True)
class AmplitudeRange:
    """The amplitudes of one channel that pass every layer with no violation and no warning."""

    zero_passes: bool
    floor_ua: int
    """The smallest amplitude above zero that passes (a multiple of ``step_ua``)."""
    ceiling_ua: int
    """The largest amplitude that passes; below ``floor_ua`` when none above zero does."""
    step_ua: int

    @property
    def above_zero(self) -> bool:
        """Whether any amplitude above zero is in the range."""
        return self.floor_ua <= self.ceiling_ua

    def admits(self, amplitude_ua: int) -> bool:
        if amplitude_ua == 0:
            return self.zero_passes
        return self.floor_ua <= amplitude_ua <= self.ceiling_ua and amplitude_ua % self.step_ua == 0


def highest_passing(lowest: int, highest: int, step: int, passes: Callable[[int], bool]) -> int:
    """The largest multiple of ``step`` in [lowest, highest] that ``passes``, given that ``lowest``
    passes and that passing, once lost as the value grows, does not come back (a binary search)."""
    low, high = lowest // step, highest // step
    while low < high:
        middle = (low + high + 1) // 2
        if passes(middle * step):
            low = middle
        else:
            high = middle - 1
    return low * step


def search_range(
    passes: Callable[[int], bool], *, anchor_ua: int, step_ua: int, max_ua: int
) -> AmplitudeRange:
    """The range around ``anchor_ua``, a multiple of ``step_ua`` above zero known to pass
    (without one, only zero may be in it: every other change is then judged by the checks).

    ``passes(amplitude)`` runs every amplitude check of every layer. Above zero, the amplitudes
    that fail lie below some floor (lower bounds) or above some ceiling (upper bounds), or off
    the step, so a binary search over the multiples of the step finds each edge in about
    log2(max_ua / step_ua) calls.
    """
    if anchor_ua <= 0 or anchor_ua % step_ua or not passes(anchor_ua):
        # No amplitude above zero is known to pass, so there is no side to search from.
        return AmplitudeRange(zero_passes=passes(0), floor_ua=1, ceiling_ua=0, step_ua=step_ua)
    ceiling_ua = highest_passing(anchor_ua, max_ua, step_ua, passes)
    # The smallest multiple of the step above zero that passes, up to the anchor.
    low, high = 1, anchor_ua // step_ua
    while low < high:
        middle = (low + high) // 2
        if passes(middle * step_ua):
            high = middle
        else:
            low = middle + 1
    return AmplitudeRange(
        zero_passes=passes(0), floor_ua=low * step_ua, ceiling_ua=ceiling_ua, step_ua=step_ua
    )


class LiveChangeContext:
    """What the live changes of one approval share: the plan's context as the engine judged it
    (the same layers, capabilities, site policy, client and overrides, no warning), and the
    range of each channel, searched for when the channel is first changed.

    An approved live change inside its channel's range alters nothing else the ranges of
    the other channels depend on, so it carries this same context on to its own changes. The
    ranges are found only by the search the engine hands over and only for an approval of this
    very context: nothing outside the engine can put a range in.
    """

    __slots__ = ("_overrides", "_ranges", "_search", "_step_ua")

    def __init__(
        self,
        overrides: tuple[ContraindicationOverride, ...],
        step_ua: int,
        search: Callable[[ApprovedPlan, int], AmplitudeRange],
    ) -> None:
        self._overrides = overrides
        self._step_ua = step_ua
        self._search = search
        self._ranges: dict[int, AmplitudeRange] = {}

    @property
    def overrides(self) -> tuple[ContraindicationOverride, ...]:
        return self._overrides

    @property
    def step_ua(self) -> int:
        return self._step_ua

    def range_of(self, approved: ApprovedPlan, index: int) -> AmplitudeRange:
        """The range of channel ``index``, searched for around ``approved`` the first time.
        Two threads that search at once find the same range, so either may be kept."""
        found = self._ranges.get(index)
        if found is None:
            if approved._live_changes is not self:
                raise ValueError("the approval is not one of this context's")
            found = self._ranges[index] = self._search(approved, index)
        return found
