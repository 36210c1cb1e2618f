"""The durable record of a live session: events and telemetry, written at least once a second.

Telemetry arrives on the thread reading the driver's port and is only appended to a buffer there; a
flush thread packs it into one block per channel per flush (DESIGN.md §5) and writes blocks, events
and the session row's changes in one transaction. When the database cannot be written, the batch
goes to an append-only spool file in the data folder (fsynced, one JSON document per line) and is
replayed, in order, as soon as a write succeeds again. Every block and event carries a per-session
sequence number and is inserted with "on conflict do nothing", and a row change applies only while
the session is open, so a replay after a crash between the write and the spool clean-up never
duplicates or undoes anything. Memory stays bounded: past ``max_buffered_samples`` the buffer is
flushed to the spool at once instead of growing.

One bad telemetry sample (a value that is not an int32, as the packed block stores it) is refused on
its own, counted in ``RecorderStats.samples_refused`` and logged; the rest of the batch, its events
and its session-row changes are written as usual. Any failure of a write, not only a database error,
sends the batch to the spool; if even the spool cannot be written, the batch is held in memory and
retried first at the next flush, so a batch taken from the buffers is never dropped.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import math
import os
import sys
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Dialect, Engine, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.types import TypeEngine
from sqlmodel import SQLModel

import sessionlog.store.models  # noqa: F401  (registers the tables)
from sessionlog.hal import TelemetryReading

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.5
MAX_BUFFERED_SAMPLES = 50_000
MAX_SPOOL_RETRY_S = 10.0
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
EVENTS: Table = SQLModel.metadata.tables["session_event"]
BLOCKS: Table = SQLModel.metadata.tables["telemetry_block"]
SESSIONS: Table = SQLModel.metadata.tables["session"]
OPEN_STATUSES = ("planned", "running", "paused")
"""A session in one of these states has not ended; its row may still change."""


def pack_int32(values: list[int]) -> bytes:
    """Little-endian int32s, whatever the host's byte order."""
    packed = array("i", values)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts only
        packed.byteswap()
    return packed.tobytes()


def fits_int32(value: object) -> bool:
    """Whether ``value`` can be stored in a packed block: an int (not a bool) within int32."""
    return (
        isinstance(value, int) and not isinstance(value, bool) and INT32_MIN <= value <= INT32_MAX
    )


def unpack_int32(data: bytes) -> list[int]:
    values = array("i")
    values.frombytes(data)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts only
        values.byteswap()
    return values.tolist()


@dataclass
class RecorderStats:
    blocks_written: int = 0
    events_written: int = 0
    samples_received: int = 0
    samples_refused: int = 0
    """Samples not stored because a value cannot be packed (not an int32, or no valid time)."""
    batches_spooled: int = 0
    batches_held: int = 0
    """Batches in memory now because neither the database nor the spool could be written."""
    batches_replayed: int = 0
    write_failures: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class _Prepared:
    """A statement compiled once per dialect and parameter set, run on the DB-API cursor.

    A flush writes a handful of rows many times a second for every running session, and building
    SQLAlchemy's execution context for each write costs more than the write itself. The SQL and
    the type conversions still come from SQLAlchemy (the dialect's ``on conflict do nothing``, each
    column's bind processor), so the stored values are exactly what an ORM write stores.
    """

    sql: str
    keys: tuple[str, ...]
    positional: bool
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def compile(
        cls, statement: Any, dialect: Dialect, types: Mapping[str, TypeEngine[Any]]
    ) -> _Prepared:
        compiled = statement.compile(dialect=dialect)
        positional = compiled.positiontup is not None
        keys = tuple(compiled.positiontup) if positional else tuple(compiled.params)
        processors = tuple(
            types[key].dialect_impl(dialect).bind_processor(dialect) if key in types else None
            for key in keys
        )
        return cls(str(compiled), keys, positional, processors)

    def parameters(self, rows: list[dict[str, Any]]) -> list[Any]:
        pairs = tuple(zip(self.keys, self.processors, strict=True))
        converted = [
            [(process(row[key]) if process else row[key]) for key, process in pairs] for row in rows
        ]
        if self.positional:
            return [tuple(values) for values in converted]
        return [dict(zip(self.keys, values, strict=True)) for values in converted]


_PREPARED: dict[tuple[str, str, tuple[str, ...]], _Prepared] = {}


def _prepared(
    name: str, dialect: Dialect, keys: tuple[str, ...], build: Callable[[], _Prepared]
) -> _Prepared:
    cache_key = (name, dialect.name, keys)
    found = _PREPARED.get(cache_key)
    if found is None:
        found = _PREPARED[cache_key] = build()
    return found


def _insert_ignoring_duplicates(
    cursor: Any, dialect: Dialect, table: Table, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return

    def build() -> _Prepared:
        statement: Any
        if dialect.name == "postgresql":
            statement = postgresql.insert(table).on_conflict_do_nothing(
                index_elements=["session_id", "seq"]
            )
        elif dialect.name == "sqlite":
            statement = sqlite.insert(table).on_conflict_do_nothing(
                index_elements=["session_id", "seq"]
            )
        else:  # pragma: no cover - only the two supported engines reach here
            statement = insert(table)
        statement = statement.values({key: bindparam(key) for key in rows[0]})
        return _Prepared.compile(statement, dialect, {c.key: c.type for c in table.columns})

    prepared = _prepared(table.name, dialect, tuple(rows[0]), build)
    cursor.executemany(prepared.sql, prepared.parameters(rows))


def _update_open_session(
    cursor: Any, dialect: Dialect, session_id: int, values: dict[str, Any]
) -> None:
    """Change the session row only while it is still open, so a replay is harmless.

    The first start time is never overwritten. Once a session has ended its row is final (the
    database refuses any change), and a replayed state change of an ended session does nothing.
    """
    keys = tuple(sorted(values))

    def build() -> _Prepared:
        assignments = {
            key: (
                func.coalesce(SESSIONS.c[key], bindparam(key))
                if key == "started_at"
                else bindparam(key)
            )
            for key in keys
        }
        statement = (
            update(SESSIONS)
            .where(
                SESSIONS.c.id == bindparam("where_session_id"),
                SESSIONS.c.status.in_(
                    [bindparam(f"where_open_{i}") for i in range(len(OPEN_STATUSES))]
                ),
            )
            .values(assignments)
        )
        return _Prepared.compile(statement, dialect, {key: SESSIONS.c[key].type for key in keys})

    prepared = _prepared("session-update", dialect, keys, build)
    row = {
        **values,
        "where_session_id": session_id,
        **{f"where_open_{i}": status for i, status in enumerate(OPEN_STATUSES)},
    }
    cursor.execute(prepared.sql, prepared.parameters([row])[0])


def _write_batch(engine: Engine, session_id: int, batch: dict[str, Any]) -> None:
    """Events, blocks and session-row changes of one batch in one transaction.

    It runs on a pooled DB-API connection.

    Any failure rolls back and discards the connection (it may be the one a network cut broke),
    and reaches the caller as a SQLAlchemy error like every other database failure.
    """
    dialect = engine.dialect
    dbapi_error = dialect.loaded_dbapi.Error
    try:
        connection = engine.raw_connection()
    except dbapi_error as error:
        raise DBAPIError.instance(None, None, error, dbapi_error) from error
    try:
        cursor = connection.cursor()
        if dialect.name == "sqlite":
            # The connection runs in autocommit mode (see store.database); take the write lock
            # at once, as every other writer does.
            cursor.execute("BEGIN IMMEDIATE")
        _insert_ignoring_duplicates(cursor, dialect, EVENTS, batch["events"])
        _insert_ignoring_duplicates(cursor, dialect, BLOCKS, batch["blocks"])
        for values in batch.get("session_updates", []):
            _update_open_session(cursor, dialect, session_id, values)
        connection.commit()
    except dbapi_error as error:
        connection.invalidate(error)
        raise DBAPIError.instance(None, None, error, dbapi_error) from error
    except BaseException as error:
        connection.invalidate(error)
        raise
    finally:
        connection.close()


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
        self._samples: deque[TelemetryReading] = deque()
        self._events: list[dict[str, Any]] = []
        self._session_updates: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] = []
        """Batches neither written nor spooled yet, oldest first; newer than any spooled batch."""
        self._seq = itertools.count(self._next_free_seq())
        self._closed = threading.Event()
        self._drain: threading.Thread | None = None
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
        """Take one reading (called on the thread reading the driver's port: one append, no lock, no I/O)."""
        self._samples.append(reading)
        if len(self._samples) >= self._max_buffered:
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
                    "occurred_at": occurred_at or datetime.now(UTC),
                    "recorded_at": datetime.now(UTC),
                    "actor_id": actor_id,
                    "payload": payload,
                }
            )
        if flush:
            self.flush()

    def update_session(self, values: dict[str, Any], *, flush: bool = True) -> None:
        """Change the session row (status, times, end reason...) with the events around it.

        The change travels with the events and telemetry: written in their transaction, or spooled
        with them while the database is away and replayed in order. It applies only while the
        session is open, so a replay can never touch a session that has since ended.
        """
        with self._lock:
            self._session_updates.append(dict(values))
        if flush:
            self.flush()

    # -------------------------------------------------------------------- writing

    def _screen(self, samples: list[TelemetryReading]) -> dict[int, list[TelemetryReading]]:
        """Group the samples by channel, leaving out (counted and logged) those a block cannot hold.

        A block stores int32 values and offsets in ms from its first sample, so a sample is kept
        only if its channel, current and impedance are int32 and its time is a finite number within
        int32 ms of the first kept sample of its channel. One bad reading costs only itself.
        """
        by_channel: dict[int, list[TelemetryReading]] = {}
        refused: list[TelemetryReading] = []
        for sample in samples:
            if not (
                fits_int32(sample.channel)
                and fits_int32(sample.current_ua)
                and fits_int32(sample.impedance_ohm)
                and isinstance(sample.received_at, int | float)
                and math.isfinite(sample.received_at)
            ):
                refused.append(sample)
                continue
            readings = by_channel.get(sample.channel)
            if readings is None:
                by_channel[sample.channel] = [sample]
            elif fits_int32(round((sample.received_at - readings[0].received_at) * 1000)):
                readings.append(sample)
            else:
                refused.append(sample)
        if refused:
            self.stats.samples_refused += len(refused)
            logger.warning(
                "session %s: %d telemetry samples refused (a value outside int32), e.g. %r",
                self.session_id,
                len(refused),
                refused[0],
            )
        return by_channel

    def _take_batch(self) -> dict[str, Any] | None:
        with self._lock:
            events, self._events = self._events, []
            session_updates, self._session_updates = self._session_updates, []
            # Only this side removes samples, so taking as many as are there now is race-free
            # against the thread reading the port appending more.
            take = self._samples.popleft
            samples = [take() for _ in range(len(self._samples))]
            by_channel = self._screen(samples)
            block_seqs = {channel: next(self._seq) for channel in sorted(by_channel)}
        self.stats.samples_received += len(samples)
        blocks = []
        for channel, seq in block_seqs.items():
            readings = by_channel[channel]
            first = readings[0].received_at
            try:
                blocks.append(
                    {
                        "seq": seq,
                        "session_id": self.session_id,
                        "channel": channel,
                        "t0": self.wall_time(first),
                        "n": len(readings),
                        "offsets_ms": pack_int32(
                            [round((r.received_at - first) * 1000) for r in readings]
                        ),
                        "current_ua": pack_int32([r.current_ua for r in readings]),
                        "impedance_ohm": pack_int32([r.impedance_ohm for r in readings]),
                    }
                )
            except (ArithmeticError, TypeError, ValueError):
                # Screened above, so not expected: lose this channel's samples, not the batch.
                self.stats.samples_refused += len(readings)
                logger.exception(
                    "session %s: %d samples of channel %s could not be packed",
                    self.session_id,
                    len(readings),
                    channel,
                )
        if not events and not blocks and not session_updates:
            return None
        return {"events": events, "blocks": blocks, "session_updates": session_updates}

    def flush(self) -> None:
        """Write what is pending (after spooled and held batches, in order); keep it if that fails.

        Any exception of a write keeps the batches that were not written: in the spool, or in
        memory when the spool cannot be written either. Nothing taken from the buffers is dropped.
        """
        with self._write_lock:
            batch = self._take_batch()
            pending, self._held = self._held, []
            if batch is not None:
                pending.append(batch)
            try:
                spooled = self._read_spool()
                if not spooled and not pending:
                    return
                for old in spooled:
                    self._write(old)
                if spooled:
                    self._spool_path.unlink()
                    self.stats.batches_replayed += len(spooled)
                    logger.info(
                        "session %s: %d spooled batches written", self.session_id, len(spooled)
                    )
                while pending:
                    self._write(pending[0])
                    pending.pop(0)
            except Exception as error:  # whatever failed, the batches must survive it
                self.stats.write_failures += 1
                self.stats.last_error = f"{type(error).__name__}: {error}".splitlines()[0]
                self._keep(pending)
                log = logger.warning if isinstance(error, SQLAlchemyError) else logger.error
                log(
                    "session %s: write failed, batches kept in %s: %s",
                    self.session_id,
                    self._spool_path,
                    self.stats.last_error,
                    exc_info=not isinstance(error, SQLAlchemyError),
                )
            self.stats.batches_held = len(self._held)

    def _keep(self, batches: list[dict[str, Any]]) -> None:
        """Spool ``batches`` in order; what the spool cannot take is held in memory, in order."""
        for index, batch in enumerate(batches):
            try:
                self._spool(batch)
            except Exception:
                self._held = batches[index:]
                logger.exception(
                    "session %s: the spool %s cannot be written; %d batches held in memory",
                    self.session_id,
                    self._spool_path,
                    len(self._held),
                )
                return

    def _write(self, batch: dict[str, Any]) -> None:
        """Events and blocks of one batch in one transaction; rows already there are skipped."""
        _write_batch(self._engine, self.session_id, batch)
        self.stats.events_written += len(batch["events"])
        self.stats.blocks_written += len(batch["blocks"])

    def _spool(self, batch: dict[str, Any]) -> None:
        with self._spool_path.open("a", encoding="utf-8") as spool:
            # ``default=str``: a value JSON cannot hold is kept as its text rather than lost.
            line = json.dumps(_to_json(batch), separators=(",", ":"), default=str)
            spool.write(line + "\n")
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
                    batches.append(_from_json(json.loads(line)))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    # A line cut short by a crash mid-write: everything before it is whole.
                    logger.error(
                        "session %s: a torn line in %s is skipped",
                        self.session_id,
                        self._spool_path,
                    )
        return batches

    @property
    def has_spooled_data(self) -> bool:
        """Whether batches wait to be written: in the spool, or held in memory."""
        return self._spool_path.exists() or bool(self._held)

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
        """Stop the flush thread and write everything that is pending; safe to call again.

        A later call writes what was added since (the end of a session may be recorded by one
        thread while another closes the recorder). If the database is still away, what is
        spooled keeps being retried in the background until it is written (or, if the process
        ends first, at the next start).
        """
        if not self._closed.is_set():
            self._closed.set()
            self._wake.set()
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=5)
        self.flush()
        with self._lock:
            if self.has_spooled_data and not (self._drain and self._drain.is_alive()):
                self._drain = threading.Thread(
                    target=self._drain_spool, name=f"recorder-{self.session_id}-spool", daemon=True
                )
                self._drain.start()

    def _drain_spool(self) -> None:
        delay_s = self._flush_interval_s
        while self.has_spooled_data:
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, MAX_SPOOL_RETRY_S)
            try:
                self.flush()
            except Exception:
                logger.exception("session %s: writing the spool failed", self.session_id)


_BLOB_FIELDS = ("offsets_ms", "current_ua", "impedance_ohm")
_DATETIME_TAG = "$datetime"


def _to_json(batch: dict[str, Any]) -> dict[str, Any]:
    """A batch as JSON for the spool: timestamps in ISO 8601, packed arrays in base64."""
    return {
        "events": [
            {
                **e,
                "occurred_at": e["occurred_at"].isoformat(),
                "recorded_at": e["recorded_at"].isoformat(),
            }
            for e in batch["events"]
        ],
        "blocks": [
            {
                **b,
                "t0": b["t0"].isoformat(),
                **{name: base64.b64encode(b[name]).decode("ascii") for name in _BLOB_FIELDS},
            }
            for b in batch["blocks"]
        ],
        "session_updates": [
            {
                key: {_DATETIME_TAG: value.isoformat()} if isinstance(value, datetime) else value
                for key, value in values.items()
            }
            for values in batch["session_updates"]
        ],
    }


def _from_json(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "events": [
            {
                **e,
                "occurred_at": datetime.fromisoformat(e["occurred_at"]),
                "recorded_at": datetime.fromisoformat(e["recorded_at"]),
            }
            for e in data["events"]
        ],
        "blocks": [
            {
                **b,
                "t0": datetime.fromisoformat(b["t0"]),
                **{name: base64.b64decode(b[name]) for name in _BLOB_FIELDS},
            }
            for b in data["blocks"]
        ],
        "session_updates": [
            {
                key: datetime.fromisoformat(value[_DATETIME_TAG])
                if isinstance(value, dict) and set(value) == {_DATETIME_TAG}
                else value
                for key, value in values.items()
            }
            for values in data.get("session_updates", [])
        ],
    }
