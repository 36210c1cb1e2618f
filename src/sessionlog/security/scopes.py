"""Roles and the scopes that follow from them: who may do what, declared in one table.

Every route declares the scopes it needs; a token or API key carries the scopes of its user's role
(or fewer, when a narrower set is asked for at login). Integrators never see client data, analysts
never control devices, admins manage people, keys and the audit trail, not treatments.
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    CLIENTS_READ = "clients:read"
    CLIENTS_WRITE = "clients:write"
    SESSIONS_READ = "sessions:read"
    SESSIONS_WRITE = "sessions:write"
    SESSIONS_RUN = "sessions:run"
    PROGRAMS_READ = "programs:read"
    PROGRAMS_WRITE = "programs:write"
    DEVICES_READ = "devices:read"
    DEVICES_WRITE = "devices:write"
    DEVICES_CONNECT = "devices:connect"
    LIMITS_CHECK = "limits:check"
    ANALYTICS_READ = "analytics:read"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    KEYS_WRITE = "keys:write"
    AUDIT_READ = "audit:read"


SCOPE_DESCRIPTIONS: dict[str, str] = {
    Scope.CLIENTS_READ: "Read clients (pseudonymous codes, screening, prescriptions)",
    Scope.CLIENTS_WRITE: "Create and change clients",
    Scope.SESSIONS_READ: "Read session records, events and telemetry",
    Scope.SESSIONS_WRITE: "Record sessions, add notes and adverse events, correct records",
    Scope.SESSIONS_RUN: "Create and run live sessions on connected devices",
    Scope.PROGRAMS_READ: "Read programs",
    Scope.PROGRAMS_WRITE: "Create and change programs",
    Scope.DEVICES_READ: "Read devices and connections",
    Scope.DEVICES_WRITE: "Register and change devices",
    Scope.DEVICES_CONNECT: "Connect and disconnect devices",
    Scope.LIMITS_CHECK: "Dry-run plans against the limits engine",
    Scope.ANALYTICS_READ: "Query session history, aggregates and exports",
    Scope.USERS_READ: "Read users",
    Scope.USERS_WRITE: "Create and change users",
    Scope.KEYS_WRITE: "Create and revoke API keys",
    Scope.AUDIT_READ: "Read and verify the audit trail",
}

ROLE_SCOPES: dict[str, frozenset[Scope]] = {
    "practitioner": frozenset(
        {
            Scope.CLIENTS_READ,
            Scope.CLIENTS_WRITE,
            Scope.SESSIONS_READ,
            Scope.SESSIONS_WRITE,
            Scope.SESSIONS_RUN,
            Scope.PROGRAMS_READ,
            Scope.PROGRAMS_WRITE,
            Scope.DEVICES_READ,
            Scope.DEVICES_CONNECT,
            Scope.LIMITS_CHECK,
        }
    ),
    "integrator": frozenset(
        {
            Scope.DEVICES_READ,
            Scope.DEVICES_WRITE,
            Scope.DEVICES_CONNECT,
            Scope.PROGRAMS_READ,
            Scope.LIMITS_CHECK,
        }
    ),
    "analyst": frozenset(
        {
            Scope.CLIENTS_READ,
            Scope.SESSIONS_READ,
            Scope.PROGRAMS_READ,
            Scope.DEVICES_READ,
            Scope.ANALYTICS_READ,
        }
    ),
    "admin": frozenset(
        {
            Scope.USERS_READ,
            Scope.USERS_WRITE,
            Scope.KEYS_WRITE,
            Scope.AUDIT_READ,
            Scope.DEVICES_READ,
        }
    ),
}


def scopes_for_role(role: str) -> frozenset[Scope]:
    return ROLE_SCOPES.get(role, frozenset())
