"""Reading a session's stored telemetry back as plot-ready arrays.

Blocks are unpacked in the order they were recorded and, when a channel has more samples than the
caller wants to draw, averaged into equal-count buckets, so a one-hour session comes back as a few
hundred points per channel without the caller seeing the block layout. Telemetry belongs to the
session's whole chain of versions: a live session records it on its first version, and a correction
of that session (a new version) shows the same telemetry.
"""

from __future__ import annotations

import itertools
import statistics
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from sessionlog.safety import ChannelPlan
from sessionlog.safety.dose import channel_dose
from sessionlog.sessions.recorder import unpack_int32
from sessionlog.store.chains import chain_versions
from sessionlog.store.models import SessionChannel, SessionEvent, TelemetryBlock


def _downsample(values: list[float], max_points: int) -> list[float]:
    if len(values) <= max_points:
        return values
    size = len(values) / max_points
    out = []
    for index in range(max_points):
        bucket = values[round(index * size) : round((index + 1) * size)]
        out.append(sum(bucket) / len(bucket))
    return out


def series(db: Session, session_id: int, *, max_points: int) -> list[dict[str, Any]]:
    blocks = db.exec(
        select(TelemetryBlock)
        .where(col(TelemetryBlock.session_id).in_(chain_versions(db, session_id)))
        .order_by(col(TelemetryBlock.session_id), col(TelemetryBlock.seq))
    ).all()
    if not blocks:
        return []
    start: datetime = min(block.t0 for block in blocks)
    channels: dict[int, dict[str, list[float]]] = {}
    for block in blocks:
        data = channels.setdefault(
            block.channel, {"t_s": [], "current_ua": [], "impedance_ohm": []}
        )
        base_s = (block.t0 - start).total_seconds()
        data["t_s"] += [base_s + offset / 1000 for offset in unpack_int32(block.offsets_ms)]
        data["current_ua"] += [float(v) for v in unpack_int32(block.current_ua)]
        data["impedance_ohm"] += [float(v) for v in unpack_int32(block.impedance_ohm)]
    return [
        {
            "channel": channel,
            "samples": len(data["t_s"]),
            **{name: _downsample(values, max_points) for name, values in data.items()},
        }
        for channel, data in sorted(channels.items())
    ]


LAST_BLOCKS_READ = 64
"""Blocks read to find a session's last sample: the newest of each channel is among them, since a
flush writes at most one block per channel and a plan has at most 64 channels."""


def last_recorded_at(db: Session, session_id: int) -> datetime | None:
    """The time of a session's last event or telemetry sample, or None if it has neither.

    Where a session that a dead process left open can be said to have ended: its output stopped
    within the device's watchdog time of it. Its own rows only (a live session records on the
    version it runs as).
    """
    last_event = db.exec(
        select(func.max(SessionEvent.occurred_at)).where(SessionEvent.session_id == session_id)
    ).one()
    newest_blocks = db.exec(
        select(TelemetryBlock.t0, TelemetryBlock.offsets_ms)
        .where(TelemetryBlock.session_id == session_id)
        .order_by(col(TelemetryBlock.seq).desc())
        .limit(LAST_BLOCKS_READ)
    ).all()
    moments = [last_event] if last_event is not None else []
    moments += [
        t0 + timedelta(milliseconds=max(unpack_int32(offsets))) for t0, offsets in newest_blocks
    ]
    return max(moments, default=None)


def delivered_from_telemetry(db: Session, session_id: int) -> tuple[float, float] | None:
    """(charge in µC, on-time in s) a session delivered by its measured current, or None without
    telemetry: the dose of a session whose runner died with the process and never counted it.

    Each sample's current holds until the next sample of its channel (for at most twice the
    channel's usual interval, so a gap in the record adds nothing) and delivers it at the
    channel's duty fraction; the last sample, whose end is unknown, adds nothing. The on-time is
    that of the channel on longest, as the planned figure is.
    """
    rows = db.exec(select(SessionChannel).where(SessionChannel.session_id == session_id)).all()
    duty = {
        row.channel: channel_dose(
            ChannelPlan.model_validate(row.model_dump(exclude={"id", "session_id"})),
            area_cm2=1.0,
            duration_s=1.0,
        ).duty_fraction
        for row in rows
    }
    blocks = db.exec(
        select(TelemetryBlock)
        .where(TelemetryBlock.session_id == session_id)
        .order_by(col(TelemetryBlock.seq))
    ).all()
    if not blocks:
        return None
    samples: dict[int, list[tuple[float, int]]] = {}
    start = min(block.t0 for block in blocks)
    for block in blocks:
        base_s = (block.t0 - start).total_seconds()
        samples.setdefault(block.channel, []).extend(
            (base_s + offset / 1000, current)
            for offset, current in zip(
                unpack_int32(block.offsets_ms), unpack_int32(block.current_ua), strict=True
            )
        )
    charge_uc, on_time_s = 0.0, 0.0
    for channel, readings in samples.items():
        readings.sort()
        gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(readings)]
        if not gaps:
            continue
        longest_hold = 2 * statistics.median(gaps)
        held = [
            (current, min(gap, longest_hold))
            for (_, current), gap in zip(readings[:-1], gaps, strict=True)
        ]
        charge_uc += duty.get(channel, 1.0) * sum(current * span for current, span in held)
        on_time_s = max(on_time_s, sum(span for current, span in held if current > 0))
    return charge_uc, on_time_s
