"""Domain errors raised below the API (services, store) and answered by it as problem details.

Services raise these instead of HTTP errors so that the CLI and the session runner can use the same
services; the API maps each to its status code in one place.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of the errors a user's input can cause."""


class RecordNotFoundError(DomainError):
    def __init__(self, resource: str, record_id: object) -> None:
        super().__init__(f"no {resource} with id {record_id}")
        self.resource = resource
        self.record_id = record_id


class InvalidFieldError(DomainError):
    """A well-formed value that cannot be accepted, e.g. a reference to a record that does not exist."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidFieldsError(DomainError):
    """Several well-formed values that cannot be accepted together, each with its reason."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in errors))
        self.errors = errors


class ConflictError(DomainError):
    """The request collides with an existing record (a duplicate unique value)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
