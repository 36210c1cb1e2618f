"""The audit trail: append-only, hash-chained records of who did what, written in the change's own
transaction.

Each event's hash is SHA-256 over the previous event's hash and a canonical JSON of the event (sorted
keys, no whitespace), so changing, inserting or removing any row breaks every later link, and
``verify_chain`` reports the first broken one. Appends are serialised so the chain never forks: on
PostgreSQL by a transaction-scoped advisory lock, on SQLite by the write lock every transaction takes
at BEGIN IMMEDIATE.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, insert, text
from sqlmodel import Session, col, select

from sessionlog.store.models import AuditEvent
from sessionlog.store.types import utc_now

GENESIS_HASH = "0" * 64
AUDIT_LOCK_KEY = 0x5E55_10C0
"""PostgreSQL advisory lock id that serialises appends to the chain."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


HASHED_FIELDS = (
    "at",
    "actor_id",
    "actor_via",
    "action",
    "resource",
    "resource_id",
    "before",
    "after",
    "reason",
)
AUDIT_EVENTS: Table = AuditEvent.__table__  # type: ignore[attr-defined]


def chain_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical JSON of the event's hashed fields."""
    payload = {name: fields[name] for name in HASHED_FIELDS}
    payload["at"] = payload["at"].isoformat()
    return hashlib.sha256((prev_hash + canonical_json(payload)).encode()).hexdigest()


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    return chain_hash(prev_hash, {name: getattr(event, name) for name in HASHED_FIELDS})


def _lock_chain(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})


def append_event(
    db: Session,
    *,
    actor_id: int | None,
    actor_via: str,
    action: str,
    resource: str,
    resource_id: object | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> str:
    """Add one event to the chain inside the caller's transaction; returns its hash.

    A plain insert on the session's connection rather than an ORM object: every audited request
    pays for this, and the row is never read back in the same unit of work.
    """
    connection = db.connection()
    _lock_chain(connection)
    last = connection.execute(
        select(AUDIT_EVENTS.c.hash).order_by(AUDIT_EVENTS.c.id.desc()).limit(1)
    ).scalar()
    values: dict[str, Any] = {
        "at": utc_now(),
        "actor_id": actor_id,
        "actor_via": actor_via,
        "action": action,
        "resource": resource,
        "resource_id": None if resource_id is None else str(resource_id),
        "before": json.loads(canonical_json(before)) if before is not None else None,
        "after": json.loads(canonical_json(after)) if after is not None else None,
        "reason": reason,
        "prev_hash": last or GENESIS_HASH,
    }
    values["hash"] = chain_hash(values["prev_hash"], values)
    connection.execute(insert(AUDIT_EVENTS), values)
    return str(values["hash"])


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events_checked: int
    first_broken_id: int | None = None
    problem: str | None = None


def verify_chain(db: Session, *, batch_size: int = 5000) -> ChainReport:
    """Walk the chain in id order and report the first event whose link does not hold."""
    expected_prev = GENESIS_HASH
    checked = 0
    last_id = 0
    while True:
        events = db.exec(
            select(AuditEvent)
            .where(col(AuditEvent.id) > last_id)
            .order_by(col(AuditEvent.id))
            .limit(batch_size)
        ).all()
        if not events:
            return ChainReport(ok=True, events_checked=checked)
        for event in events:
            assert event.id is not None
            if event.prev_hash != expected_prev:
                return ChainReport(
                    ok=False,
                    events_checked=checked,
                    first_broken_id=event.id,
                    problem="its previous-hash does not match the event before it "
                    "(an event was removed, inserted or reordered)",
                )
            if event_hash(event.prev_hash, event) != event.hash:
                return ChainReport(
                    ok=False,
                    events_checked=checked,
                    first_broken_id=event.id,
                    problem="its content does not match its hash (the row was changed)",
                )
            expected_prev = event.hash
            checked += 1
            last_id = event.id


def snapshot(row: Any, *, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A JSON-safe copy of a row for before/after, without secrets."""
    data: dict[str, Any] = row.model_dump(
        mode="json", exclude=set(exclude) | {"password_hash", "secret_hash"}
    )
    return data
