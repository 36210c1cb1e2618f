"""Recording sessions delivered on standalone devices, and reading any session back as one document.

A recorded session is evidence of what happened, so it is never refused for breaking a limit: the
standard profile of the limits engine is run over it and the result is stored with it as a flag and
the list of violations, next to the dose summary analysts aggregate.

Corrections form a chain of versions without forks (``store/chains.py``); only the latest version is
corrected. Notes and adverse events belong to the whole chain: one added to a superseded version is
stored on the version it names, as reported, and read with the chain (listed on every version,
counted by analytics on the latest one), so a report sent with an old id is never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Exists, exists
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from sessionlog.errors import ConflictError, InvalidFieldError
from sessionlog.safety.dose import plan_dose
from sessionlog.safety.limits import check_standard
from sessionlog.safety.plan import ChannelPlan, ElectrodePlacement, StimulationPlan
from sessionlog.safety.verdict import Violation
from sessionlog.schemas import (
    AdverseEventCreate,
    DoseSummary,
    NoteCreate,
    SessionCorrection,
    SessionPublic,
    SessionRecordCreate,
)
from sessionlog.sessions.practitioners import is_active_practitioner, practitioner_refusal
from sessionlog.store import repository
from sessionlog.store.chains import chain_versions, is_second_successor, lock_chain
from sessionlog.store.models import (
    Client,
    Device,
    Program,
    SessionChannel,
    SessionEvent,
    TreatmentSession,
)
from sessionlog.store.types import utc_now

_Reference = tuple[str, Exists, Callable[[], InvalidFieldError]]
"""A field, the condition its value must meet, and the refusal when it does not."""


def _exists(field: str, model: type[Any], record_id: int, what: str) -> _Reference:
    return (
        field,
        exists().where(model.__table__.c.id == record_id),
        lambda: InvalidFieldError(field, f"no {what} with id {record_id}"),
    )


def _require(db: Session, references: list[_Reference]) -> None:
    """Refuse the first reference whose condition does not hold.

    All are checked in one query: a recorded session names three or four other records, and a
    round trip per reference is most of the cost of recording one.
    """
    found: Any = db.exec(
        select(*(condition.label(field) for field, condition, _ in references))
    ).one()
    for (_, _, refusal), present in zip(references, found, strict=True):
        if not present:
            raise refusal()


def record_standalone_session(db: Session, data: SessionRecordCreate) -> TreatmentSession:
    """Store a session that already happened, flagged with the standard-profile violations."""
    _require(
        db,
        [
            _exists("client_id", Client, data.client_id, "client"),
            (
                "practitioner_id",
                is_active_practitioner(data.practitioner_id),
                lambda: practitioner_refusal(db, data.practitioner_id),
            ),
            _exists("device_id", Device, data.device_id, "device"),
            *(
                [_exists("program_id", Program, data.program_id, "program")]
                if data.program_id is not None
                else []
            ),
        ],
    )
    program = repository.get(db, Program, data.program_id) if data.program_id else None
    if program is not None and program.modality != data.plan.modality:
        raise InvalidFieldError(
            "plan.modality",
            f"the plan is {data.plan.modality} but program {program.id} is {program.modality}",
        )

    plan = data.plan
    violations = [v.model_dump(mode="json") for v in check_standard(plan)]
    dose = plan_dose(plan)
    session = repository.add(
        db,
        TreatmentSession(
            client_id=data.client_id,
            practitioner_id=data.practitioner_id,
            device_id=data.device_id,
            program_id=data.program_id,
            program_name=plan.program_name or (program.name if program else None),
            mode="recorded",
            status=data.status,
            modality=plan.modality,
            body_site=plan.electrode.body_site,
            side=plan.electrode.side,
            electrode_area_cm2=plan.electrode.area_cm2,
            planned_duration_s=plan.duration_s,
            started_at=data.started_at,
            ended_at=data.ended_at,
            notes=data.notes,
            outcome=data.outcome,
            out_of_limits=bool(violations),
            violations=violations,
            dose_total_charge_uc=dose.total_charge_uc,
            dose_on_time_s=dose.on_time_s,
            dose_max_current_density_ma_cm2=dose.max_current_density_ma_per_cm2,
            dose_max_power_density_w_cm2=dose.max_power_density_w_per_cm2,
        ),
    )
    assert session.id is not None
    for channel in plan.channels:
        db.add(SessionChannel(session_id=session.id, **channel.model_dump()))
    for adverse in data.adverse_events:
        add_adverse_event(db, session, adverse, actor_id=data.practitioner_id)
    db.flush()
    return session


OPEN_STATUSES = frozenset({"planned", "running", "paused"})


def _superseded_by(session_id: int, newer: int | None) -> ConflictError:
    by = f"by {newer}" if newer is not None else "by another correction meanwhile"
    return ConflictError(
        "session_id",
        f"session {session_id} was superseded {by}: correct the latest version",
    )


def latest_version_check(db: Session, session: TreatmentSession) -> None:
    """Only the latest version of an ended session may be corrected."""
    if session.status in OPEN_STATUSES:
        raise ConflictError(
            "session_id", f"session {session.id} is still {session.status}; end it first"
        )
    newer = db.exec(
        select(TreatmentSession.id).where(TreatmentSession.supersedes_id == session.id)
    ).first()
    if newer is not None:
        assert session.id is not None
        raise _superseded_by(session.id, newer)


def correct_session(
    db: Session,
    session: TreatmentSession,
    correction: SessionCorrection,
    *,
    actor_id: int,
    status_override: str | None = None,
) -> TreatmentSession:
    """A new version of an ended session with the corrected fields; the old one stays as it was.

    The chain is locked first, so of two concurrent corrections of one version the later one finds
    the earlier's new version and is refused (409). Should a writer that does not lock race it
    anyway, the unique index on ``supersedes_id`` refuses the second successor, also as a 409.
    """
    session_id = session.id
    assert session_id is not None
    lock_chain(db, session_id)
    latest_version_check(db, session)
    old_plan = to_public(db, session).plan
    plan = correction.plan or old_plan
    started_at = correction.started_at or session.started_at
    ended_at = correction.ended_at or session.ended_at
    if started_at and ended_at and ended_at < started_at:
        raise InvalidFieldError("ended_at", "ended_at is before started_at")
    violations = [v.model_dump(mode="json") for v in check_standard(plan)]
    dose = plan_dose(plan) if correction.plan else None
    values = session.model_dump(exclude={"id", "created_at"})
    values.update(
        supersedes_id=session.id,
        mode=session.mode,
        status=status_override or correction.status or session.status,
        modality=plan.modality,
        body_site=plan.electrode.body_site,
        side=plan.electrode.side,
        electrode_area_cm2=plan.electrode.area_cm2,
        planned_duration_s=plan.duration_s,
        program_name=plan.program_name or session.program_name,
        started_at=started_at,
        ended_at=ended_at,
        notes=correction.notes if correction.notes is not None else session.notes,
        outcome=correction.outcome if correction.outcome is not None else session.outcome,
        out_of_limits=bool(violations),
        violations=violations,
    )
    if dose is not None:
        values.update(
            dose_total_charge_uc=dose.total_charge_uc,
            dose_on_time_s=dose.on_time_s,
            dose_max_current_density_ma_cm2=dose.max_current_density_ma_per_cm2,
            dose_max_power_density_w_cm2=dose.max_power_density_w_per_cm2,
        )
    try:
        corrected = repository.add(db, TreatmentSession(**values))
    except IntegrityError as error:
        if is_second_successor(error):
            # The transaction is aborted (PostgreSQL), so the winner cannot be read here, and
            # the rows of this session expired with it: only the id read before is used.
            raise _superseded_by(session_id, None) from None
        raise
    assert corrected.id is not None
    for channel in plan.channels:
        db.add(SessionChannel(session_id=corrected.id, **channel.model_dump()))
    _append_event(
        db,
        corrected,
        "entered_in_error" if status_override else "correction",
        {"supersedes_id": session.id, "reason": correction.reason},
        None,
        actor_id,
    )
    db.flush()
    return corrected


def mark_entered_in_error(
    db: Session, session: TreatmentSession, reason: str, *, actor_id: int
) -> TreatmentSession:
    """Removal is a new version with status entered_in_error; nothing is deleted."""
    return correct_session(
        db,
        session,
        SessionCorrection.model_construct(
            reason=reason,
            plan=None,
            started_at=None,
            ended_at=None,
            status=None,
            notes=None,
            outcome=None,
        ),
        actor_id=actor_id,
        status_override="entered_in_error",
    )


def add_adverse_event(
    db: Session, session: TreatmentSession, event: AdverseEventCreate, *, actor_id: int | None
) -> SessionEvent:
    payload = {"description": event.description, "severity": event.severity}
    return _append_event(db, session, "adverse_event", payload, event.occurred_at, actor_id)


def add_note(
    db: Session, session: TreatmentSession, note: NoteCreate, *, actor_id: int | None
) -> SessionEvent:
    return _append_event(db, session, "note", {"text": note.text}, note.occurred_at, actor_id)


def _append_event(
    db: Session,
    session: TreatmentSession,
    kind: str,
    payload: dict[str, Any],
    occurred_at: Any,
    actor_id: int | None,
) -> SessionEvent:
    assert session.id is not None
    return repository.add(
        db,
        SessionEvent(
            session_id=session.id,
            kind=kind,
            occurred_at=occurred_at or utc_now(),
            actor_id=actor_id,
            payload=payload,
        ),
    )


def session_events(db: Session, session_id: int) -> list[SessionEvent]:
    """The events of the session's whole chain of versions, in the order they were recorded.

    Each event keeps the id of the version it was recorded on (``session_id``); a correction's own
    event is on the version it created.
    """
    statement = (
        select(SessionEvent)
        .where(col(SessionEvent.session_id).in_(chain_versions(db, session_id)))
        .order_by(col(SessionEvent.id))
    )
    return list(db.exec(statement).all())


def to_public(
    db: Session, session: TreatmentSession, *, just_written: StimulationPlan | None = None
) -> SessionPublic:
    """Rebuild the session document, plan included, from its row and its channel rows.

    ``just_written`` is the plan of a session created in this transaction: its channels are those
    just inserted and nothing can supersede it yet, so neither is read back.
    """
    if just_written is not None:
        channels = list(just_written.channels)
    else:
        statement = (
            select(SessionChannel)
            .where(SessionChannel.session_id == session.id)
            .order_by(col(SessionChannel.channel))
        )
        channels = [
            ChannelPlan.model_validate(row.model_dump(exclude={"id", "session_id"}))
            for row in db.exec(statement).all()
        ]
    plan = StimulationPlan(
        modality=session.modality,
        channels=channels,
        duration_s=session.planned_duration_s,
        electrode=ElectrodePlacement(
            body_site=session.body_site, side=session.side, area_cm2=session.electrode_area_cm2
        ),
        program_name=session.program_name,
    )
    assert session.id is not None
    superseded_by = (
        None
        if just_written is not None
        else db.exec(
            select(TreatmentSession.id).where(TreatmentSession.supersedes_id == session.id)
        ).first()
    )
    return SessionPublic(
        id=session.id,
        superseded_by_id=superseded_by,
        client_id=session.client_id,
        practitioner_id=session.practitioner_id,
        device_id=session.device_id,
        program_id=session.program_id,
        supersedes_id=session.supersedes_id,
        mode=session.mode,
        status=session.status,
        plan=plan,
        started_at=session.started_at,
        ended_at=session.ended_at,
        notes=session.notes,
        outcome=session.outcome,
        out_of_limits=session.out_of_limits,
        violations=[Violation.model_validate(v) for v in session.violations],
        dose=DoseSummary(
            total_charge_uc=session.dose_total_charge_uc,
            on_time_s=session.dose_on_time_s,
            max_current_density_ma_cm2=session.dose_max_current_density_ma_cm2,
            max_power_density_w_cm2=session.dose_max_power_density_w_cm2,
        ),
        end_reason=session.end_reason,
        link_errors=session.link_errors,
        created_at=session.created_at,
    )
