"""The database tables, declared once with SQLModel; the schema itself is only ever changed by Alembic.

Enumerated values are stored as short strings with CHECK constraints rather than native enum types, so
adding a value is a one-line migration on both SQLite and PostgreSQL. Every constraint is named through
the metadata's naming convention, which Alembic's batch mode on SQLite needs to alter tables.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sessionlog.safety.plan import BodySite, Modality, PhaseType, Polarity, Side, Waveform
from sessionlog.store.types import UTCDateTime, utc_now

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("practitioner", "integrator", "analyst", "admin")
SESSION_MODES = ("recorded", "live")
SESSION_STATUSES = (
    "planned",
    "running",
    "paused",
    "completed",
    "stopped",
    "aborted",
    "interrupted",
    "entered_in_error",
)


SUMMARY_INDEX_COLUMNS = (
    "started_at",
    "modality",
    "status",
    "ended_at",
    "out_of_limits",
    "dose_total_charge_uc",
    "dose_on_time_s",
    "dose_max_current_density_ma_cm2",
)
"""Columns of the covering index behind the analytics summaries, the time column first."""


SUPERSEDES_INDEX = "uq_session_supersedes_id"
"""The unique index that gives a session version at most one successor (named in its 409)."""


def _in(column: str, values: tuple[str, ...] | list[str]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _created_at() -> Any:
    return Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)


class User(SQLModel, table=True):
    """A person or station account; the role decides what it may do."""

    __tablename__ = "app_user"
    __table_args__ = (sa.CheckConstraint(_in("role", ROLES), name="role_valid"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(max_length=200)
    role: str = Field(max_length=32)
    active: bool = Field(default=True)
    password_hash: str | None = Field(default=None, max_length=255)
    """argon2; None for accounts that only use API keys (stations)."""
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()
    version: int = Field(default=1)


class ApiKey(SQLModel, table=True):
    """A credential for a station or an integration; it acts as its user, with that user's role."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    name: str = Field(max_length=200)
    secret_hash: str = Field(max_length=64)
    created_at: datetime = _created_at()
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditEvent(SQLModel, table=True):
    """One audited action, chained: ``hash = SHA-256(prev_hash || canonical JSON of the event)``.

    Append-only in the database; the chain makes any later change of a row, or a removed row,
    detectable by ``sessionlog audit verify``.
    """

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    actor_id: int | None = Field(default=None, foreign_key="app_user.id")
    actor_via: str = Field(max_length=64)
    action: str = Field(max_length=32)
    resource: str = Field(max_length=32, index=True)
    resource_id: str | None = Field(default=None, max_length=64)
    before: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    after: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    reason: str | None = Field(default=None, sa_type=sa.Text)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to a creating POST sent with an ``Idempotency-Key``, replayed on a retry."""

    __tablename__ = "idempotency_record"
    __table_args__ = (
        sa.UniqueConstraint("principal", "key", name="uq_idempotency_record_principal_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    principal: str = Field(max_length=64)
    key: str = Field(max_length=200)
    method: str = Field(max_length=8)
    path: str = Field(max_length=500)
    request_hash: str = Field(max_length=64)
    status_code: int
    response_body: str = Field(sa_type=sa.Text)
    response_headers: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    created_at: datetime = _created_at()


class Client(SQLModel, table=True):
    """A treated person, known only by a pseudonymous code; screening data lives here."""

    __tablename__ = "client"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True)
    contraindications: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    prescription: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    notes: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()
    version: int = Field(default=1)


class Device(SQLModel, table=True):
    """A stimulator known to the service, identified by its driver and serial number."""

    __tablename__ = "device"
    __table_args__ = (
        sa.UniqueConstraint("driver", "serial_number", name="uq_device_driver_serial"),
    )

    id: int | None = Field(default=None, primary_key=True)
    driver: str = Field(max_length=64)
    serial_number: str = Field(max_length=128)
    model: str = Field(max_length=128)
    firmware_version: str | None = Field(default=None, max_length=64)
    label: str | None = Field(default=None, max_length=200)
    capabilities: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()
    version: int = Field(default=1)


class Program(SQLModel, table=True):
    """A named parameter preset a practitioner starts from."""

    __tablename__ = "program"
    __table_args__ = (sa.CheckConstraint(_in("modality", list(Modality)), name="modality_valid"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    modality: str = Field(max_length=16)
    description: str | None = Field(default=None, sa_type=sa.Text)
    channels: list[dict[str, Any]] = Field(sa_type=sa.JSON, nullable=False)
    duration_s: int
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()
    version: int = Field(default=1)


class TreatmentSession(SQLModel, table=True):
    """One treatment: who, on whom, with which device, where, what was planned and what happened.

    A session is never edited in place once it has ended; corrections are new rows that point at the
    row they supersede, forming a chain without forks from the first version to the latest
    (``SessionChain`` links each later version to the first). The dose columns are the per-session
    summary that analytics aggregate.
    """

    __tablename__ = "session"
    __table_args__ = (
        sa.CheckConstraint(_in("modality", list(Modality)), name="modality_valid"),
        sa.CheckConstraint(_in("mode", SESSION_MODES), name="mode_valid"),
        sa.CheckConstraint(_in("status", SESSION_STATUSES), name="status_valid"),
        sa.CheckConstraint(_in("body_site", list(BodySite)), name="body_site_valid"),
        sa.CheckConstraint("electrode_area_cm2 > 0", name="electrode_area_positive"),
        sa.CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="end_after_start"),
        # Covers the grouped summaries by time and modality (docs/analytics.md): the database reads
        # this narrow index in time order instead of the wide rows with their JSON and notes.
        sa.Index("ix_session_summary", *SUMMARY_INDEX_COLUMNS),
        # Finds the newer version of a session, and makes it the only one: a version has at most
        # one successor, so two concurrent corrections of one version cannot fork the chain (the
        # loser's INSERT fails, on PostgreSQL as on SQLite). Partial, because almost every row
        # supersedes nothing, and a full index of NULLs would look useless to the planner.
        sa.Index(
            SUPERSEDES_INDEX,
            "supersedes_id",
            unique=True,
            sqlite_where=sa.text("supersedes_id IS NOT NULL"),
            postgresql_where=sa.text("supersedes_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="client.id", index=True)
    practitioner_id: int = Field(foreign_key="app_user.id", index=True)
    device_id: int = Field(foreign_key="device.id", index=True)
    program_id: int | None = Field(default=None, foreign_key="program.id", index=True)
    supersedes_id: int | None = Field(default=None, foreign_key="session.id")
    program_name: str | None = Field(default=None, max_length=200)
    mode: str = Field(max_length=16)
    status: str = Field(max_length=32, index=True)
    modality: str = Field(max_length=16, index=True)
    body_site: str = Field(max_length=32, index=True)
    side: str | None = Field(default=None, max_length=16)
    electrode_area_cm2: float
    planned_duration_s: int
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    notes: str | None = Field(default=None, sa_type=sa.Text)
    outcome: str | None = Field(default=None, sa_type=sa.Text)
    out_of_limits: bool = Field(default=False, index=True)
    violations: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    dose_total_charge_uc: float | None = None
    dose_on_time_s: float | None = None
    dose_max_current_density_ma_cm2: float | None = None
    dose_max_power_density_w_cm2: float | None = None
    end_reason: str | None = Field(default=None, sa_type=sa.Text)
    link_errors: dict[str, int] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    """Counts of malformed frames, reply timeouts and refusals seen on the device link."""
    created_at: datetime = _created_at()


class SessionChain(SQLModel, table=True):
    """Links each later version of a session (a correction or a removal) to its chain's first.

    A session's events and telemetry belong to its whole chain of versions: they are recorded on
    whichever version was current (a live session's telemetry on the first), and analytics count
    them on the latest. A first version has no row here: it is its own root. The rows are derived
    from ``session.supersedes_id`` by a trigger on every session INSERT, whoever writes, and are
    append-only (``store/chains.py``). ``session_id`` has no foreign key: the trigger writes it
    from the row just inserted, and a link must not be what stops a session row from being removed
    should its guard ever be lifted (it would then only name a version that no longer exists).
    """

    __tablename__ = "session_chain"

    session_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    root_id: int = Field(foreign_key="session.id", index=True)


class SessionChannel(SQLModel, table=True):
    """The parameters of one output channel of a session, in the units their names carry."""

    __tablename__ = "session_channel"
    __table_args__ = (
        sa.UniqueConstraint("session_id", "channel", name="uq_session_channel_session_channel"),
        sa.CheckConstraint(_in("waveform", list(Waveform)), name="waveform_valid"),
        sa.CheckConstraint(_in("phase_type", list(PhaseType)), name="phase_type_valid"),
        sa.CheckConstraint(_in("polarity", list(Polarity)), name="polarity_valid"),
        sa.CheckConstraint("amplitude_ua >= 0", name="amplitude_nonnegative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="session.id", index=True)
    channel: int
    amplitude_ua: int
    pulse_width_us: int
    frequency_hz: float
    waveform: str = Field(max_length=16)
    phase_type: str = Field(max_length=32)
    polarity: str = Field(max_length=16)
    ramp_up_s: float = 0.0
    ramp_down_s: float = 0.0
    on_time_s: float | None = None
    off_time_s: float | None = None


class SessionEvent(SQLModel, table=True):
    """Something that happened in a session. Append-only: the database refuses UPDATE and DELETE.

    Events of a live session carry the recorder's sequence number, so a batch replayed from the
    local spool after a database outage is written once and never twice.
    """

    __tablename__ = "session_event"
    __table_args__ = (
        sa.UniqueConstraint("session_id", "seq", name="uq_session_event_session_seq"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="session.id", index=True)
    seq: int | None = None
    kind: str = Field(max_length=32)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    recorded_at: datetime = _created_at()
    actor_id: int | None = Field(default=None, foreign_key="app_user.id")
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)


class TelemetryBlock(SQLModel, table=True):
    """About a second of one channel's telemetry, packed: one row per block, not per sample.

    ``offsets_ms``, ``current_ua`` and ``impedance_ohm`` are little-endian int32 arrays of ``n``
    values; a sample's time is ``t0 + offsets_ms[i]``. Append-only, like the events.
    """

    __tablename__ = "telemetry_block"
    __table_args__ = (
        sa.UniqueConstraint("session_id", "seq", name="uq_telemetry_block_session_seq"),
        sa.CheckConstraint("n > 0", name="not_empty"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="session.id", index=True)
    seq: int
    channel: int
    t0: datetime = Field(sa_type=UTCDateTime)
    n: int
    offsets_ms: bytes = Field(sa_type=sa.LargeBinary)
    current_ua: bytes = Field(sa_type=sa.LargeBinary)
    impedance_ohm: bytes = Field(sa_type=sa.LargeBinary)


class SessionDaySummary(SQLModel, table=True):
    """The summary's figures of the counted sessions of one UTC day and modality, kept as sums.

    "Counted" means what the dose summary counts without filters: the latest version of a session,
    not removed. Every figure is decomposable (sums, non-NULL counts, a max), so the summary of a
    week, a month or a range of days is an exact re-aggregation of these rows; a mean is the sum
    over the count of non-NULL values, as SQL ``avg`` computes it. Sessions without a start time
    have no day: they sit in rows with ``started`` false under the placeholder day
    ``NO_START_DAY``. The rows are derived data, rebuilt from ``session`` for the days that
    ``SessionDaySummaryDirty`` names (docs/analytics.md, "The day rollup").
    """

    __tablename__ = "session_day_summary"

    started: bool = Field(primary_key=True)
    day: date = Field(primary_key=True)
    modality: str = Field(max_length=16, primary_key=True)
    session_count: int
    duration_sum_s: float | None = None
    duration_count: int
    charge_sum_uc: float | None = None
    charge_count: int
    current_density_sum_ma_cm2: float | None = None
    current_density_count: int
    current_density_max_ma_cm2: float | None = None
    on_time_sum_s: float | None = None
    adverse_event_count: int
    aborted_count: int
    interrupted_count: int
    out_of_limits_count: int


class SessionDaySummaryDirty(SQLModel, table=True):
    """A (day, modality) whose ``SessionDaySummary`` row may be out of date, written by triggers.

    Triggers on ``session`` and ``session_event`` add a mark in the writing transaction, so a mark
    commits exactly when the change it stands for does. SQLite keeps one mark per key (its writers
    are serialised); PostgreSQL appends one per writing statement and key, because deduplicating
    there would need a lock that makes concurrent writers of the same day wait for each other.
    ``claimed`` is set only inside the refresh transaction that deletes the mark.
    """

    __tablename__ = "session_day_summary_dirty"
    __table_args__ = (sa.Index("ix_session_day_summary_dirty_key", "started", "day", "modality"),)

    id: int | None = Field(default=None, primary_key=True)
    started: bool
    day: date
    modality: str = Field(max_length=16)
    claimed: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


NO_START_DAY = date(1, 1, 1)
"""The day under which sessions without a start time are summed (with ``started`` false)."""

APPEND_ONLY_TABLES = (
    "session_event",
    "telemetry_block",
    "session_channel",
    "audit_event",
    "session_chain",
)
"""Tables whose rows may never change or disappear; migrations install triggers that enforce it."""

__all__ = [
    "APPEND_ONLY_TABLES",
    "NO_START_DAY",
    "ROLES",
    "SESSION_MODES",
    "SESSION_STATUSES",
    "SUPERSEDES_INDEX",
    "ApiKey",
    "AuditEvent",
    "Client",
    "Device",
    "IdempotencyRecord",
    "Program",
    "SessionChain",
    "SessionChannel",
    "SessionDaySummary",
    "SessionDaySummaryDirty",
    "SessionEvent",
    "Side",
    "TelemetryBlock",
    "TreatmentSession",
    "User",
]
