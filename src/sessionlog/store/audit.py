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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from sessionlog.store.models import AuditEvent
from sessionlog.store.types import utc_now

GENESIS_HASH = "0" * 64
AUDIT_LOCK_KEY = 0x5E55_10C0
"""PostgreSQL advisory lock id that serialises appends to the chain."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _payload(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": event.at.isoformat(),
        "actor_id": event.actor_id,
        "actor_via": event.actor_via,
        "action": event.action,
        "resource": event.resource,
        "resource_id": event.resource_id,
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
    }


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256((prev_hash + canonical_json(_payload(event))).encode()).hexdigest()


def _lock_chain(db: Session) -> None:
    bind = db.get_bind()
    if bind.dialect.name == "postgresql":
        db.exec(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=AUDIT_LOCK_KEY))  # type: ignore[call-overload]


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
) -> AuditEvent:
    """Add one event to the chain inside the caller's transaction."""
    _lock_chain(db)
    last = db.exec(select(AuditEvent.hash).order_by(col(AuditEvent.id).desc()).limit(1)).first()
    event = AuditEvent(
        at=utc_now(),
        actor_id=actor_id,
        actor_via=actor_via,
        action=action,
        resource=resource,
        resource_id=None if resource_id is None else str(resource_id),
        before=json.loads(canonical_json(before)) if before is not None else None,
        after=json.loads(canonical_json(after)) if after is not None else None,
        reason=reason,
        prev_hash=last or GENESIS_HASH,
        hash="",
    )
    event.hash = event_hash(event.prev_hash, event)
    db.add(event)
    db.flush()
    return event


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
