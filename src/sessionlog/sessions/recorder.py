"""The durable record of a live session: events and telemetry, written at least once a second.

Telemetry arrives on a driver's reader thread and is only appended to a buffer there; a flush thread
packs it into one block per channel per flush (DESIGN.md §5) and writes blocks and events in one
transaction. When the database cannot be written, the batch goes to an append-only spool file in the
data folder (fsynced, one JSON document per line) and is replayed, in order, as soon as a write
succeeds again. Every block and event carries a per-session sequence number and is inserted with
"on conflict do nothing", so a replay after a crash between the write and the spool clean-up never
duplicates a row. Memory stays bounded: past ``max_buffered_samples`` the buffer is flushed to the
spool at once instead of growing.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import sys
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

import sessionlog.store.models  # noqa: F401  (registers the tables)
from sessionlog.hal import TelemetryReading

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.5
MAX_BUFFERED_SAMPLES = 50_000
EVENTS: Table = SQLModel.metadata.tables["session_event"]
BLOCKS: Table = SQLModel.metadata.tables["telemetry_block"]


def pack_int32(values: list[int]) -> bytes:
    """Little-endian int32s, whatever the host's byte order."""
    packed = array("i", values)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts only
        packed.byteswap()
    return packed.tobytes()


def unpack_int32(data: bytes) -> list[int]:
    values = array("i")
    values.frombytes(data)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts only
        values.byteswap()
    return values.tolist()


@dataclass
class _ChannelBuffer:
    times: list[datetime] = field(default_factory=list)
    current_ua: list[int] = field(default_factory=list)
    impedance_ohm: list[int] = field(default_factory=list)


@dataclass
class RecorderStats:
    blocks_written: int = 0
    events_written: int = 0
    samples_received: int = 0
    batches_spooled: int = 0
    batches_replayed: int = 0
    write_failures: int = 0
    last_error: str | None = None


def _insert_ignoring_duplicates(engine: Engine, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = engine.dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).on_conflict_do_nothing(
            index_elements=["session_id", "seq"]
        )
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing(
            index_elements=["session_id", "seq"]
        )
    else:  # pragma: no cover - only the two supported engines reach here
        statement = insert(table)
    with engine.begin() as connection:
        connection.execute(statement, rows)


class SessionRecorder:
    """Buffers, writes and, when the database is away, spools one session's events and telemetry."""

    def __init__(
        self,
        engine: Engine,
        session_id: int,
        *,
        spool_dir: Path,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        max_buffered_samples: int = MAX_BUFFERED_SAMPLES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self.session_id = session_id
        self._spool_path = spool_dir / f"session-{session_id}.jsonl"
        spool_dir.mkdir(parents=True, exist_ok=True)
        self._flush_interval_s = flush_interval_s
        self._max_buffered = max_buffered_samples
        self._clock = clock
        self._wall_at_start = datetime.now(UTC)
        self._mono_at_start = clock()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._buffers: dict[int, _ChannelBuffer] = {}
        self._buffered = 0
        self._events: list[dict[str, Any]] = []
        self._seq = itertools.count(self._next_free_seq())
        self._closed = threading.Event()
        self._wake = threading.Event()
        self.stats = RecorderStats()
        self._thread = threading.Thread(
            target=self._flush_loop, name=f"recorder-{session_id}", daemon=True
        )
        self._thread.start()

    def _next_free_seq(self) -> int:
        """Continue after the highest sequence number already written or spooled."""
        highest = 0
        try:
            with self._engine.connect() as connection:
                for table in (EVENTS, BLOCKS):
                    found = connection.execute(
                        select(func.max(table.c.seq)).where(table.c.session_id == self.session_id)
                    ).scalar()
                    if found is not None:
                        highest = max(highest, int(found) + 1)
        except SQLAlchemyError as error:
            logger.warning(
                "session %s: could not read sequence numbers: %s", self.session_id, error
            )
        for batch in self._read_spool():
            for row in batch["events"] + batch["blocks"]:
                highest = max(highest, int(row["seq"]) + 1)
        return highest

    # -------------------------------------------------------------------- producers

    def wall_time(self, monotonic_s: float) -> datetime:
        return self._wall_at_start + timedelta(seconds=monotonic_s - self._mono_at_start)

    def telemetry(self, reading: TelemetryReading) -> None:
        """Take one reading (called on the driver's reader thread: cheap, never blocks on I/O)."""
        with self._lock:
            buffer = self._buffers.setdefault(reading.channel, _ChannelBuffer())
            buffer.times.append(self.wall_time(reading.received_at))
            buffer.current_ua.append(reading.current_ua)
            buffer.impedance_ohm.append(reading.impedance_ohm)
            self._buffered += 1
            self.stats.samples_received += 1
            overflowing = self._buffered >= self._max_buffered
        if overflowing:
            self._wake.set()

    def event(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        actor_id: int | None = None,
        occurred_at: datetime | None = None,
        flush: bool = True,
    ) -> None:
        """Append an event; by default it is written (or spooled) before this returns."""
        with self._lock:
            self._events.append(
                {
                    "seq": next(self._seq),
                    "session_id": self.session_id,
                    "kind": kind,
                    "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
                    "recorded_at": datetime.now(UTC).isoformat(),
                    "actor_id": actor_id,
                    "payload": payload,
                }
            )
        if flush:
            self.flush()

    # -------------------------------------------------------------------- writing

    def _take_batch(self) -> dict[str, Any] | None:
        with self._lock:
            events, self._events = self._events, []
            buffers, self._buffers = self._buffers, {}
            self._buffered = 0
            blocks = []
            for channel in sorted(buffers):
                buffer = buffers[channel]
                t0 = buffer.times[0]
                offsets = [round((t - t0).total_seconds() * 1000) for t in buffer.times]
                blocks.append(
                    {
                        "seq": next(self._seq),
                        "session_id": self.session_id,
                        "channel": channel,
                        "t0": t0.isoformat(),
                        "n": len(offsets),
                        "offsets_ms": _b64(pack_int32(offsets)),
                        "current_ua": _b64(pack_int32(buffer.current_ua)),
                        "impedance_ohm": _b64(pack_int32(buffer.impedance_ohm)),
                    }
                )
        if not events and not blocks:
            return None
        return {"events": events, "blocks": blocks}

    def flush(self) -> None:
        """Write what is pending (after any spooled batches, in order); spool it if that fails."""
        with self._write_lock:
            batch = self._take_batch()
            spooled = self._read_spool()
            if not spooled and batch is None:
                return
            try:
                for old in spooled:
                    self._write(old)
                if spooled:
                    self._spool_path.unlink()
                    self.stats.batches_replayed += len(spooled)
                    logger.info(
                        "session %s: %d spooled batches written", self.session_id, len(spooled)
                    )
                if batch is not None:
                    self._write(batch)
            except SQLAlchemyError as error:
                self.stats.write_failures += 1
                self.stats.last_error = f"{type(error).__name__}: {error}".splitlines()[0]
                if batch is not None:
                    self._spool(batch)
                logger.warning(
                    "session %s: database write failed, spooled to %s: %s",
                    self.session_id,
                    self._spool_path,
                    self.stats.last_error,
                )

    def _write(self, batch: dict[str, Any]) -> None:
        events = [
            {
                **event,
                "occurred_at": datetime.fromisoformat(event["occurred_at"]),
                "recorded_at": datetime.fromisoformat(event["recorded_at"]),
            }
            for event in batch["events"]
        ]
        blocks = [
            {
                **block,
                "t0": datetime.fromisoformat(block["t0"]),
                "offsets_ms": base64.b64decode(block["offsets_ms"]),
                "current_ua": base64.b64decode(block["current_ua"]),
                "impedance_ohm": base64.b64decode(block["impedance_ohm"]),
            }
            for block in batch["blocks"]
        ]
        _insert_ignoring_duplicates(self._engine, EVENTS, events)
        _insert_ignoring_duplicates(self._engine, BLOCKS, blocks)
        self.stats.events_written += len(events)
        self.stats.blocks_written += len(blocks)

    def _spool(self, batch: dict[str, Any]) -> None:
        with self._spool_path.open("a", encoding="utf-8") as spool:
            spool.write(json.dumps(batch, separators=(",", ":")) + "\n")
            spool.flush()
            os.fsync(spool.fileno())
        self.stats.batches_spooled += 1

    def _read_spool(self) -> list[dict[str, Any]]:
        if not self._spool_path.exists():
            return []
        batches = []
        with self._spool_path.open(encoding="utf-8") as spool:
            for line in spool:
                line = line.strip()
                if not line:
                    continue
                try:
                    batches.append(json.loads(line))
                except json.JSONDecodeError:
                    # A line cut short by a crash mid-write: everything before it is whole.
                    logger.error(
                        "session %s: a torn line in %s is skipped",
                        self.session_id,
                        self._spool_path,
                    )
        return batches

    @property
    def has_spooled_data(self) -> bool:
        return self._spool_path.exists()

    # -------------------------------------------------------------------- lifecycle

    def _flush_loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self._flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                logger.exception("session %s: recorder flush failed", self.session_id)

    def close(self) -> None:
        """Write everything that is pending; safe to call twice."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
