"""Who a session may name as its practitioner: an active account with the practitioner role.

Recorded and live sessions both name the practitioner who delivered the treatment. Admins manage
people, keys and the audit trail, not treatments; integrators never see client data; analysts never
control a device; and a deactivated account treats no one. Both kinds of session ask this module, so
the rule has one home, and a refusal names ``practitioner_id`` with the reason.
"""

from __future__ import annotations

from sqlalchemy import Exists, exists
from sqlmodel import Session, col, select

from sessionlog.errors import InvalidFieldError
from sessionlog.store.models import User

PRACTITIONER_ROLE = "practitioner"


def is_active_practitioner(practitioner_id: int) -> Exists:
    """The rule as an SQL condition, so a caller that checks several references at once (a
    recorded session names four) checks this one in the same query."""
    return exists().where(
        col(User.id) == practitioner_id,
        col(User.role) == PRACTITIONER_ROLE,
        col(User.active),
    )


def practitioner_refusal(db: Session, practitioner_id: int) -> InvalidFieldError:
    """Why ``practitioner_id`` was refused; read only once the rule has failed, so the common path
    costs no second query."""
    user = db.get(User, practitioner_id)
    rule = "a session's practitioner must be an active user with the practitioner role"
    if user is None:
        reason = f"no user with id {practitioner_id}"
    elif user.role != PRACTITIONER_ROLE:
        reason = f"user {practitioner_id} has the {user.role} role; {rule}"
    elif not user.active:
        reason = f"user {practitioner_id} is deactivated; {rule}"
    else:  # changed between the check and this read: refused on what the check saw
        reason = f"user {practitioner_id} was not an active practitioner when checked; {rule}"
    return InvalidFieldError("practitioner_id", reason)


def require_practitioner(db: Session, practitioner_id: int) -> None:
    """Refuse a ``practitioner_id`` that does not name an active practitioner."""
    if not db.exec(select(is_active_practitioner(practitioner_id))).one():
        raise practitioner_refusal(db, practitioner_id)
