"""Who is asking: the authenticated user behind a request, with the scopes it may use."""

from __future__ import annotations

from dataclasses import dataclass

from sessionlog.security.scopes import Scope


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: str
    scopes: frozenset[Scope]
    via: str
    """"token" or "api_key:<id>", recorded with every audit event."""

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes
